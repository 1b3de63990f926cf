"""Partner models (METHODS §7): other instructed models perform a task from what the
instructing model produced.

Sources of a partner's task vector, per trial:

* ``instructions``: a produced instruction of the task (all of them), re-embedded by
  the partner's language-model pipeline and mapped by the partner's own encoder head;
* ``novel``: the same, from the novel produced instructions only;
* ``embedding``: one of the instructor's inferred 64-d task vectors, passed directly.

All sources of a task see the same trials and noise (paired comparison). Settings,
per task: whether the task was held out from the instructing model's and/or the
partner's training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..analysis.stats import welch
from ..evaluation.protocols import is_instructed
from ..models.network import SensorimotorModel
from ..seeding import seed_int
from ..tasks import TrialBatch
from ..tasks.batches import draw_batch
from ..tasks.constants import check_tasks
from ..tasks.rendering import SCORINGS, correct_by_scoring

SOURCES = ("instructions", "novel", "embedding")
SETTINGS = {
    (False, False): "partner trained on task",
    (False, True): "task held out from partner",
    (True, False): "task held out from instructor",
    (True, True): "double holdout",
}
SETTING_ORDER = list(SETTINGS.values())


def setting_of(instructor_heldout: bool, partner_heldout: bool) -> str:
    return SETTINGS[(bool(instructor_heldout), bool(partner_heldout))]


def partner_accuracy(
    partner: SensorimotorModel,
    tasks: Sequence[str],
    pools: Mapping[str, TrialBatch],
    sentence_embeddings: Mapping[str, torch.Tensor],
    novel: Mapping[str, torch.Tensor],
    vectors: Mapping[str, torch.Tensor],
    batch_size: int,
    repeats: int,
    seed: int,
    device: str | torch.device = "cpu",
    scorings: Sequence[str] = SCORINGS,
) -> pd.DataFrame:
    """Accuracy of ``partner`` on each task from each source: DataFrame(task, source,
    scoring, repeat, n_sources, accuracy), one row per accuracy rule (``scorings``). ``sentence_embeddings[task]`` (N, d) are the
    re-embedded produced instructions, ``novel[task]`` a boolean mask over them,
    ``vectors[task]`` (K, 64) the inferred task vectors. A source with nothing to offer
    for a task (no novel sentence) gives no rows."""
    if not is_instructed(partner):
        raise ValueError("partner models must be instructed models")
    tasks = check_tasks(tasks)
    device = torch.device(device)
    head = partner.encoder.map
    rows = []
    was_training = partner.training
    partner.to(device).eval()
    try:
        with torch.no_grad():
            for task in tasks:
                emb = torch.as_tensor(sentence_embeddings[task], dtype=torch.float32, device=device)
                mask = torch.as_tensor(np.array(novel[task], dtype=bool), device=device)
                candidates = {
                    "instructions": head(emb) if len(emb) else emb,
                    "novel": head(emb[mask]) if bool(mask.any()) else emb[:0],
                    "embedding": torch.as_tensor(vectors[task], dtype=torch.float32, device=device),
                }
                pool = pools[task].to(device)
                for repeat in range(repeats):
                    rng = np.random.default_rng(seed_int(seed, "partner", task, repeat))
                    noise = torch.Generator().manual_seed(  # portable: any device, same trials
                        seed_int(seed, "partner-noise", task, repeat))
                    trials, _, r = draw_batch(rng, noise, pool, None, batch_size)
                    for source in SOURCES:
                        options = candidates[source]
                        if len(options) == 0:
                            continue
                        pick = np.random.default_rng(
                            seed_int(seed, "partner-pick", task, repeat, source)
                        ).integers(0, len(options), batch_size)
                        vec = options[torch.as_tensor(pick, device=device)]
                        outputs, _ = partner(r.inputs, vec)
                        correct = correct_by_scoring(outputs, trials, scorings)
                        for scoring in scorings:
                            rows.append({"task": task, "source": source, "scoring": scoring,
                                         "repeat": repeat, "n_sources": len(options),
                                         "accuracy": correct[scoring].float().mean().item()})
    finally:
        partner.train(was_training)
    return pd.DataFrame(rows, columns=["task", "source", "scoring", "repeat", "n_sources",
                                       "accuracy"]).astype(
        {"task": "string", "source": "string", "scoring": "string", "repeat": "int32",
         "n_sources": "int32", "accuracy": "float64"})


def _per_scoring(fn, table: pd.DataFrame) -> pd.DataFrame:
    """``fn`` applied to each scoring rule's rows, stacked with a leading ``scoring``
    column (tables without one: ``fn(table)``)."""
    if "scoring" not in table.columns:
        return fn(table)
    parts = []
    for scoring in [s for s in SCORINGS if s in set(table["scoring"].astype(str))]:
        part = fn(table[table["scoring"].astype(str) == scoring].drop(columns="scoring"))
        part.insert(0, "scoring", pd.array([scoring] * len(part), dtype="string"))
        parts.append(part)
    if not parts:
        part = fn(table.drop(columns="scoring"))
        part.insert(0, "scoring", pd.array([], dtype="string"))
        return part
    return pd.concat(parts, ignore_index=True)


def partner_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean partner accuracy per (setting, source) over (partner seed, task) means, with
    their SD, count and 95 % t-interval (per scoring rule when the table has several)."""
    return _per_scoring(_partner_summary, table)


