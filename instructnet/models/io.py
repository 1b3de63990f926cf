"""Reading the workflow's torch files (model.pt, checkpoint.pt, decoder.pt) safely.

Every file is read with ``torch.load(weights_only=True)``: tensors and plain Python
values only, so a file someone handed you cannot run code while it is read. A file that
cannot be read that way (truncated, garbage, an older format, or one carrying other
objects) fails with one message that names it and says how to get a good one.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch


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
