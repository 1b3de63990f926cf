"""One evaluation job: a trained model file + evaluation pools → one Parquet table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from ..embeddings import instruction_rows, read_embeddings
from ..models.io import load_model
from ..models.spec import ModelSpec
from ..seeding import seed_int
from ..tasks import TASKS
from ..tasks.rendering import read_pools
from ..tasks.stimulus import PAPER, Stimulus
from .protocols import (
    EvalConfig,
    combined_vectors,
    heldout_learning,
    swapped_instructions,
    validation_instructions,
)

TESTS = ("heldout", "swapped", "combined", "input_only", "validation")


def evaluate(
    test: str,
    model_path: str | Path,
    holdout: str,
    custom_holdouts: Mapping | None,
    tasks: Sequence[str],
    pool_paths: Mapping[str, str | Path],
    embeddings_path: str | Path | None,
    settings: Mapping,
    seed: int,
    device: str | torch.device = "cpu",
    stimulus: Stimulus = PAPER,
) -> pd.DataFrame:
    """Run ``test`` on the model in ``model_path`` with trials rendered under
    ``stimulus``; rows gain holdout, model, seed."""
    if test not in TESTS:
        raise ValueError(f"unknown evaluation test {test!r}; expected one of {', '.join(TESTS)}")
    model, meta = load_model(model_path, device)
    spec = ModelSpec(**meta["spec"])
    config = EvalConfig.from_mapping(settings)
    pools = read_pools({t: pool_paths[t] for t in tasks}, stimulus)
    train_rows = valid_rows = None
    if spec.instructed:
        rows, _ = read_embeddings(embeddings_path)
        train_rows = instruction_rows(rows, TASKS, "train")
        valid_rows = instruction_rows(rows, TASKS, "validation")
    stream = seed_int(seed, "eval", test, holdout, spec.name, meta["seed"])
    common = dict(config=config, seed=stream, device=device)
    if test in ("heldout", "input_only"):
        table = heldout_learning(model, tasks, pools, train_rows, instructed=spec.instructed,
                                 train="input" if test == "input_only" else "default", **common)
    elif test == "swapped":
        table = swapped_instructions(model, holdout, custom_holdouts, pools, train_rows, **common)
    elif test == "combined":
        # references among the tasks the model trained on (instructnet.tasks.study)
        table = combined_vectors(model, tasks, pools, train_rows,
                                 trained=meta["training_tasks"], **common)
    else:
        table = validation_instructions(model, tasks, pools, valid_rows, **common)
    table.insert(0, "seed", meta["seed"])
    table.insert(0, "model", spec.name)
    table.insert(0, "holdout", holdout)
    return table.astype({"holdout": "string", "model": "string", "seed": "int32"})