def partner_welch(table: pd.DataFrame) -> pd.DataFrame:
    """Two-sided Welch t-tests (scipy.stats.ttest_ind, equal_var=False) between the
    sources within each setting, on (partner seed, task) mean accuracies (per scoring
    rule when the table has several)."""
    return _per_scoring(_partner_welch, table)


def _partner_summary(table: pd.DataFrame) -> pd.DataFrame:
    units = table.groupby(["setting", "source", "partner_seed", "task"], observed=True)[
        "accuracy"].mean().reset_index()
    rows = []
    for (setting, source), g in units.groupby(["setting", "source"], observed=True, sort=False):
        x = g["accuracy"].to_numpy()
        n, mean = len(x), float(np.mean(x))
        sd = float(np.std(x, ddof=1)) if n > 1 else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
        rows.append({"setting": setting, "source": source, "n": n, "mean": mean, "sd": sd,
                     "ci_low": mean - half, "ci_high": mean + half})
    out = pd.DataFrame(rows, columns=["setting", "source", "n", "mean", "sd", "ci_low", "ci_high"])
    out["setting"] = pd.Categorical(out["setting"], SETTING_ORDER, ordered=True)
    out["source"] = pd.Categorical(out["source"], SOURCES, ordered=True)
    return out.sort_values(["setting", "source"]).reset_index(drop=True).astype(
        {"setting": "string", "source": "string", "n": "int32"})


def _partner_welch(table: pd.DataFrame) -> pd.DataFrame:
    units = table.groupby(["setting", "source", "partner_seed", "task"], observed=True)[
        "accuracy"].mean().reset_index()
    rows = []
    for setting in SETTING_ORDER:
        g = units[units["setting"] == setting]
        for i, a in enumerate(SOURCES):
            for b in SOURCES[i + 1:]:
                x = g.loc[g["source"] == a, "accuracy"].to_numpy()
                y = g.loc[g["source"] == b, "accuracy"].to_numpy()
                t, p = welch(x, y)
                if len(x) or len(y):
                    rows.append({"setting": setting, "a": a, "b": b, "n_a": len(x), "n_b": len(y),
                                 "mean_a": float(np.mean(x)) if len(x) else float("nan"),
                                 "mean_b": float(np.mean(y)) if len(y) else float("nan"),
                                 "t": t, "p": p})
    return pd.DataFrame(rows, columns=["setting", "a", "b", "n_a", "n_b", "mean_a", "mean_b",
                                       "t", "p"]).astype(
        {"setting": "string", "a": "string", "b": "string", "n_a": "int32", "n_b": "int32"})
