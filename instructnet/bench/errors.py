"""Where a trained model's errors go: ``python -m instructnet.bench errors MODEL.pt ...``.

Per task, the fractions of trials that the model answers

* ``correct``: correct under the strict rule (:func:`instructnet.tasks.rendering.is_correct`);
* ``alternative``: not correct, but correct had the target been the trial's *other*
  answer, what the task's Pro/Anti counterpart answers on the same stimuli: in the Go
  family the direction opposite the target (Go on an AntiGo trial), in the other
  families the other stimulus's direction (DM on an AntiDM trial, MultiDM on an
  AntiMultiDM trial);
* ``weak``: fixation kept, but no ring output above the response threshold (0.6) at the
  last step of a trial that requires a response;
* ``other``: any other error (fixation broken, a strong response in another direction,
  responding where it should withhold).

and, over the trials that require a response, the mean ring output at the last step of
the unit preferring the target (``at_target``) and of the unit preferring the other
answer (``at_alternative``). A model that answers one task by its counterpart's rule
makes ``alternative`` errors; one that has not yet decided between the two rules
splits its output between both answers (``at_alternative`` high, ``weak`` errors).
Trials that require no response count only as correct or other. Every trial of the
pool is scored once, with fresh input noise from a seeded stream (and, for instructed
models, one training instruction per trial).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from ..embeddings import instruction_rows, read_embeddings
from ..models.io import load_model
from ..models.spec import ModelSpec
from ..seeding import seed_int
from ..tasks import TASKS
from ..tasks.constants import FAMILY_OF, N_RING, TASK_INDEX
from ..tasks.rendering import (
    ANGLE_TOLERANCE,
    RESPONSE_THRESHOLD,
    TWO_PI,
    TrialBatch,
    circular_distance,
    fixation_held,
    is_correct,
    render,
)
from ..tasks.stimulus import PAPER, Stimulus

MEASURES = ("correct", "alternative", "weak", "other", "at_target", "at_alternative")


def alternative_dirs(trials: TrialBatch, task: str) -> torch.Tensor:
    """Per trial of ``task``, the other answer (radians): in the Go family the target's
    opposite; otherwise a shown direction farther than the scoring tolerance from the
    target (the other stimulus), or the opposite if there is none; NaN for trials
    without a response."""
    opposite = torch.remainder(trials.target_dir + math.pi, TWO_PI)
    if FAMILY_OF[task] == "Go":
        return torch.where(trials.response, opposite, torch.full_like(opposite, float("nan")))
    shown = trials.slot_on < trials.slot_off
    far = shown & (circular_distance(trials.slot_dir, trials.target_dir[:, None]) >= ANGLE_TOLERANCE)
    first_far = torch.argmax(far.to(torch.int8), dim=1)
    other = trials.slot_dir.gather(1, first_far[:, None]).squeeze(1)
    alt = torch.where(far.any(dim=1), other, opposite)
    return torch.where(trials.response, alt, torch.full_like(alt, float("nan")))


def _unit_output(ring: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Output of the ring unit whose preferred direction is nearest each direction."""
    unit = torch.round(torch.remainder(directions, TWO_PI) / (TWO_PI / N_RING)).long() % N_RING
    return ring.gather(1, unit[:, None]).squeeze(1)


def error_fractions(outputs: torch.Tensor, trials: TrialBatch, task: str) -> dict[str, float]:
    """The ``correct``, ``alternative``, ``weak`` and ``other`` fractions of trials of
    ``task`` (they sum to 1), and the mean ring outputs ``at_target`` and
    ``at_alternative`` over its response trials (NaN if it has none)."""
    alt_dirs = alternative_dirs(trials, task)
    correct = is_correct(outputs, trials, "strict")
    alt_trials = replace(trials, target_dir=torch.nan_to_num(alt_dirs))
    alternative = is_correct(outputs, alt_trials, "strict") & ~correct & trials.response
    ring = outputs[:, -1, 1:]
    weak = fixation_held(outputs, trials) & trials.response & (ring.max(dim=-1).values <= RESPONSE_THRESHOLD)
    resp = trials.response
    n = len(trials)
    fractions = {name: mask.float().mean().item()
                 for name, mask in (("correct", correct), ("alternative", alternative),
                                    ("weak", weak))}
    fractions["other"] = 1.0 - (correct | alternative | weak).float().sum().item() / n
    fractions["at_target"] = _unit_output(ring[resp], trials.target_dir[resp]).mean().item()
    fractions["at_alternative"] = _unit_output(ring[resp], alt_dirs[resp]).mean().item()
    return fractions


def model_errors(model_path: str | Path, pools: dict[str, TrialBatch],
                 embeddings_path: str | Path | None, seed: int = 2024,
                 device: str = "cpu") -> pd.DataFrame:
    """One row per task of ``pools``: who (model, seed), whether the model trained on
    the task, trials, and the measures of :func:`error_fractions`."""
    model, meta = load_model(model_path, device)
    spec = ModelSpec(**meta["spec"])
    choices = None
    if spec.instructed:
        if embeddings_path is None:
            raise ValueError(f"{model_path}: an instructed model needs --embeddings")
        rows, _ = read_embeddings(embeddings_path)
        choices = instruction_rows(rows, TASKS, "train")
    trained = set(meta["training_tasks"])
    out = []
    model.eval()
    with torch.no_grad():
        for task, pool in pools.items():
            pool = pool.to(device)
            gen = torch.Generator(device=device).manual_seed(
                seed_int(seed, "errors", task, spec.name, meta["seed"]))
            rendered = render(pool, noise=True, generator=gen)
            n = len(pool)
            rows = None
            if choices is not None:
                pick = torch.randint(0, len(choices[task]), (n,), generator=gen, device=device)
                rows = choices[task].to(device)[pick]
            idx = torch.full((n,), TASK_INDEX[task], dtype=torch.long, device=device)
            outputs, _ = model(rendered.inputs, model.task_vectors(idx, rows))
            out.append({"model": spec.name, "seed": int(meta["seed"]), "task": task,
                        "trained": task in trained, "trials": n,
                        **error_fractions(outputs, pool, task)})
    return pd.DataFrame(out)


def run(model_paths: Sequence[str | Path], pools_dir: str | Path,
        embeddings_path: str | Path | None = None, tasks: Sequence[str] | None = None,
        stimulus: Stimulus = PAPER, seed: int = 2024, device: str = "cpu") -> pd.DataFrame:
    """:func:`model_errors` of every model file, over ``tasks`` (default: every task
    with a pool file ``pools_dir/<task>.parquet``, e.g. results/trials/eval)."""
    from ..tasks.rendering import read_pools

    pools_dir = Path(pools_dir)
    if tasks is None:
        tasks = [t for t in TASKS if (pools_dir / f"{t}.parquet").exists()]
    if not tasks:
        raise FileNotFoundError(f"no trial pool of any task in {pools_dir}")
    pools = read_pools({t: pools_dir / f"{t}.parquet" for t in tasks}, stimulus)
    frames = [model_errors(p, pools, embeddings_path, seed, device) for p in model_paths]
    return pd.concat(frames, ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean fractions over seeds and tasks per model, task family and trained/held out."""
    return (table.assign(family=table["task"].map(FAMILY_OF))
            .groupby(["model", "trained", "family"])[list(MEASURES)]
            .mean().round(3).reset_index())
