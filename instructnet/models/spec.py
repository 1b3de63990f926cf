"""Model names → what to build (METHODS §5).

A model name in the config is one of

* ``simplenet``, ``structurenet``, ``simplenetplus``, ``structurenetplus`` (rule vectors);
* a language-model name from the embeddings registry (e.g. ``sbertnet_minilm``,
  ``gptnet``, ``bownet``): an instructed model with a linear map to the task vector;
* ``<lm>_mlp``: the same with the MLP d → 256 → 256 → 64 instead of the linear map;
* ``<lm>_tuned``: the linear-map model whose language model's last transformer blocks
  join the trained parameters after ``tuning.from_epoch`` epochs (METHODS §6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RULE_MODELS: dict[str, tuple[str, bool]] = {
    "simplenet": ("simple", False),
    "structurenet": ("structure", False),
    "simplenetplus": ("simple", True),
    "structurenetplus": ("structure", True),
}


class UnknownModelError(ValueError):
    """A model name that is neither a rule model nor built on a known language model."""


# fixed input transforms of an instructed model's embeddings (models.encoders.InstructionEncoder)
EMBEDDING_NORMS = ("none", "zscore", "whiten")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    rule: str | None = None  # "simple" / "structure" for rule models
    plus: bool = False  # rule vector through the PLUS MLP
    lm: str | None = None  # language-model name for instructed models
    head: str = "linear"  # "linear" or "mlp" for instructed models
    gpt: bool = False  # GPT language models train to a lower criterion
    tuned: bool = False  # last transformer blocks trained after tuning.from_epoch
    embedding_norm: str = "none"  # instructed models: "zscore"/"whiten" (InstructionEncoder)

    @property
    def instructed(self) -> bool:
        return self.lm is not None


def model_spec(name: str, language_models: Mapping, embedding_norm: str = "none") -> ModelSpec:
    """Parse a model name; ``language_models`` maps LM names to LanguageModel entries.
    ``embedding_norm`` (``none``, ``zscore`` or ``whiten``) applies to instructed models
    only."""
    if name in RULE_MODELS:
        rule, plus = RULE_MODELS[name]
        return ModelSpec(name, rule=rule, plus=plus)
    lm, head, tuned = name, "linear", False
    if name.endswith("_mlp"):
        lm, head = name[: -len("_mlp")], "mlp"
    elif name.endswith("_tuned"):
        lm, tuned = name[: -len("_tuned")], True
    if lm not in language_models:
        raise UnknownModelError(
            f"unknown model {name!r}: expected one of {', '.join(RULE_MODELS)}, a language "
            f"model name ({', '.join(sorted(language_models))}), <language model>_mlp or "
            "<language model>_tuned"
        )
    if tuned and language_models[lm].kind == "bow":
        raise UnknownModelError(f"model {name!r}: a bag of words has no layers to tune")
    source = language_models[lm].source or ""
    gpt = "gpt" in lm.lower() or "gpt" in source.lower()
    if embedding_norm not in EMBEDDING_NORMS:
        raise ValueError(f"embedding norm must be one of {', '.join(EMBEDDING_NORMS)}, "
                         f"got {embedding_norm!r}")
    return ModelSpec(name, lm=lm, head=head, gpt=gpt, tuned=tuned, embedding_norm=embedding_norm)
