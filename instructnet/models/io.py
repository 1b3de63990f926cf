"""Saving and reading the workflow's torch files (model.pt, checkpoint.pt, decoder.pt).

Every file is read with ``torch.load(weights_only=True)``: tensors and plain Python
values only, so a file someone handed you cannot run code while it is read. A file that
cannot be read that way (truncated, garbage, an older format, or one carrying other
objects) fails with one message that names it and says how to get a good one.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from ..embeddings import LanguageModel
from ..embeddings import load as load_language_model
from .encoders import TunedInstructionEncoder
from .network import SensorimotorModel, build_model
from .spec import ModelSpec


class ModelFileError(RuntimeError):
    """A torch file of the workflow that cannot be read safely."""


def load_file(path: str | Path, map_location="cpu", remedy: str | None = None) -> dict:
    """The dict saved in ``path``, read with ``weights_only=True``. ``remedy`` ends the
    error message (default: delete the file and rerun the rule that makes it)."""
    path = Path(path)
    remedy = remedy or ("delete it and rerun the rule that makes it (snakemake rebuilds "
                        "missing outputs)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError, TypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: not a readable file of this workflow ({first[:200]}); "
                             f"{remedy}") from exc
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: holds a {type(obj).__name__}, not the workflow's "
                             f"dict of weights and metadata; {remedy}")
    return obj


def tuned_model(model: SensorimotorModel, language_model: LanguageModel, texts: list[str],
                blocks: int, device="cpu") -> SensorimotorModel:
    """Swap a cached-embedding encoder for the language model itself (same linear map)."""
    tokenizer, network = load_language_model(language_model, device)
    model.encoder = TunedInstructionEncoder(tokenizer, network, language_model.pooling, texts,
                                            model.encoder, blocks)
    return model.to(device)


def save_model(model: SensorimotorModel, spec: ModelSpec, path: str | Path, **meta) -> None:
    torch.save({"spec": asdict(spec), "hidden": model.rnn.hidden_size,
                "state_dict": model.state_dict(), **meta}, path)


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """A trained model and its metadata (spec, holdout, seed, training tasks, ...).

    Tuned models reload their language model from its source (it must be available)."""
    saved = load_file(path)  # weights_only: reading a model file runs no code
    spec = ModelSpec(**saved["spec"])
    state = saved["state_dict"]
    if spec.tuned:
        d = state["encoder.head.weight"].shape[1]
        model = build_model(spec, seed=0, embeddings=torch.zeros(1, d), hidden=saved["hidden"])
        model = tuned_model(model, LanguageModel(**saved["language_model"]), saved["texts"],
                            saved["tuning"]["blocks"])
    else:
        embeddings = state.get("encoder.embeddings")
        model = build_model(spec, seed=0, embeddings=embeddings, hidden=saved["hidden"])
    model.load_state_dict(state)
    return model.to(device), saved
