"""Loading frozen pretrained language models through ``transformers``."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from .registry import PACKAGE_PREFIX, LanguageModel

_FIX = (
    "To fix: run the workflow's prefetch_models rule (e.g. `snakemake --cores 1 "
    "prefetch_models`) on a machine with internet access, or set this model's `source` "
    "under `language_model_registry` in the config to a local folder holding it, or set "
    "HF_HOME to a populated Hugging Face cache."
)


class LanguageModelUnavailable(RuntimeError):
    """The weights or tokenizer of a language model cannot be found or loaded."""


def _unavailable(model: LanguageModel, reason: str) -> LanguageModelUnavailable:
    return LanguageModelUnavailable(
        f"language model {model.name!r} (source {model.source!r}) is not available: "
        f"{reason}. {_FIX}"
    )


def _is_local(source: str) -> bool:
    """Whether ``source`` names a filesystem path rather than a hub id."""
    return (
        os.path.isabs(source)
        or source.startswith(("./", "../", "~"))
        or os.path.exists(source)
    )


def _offline() -> bool:
    """Hub offline mode, read from the environment at call time (``huggingface_hub``
    reads it only once, at import)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(
        (f or "").strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags
    )


def resolve_source(model: LanguageModel) -> str:
    """The hub id or local folder to load ``model`` from.

    ``package:<module>`` resolves to the folder ``model`` inside that installed
    package; a local path must be an existing folder. Raises
    :class:`LanguageModelUnavailable` otherwise.
    """
    source = model.source
    if model.kind == "bow" or source is None:
        raise ValueError(f"language model {model.name!r} (kind {model.kind}) has no source")
    if source.startswith(PACKAGE_PREFIX):
        package = source[len(PACKAGE_PREFIX):]
        try:
            folder = Path(str(resources.files(package) / "model"))
        except ModuleNotFoundError:
            raise _unavailable(
                model, f"the Python package {package!r} is not installed (pip install it)"
            ) from None
        if not folder.is_dir():
            raise _unavailable(model, f"package {package!r} has no model folder {folder}")
        return str(folder)
    if _is_local(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise _unavailable(model, f"local folder {folder} does not exist")
        return str(folder)
    return source


def load(model: LanguageModel, device: str | torch.device = "cpu"):
    """Load ``model`` as ``(tokenizer, network)``: frozen, eval mode, float32, on
    ``device``. The tokenizer pads on the right (GPT-2's pad token is set to its EOS
    token). Raises :class:`LanguageModelUnavailable` if the files cannot be found."""
    from transformers import AutoModel, AutoTokenizer, CLIPTextModel, CLIPTokenizerFast

    if model.kind == "bow":
        raise ValueError(f"language model {model.name!r} is a bag of words, not a network")
    source = resolve_source(model)
    tokenizer_cls, network_cls = (
        (CLIPTokenizerFast, CLIPTextModel) if model.kind == "clip" else (AutoTokenizer, AutoModel)
    )
    offline = _offline()
    try:
        tokenizer = tokenizer_cls.from_pretrained(source, local_files_only=offline)
        network = network_cls.from_pretrained(
            source, local_files_only=offline, dtype=torch.float32
        )
    except OSError as exc:
        reason = "offline and not in the Hugging Face cache" if offline else str(exc).strip()
        raise _unavailable(model, reason.splitlines()[0]) from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                f"language model {model.name!r}: its tokenizer has neither a pad nor an "
                "EOS token, so sentences cannot be batched"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    network.requires_grad_(False)
    network.eval()
    return tokenizer, network.to(device)


def prefetch(model: LanguageModel) -> None:
    """Download ``model``'s tokenizer and weights into the Hugging Face cache.

    A no-op for bag-of-words models, ``package:`` sources and local folders.
    """
    if model.kind == "bow" or model.source.startswith(PACKAGE_PREFIX) or _is_local(model.source):
        return
    load(model)
