"""Statistics of METHODS §6–7 on the workflow's long-format result tables.

The unit of every statistic is the *seed*: accuracies are first averaged over repeats,
then over tasks (and holdouts), giving one number per model and seed; means, standard
deviations, confidence intervals and Welch t-tests are taken over those per-seed means.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..tasks.constants import CONDITIONAL_TASKS, IMPERATIVE_TASKS, TASKS
from ..tasks.rendering import SCORINGS

# --- model names -------------------------------------------------------------------
DISPLAY_NAMES: dict[str, str] = {
    "simplenet": "SIMPLENET",
    "structurenet": "STRUCTURENET",
    "simplenetplus": "SIMPLENETPLUS",
    "structurenetplus": "STRUCTURENETPLUS",
    "gptnet": "GPTNET",
    "gptnet_xl": "GPTNET (XL)",
    "bertnet": "BERTNET",
    "sbertnet": "SBERTNET",
    "sbertnet_l": "SBERTNET (L)",
    "clipnet_s": "CLIPNET (S)",
    "bownet": "BOWNET",
    "sbertnet_minilm": "SBERTNET (MiniLM)",
}
VARIANT_SUFFIXES: dict[str, str] = {"_tuned": "tuned", "_mlp": "MLP"}

# Plotting order (workflow names). It follows the paper's Fig. 2: the rule-vector
# baseline SIMPLENET first, the language models in the order of their paper
# zero-shot performance (GPTNET 57 % ... SBERTNET (L) 83 %), STRUCTURENET (the
# upper bound) last; each "plus" baseline sits beside its plain version and the
# offline default SBERTNET (MiniLM) just before SBERTNET. Variants follow their
# base model (base, base_mlp, base_tuned); unknown models go last, alphabetically.
BASE_ORDER: tuple[str, ...] = (
    "simplenet", "simplenetplus", "gptnet", "bownet", "bertnet", "gptnet_xl", "clipnet_s",
    "sbertnet_minilm", "sbertnet", "sbertnet_l", "structurenet", "structurenetplus",
)
MODEL_ORDER: list[str] = [
    f"{base}{suffix}" for base in BASE_ORDER for suffix in ("", "_mlp", "_tuned")
]


def split_variant(model: str) -> tuple[str, list[str]]:
    """``"sbertnet_l_mlp_tuned"`` -> ``("sbertnet_l", ["mlp", "tuned"])`` (suffixes in order)."""
    suffixes: list[str] = []
    base = str(model)
    changed = True
    while changed:
        changed = False
        for suffix in VARIANT_SUFFIXES:
            if base.endswith(suffix) and len(base) > len(suffix):
                base = base[: -len(suffix)]
                suffixes.insert(0, suffix[1:])
                changed = True
    return base, suffixes


def display_name(model: str) -> str:
    """The paper's name of a workflow model name (``sbertnet_l_tuned`` -> ``SBERTNET (L) (tuned)``)."""
    model = str(model)
    if model in DISPLAY_NAMES:
        return DISPLAY_NAMES[model]
    base, suffixes = split_variant(model)
    if suffixes and base in DISPLAY_NAMES:
        name = DISPLAY_NAMES[base]
        for s in suffixes:
            name += f" ({VARIANT_SUFFIXES['_' + s]})"
        return name
    return model.upper()


def _order_key(model: str) -> tuple:
    if model in MODEL_ORDER:
        return (0, MODEL_ORDER.index(model), "")
    base, suffixes = split_variant(model)
    if base in BASE_ORDER:
        return (0, 3 * BASE_ORDER.index(base) + 1 + len(suffixes), model)
    return (1, 0, model)


def order_models(models: Iterable[str]) -> list[str]:
    """The distinct ``models`` in MODEL_ORDER (unknown names last, alphabetically)."""
    return sorted({str(m) for m in models}, key=_order_key)


# --- aggregation -------------------------------------------------------------------
def _present(df: pd.DataFrame, cols: Iterable[str]) -> list[str]:
    return [c for c in cols if c in df.columns]


STANDARD_SCORING = "strict"


def scored(table: pd.DataFrame, scoring: str = STANDARD_SCORING) -> pd.DataFrame:
    """The rows of one accuracy rule (``scoring`` column: strict or paper, see
    instructnet.tasks.rendering.is_correct), without that column. Tables without the
    column (older results, tables that are not accuracies) are returned unchanged.
    Figures and statistics read the strict rows; the paper rule is for comparison."""
    if table is None or "scoring" not in table.columns:
        return table
    return table[table["scoring"].astype(str) == scoring].drop(columns="scoring").reset_index(drop=True)


def scorings(table: pd.DataFrame) -> list:
    """The accuracy rules present in ``table``, strict first ([None] without the column)."""
    if table is None or "scoring" not in table.columns or not len(table):
        return [None]
    present = set(table["scoring"].astype(str))
    return [s for s in SCORINGS if s in present] + sorted(present - set(SCORINGS))


def zero_shot_table(heldout: pd.DataFrame) -> pd.DataFrame:
    """Zero-shot accuracy: batch 0 (before any update), mean over repeats.

    Returns DataFrame(holdout, model, seed, task[, scoring], accuracy).
    """
    first = heldout[heldout["batch"] == 0]
    keys = _present(first, ("holdout", "model", "seed", "task", "scoring"))
    return first.groupby(keys, as_index=False, sort=True)["accuracy"].mean()


def per_seed(table: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Mean of ``value`` per model and seed: first per task (over repeats, holdouts and
    anything else), then over tasks. Returns DataFrame(model, seed, <value>)."""
    if "task" in table.columns:
        table = table.groupby(["model", "seed", "task"], as_index=False)[value].mean()
    return table.groupby(["model", "seed"], as_index=False, sort=True)[value].mean()


def summary(table: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Mean, SD and 95 % t-interval over seeds of the per-seed means.

    Returns DataFrame(model, display, n_seeds, mean, sd, ci_low, ci_high), one row per
    model in MODEL_ORDER. With one seed, sd and the interval are NaN.
    """
    seeds = per_seed(table, value)
    rows = []
    for model in order_models(seeds["model"]):
        x = seeds.loc[seeds["model"] == model, value].to_numpy(dtype=float)
        x = x[~np.isnan(x)]
        n = len(x)
        mean = float(np.mean(x)) if n else np.nan
        if n >= 2:
            sd = float(np.std(x, ddof=1))
            half = float(sps.t.ppf(0.975, n - 1)) * sd / np.sqrt(n)
            lo, hi = mean - half, mean + half
        else:
            sd = lo = hi = np.nan
        rows.append({"model": model, "display": display_name(model), "n_seeds": n,
                     "mean": mean, "sd": sd, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["model", "display", "n_seeds", "mean", "sd",
                                       "ci_low", "ci_high"])


def welch(a, b) -> tuple[float, float]:
    """Two-sided Welch t-test of samples ``a`` against ``b`` (scipy.stats.ttest_ind,
    equal_var=False), NaNs dropped: (t, p), t > 0 when ``a`` is larger; (NaN, NaN) with
    fewer than two values on a side. The one Welch test of every table (models,
    CCGP neighbours, partner sources)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a = a[~np.isnan(a)]
    b = b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return np.nan, np.nan
    res = sps.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def welch_matrix(table: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Two-sided Welch t-tests between the per-seed means of every ordered pair of
    distinct models. Returns DataFrame(model_a, model_b, t, p, n_a, n_b); t > 0 means
    model_a is better. Fewer than two seeds on a side gives t, p = NaN."""
    seeds = per_seed(table, value)
    models = order_models(seeds["model"])
    values = {m: seeds.loc[seeds["model"] == m, value].to_numpy(dtype=float) for m in models}
    rows = []
    for a in models:
        for b in models:
            if a == b:
                continue
            t, p = welch(values[a], values[b])
            rows.append({"model_a": a, "model_b": b, "t": t, "p": p,
                         "n_a": int(np.sum(~np.isnan(values[a]))),
                         "n_b": int(np.sum(~np.isnan(values[b])))})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "t", "p", "n_a", "n_b"])


def clause_analysis(zero_shot: pd.DataFrame, n_null: int = 50, seed: int = 0
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Figure 2f: zero-shot on conditional minus imperative tasks, against a null of
    random splits.

    For each model and seed, tasks are first averaged (over holdouts/repeats); the
    observed difference is mean(conditional) − mean(imperative) over the tasks present
    (30 and 20 when all 50 are). The null draws ``n_null`` random splits of the same
    available tasks into groups of the same sizes (numpy Generator seeded by ``seed``,
    drawn in model/seed order). ``tests`` holds, per model, a Welch t-test of the
    observed differences (across seeds) against the pooled null differences.

    Returns (observed(model, seed, conditional, imperative, difference, n_conditional,
    n_imperative), null(model, seed, split, difference),
    tests(model, t, p, n_observed, n_null)).
    """
    rng = np.random.default_rng(seed)
    tasks = zero_shot.groupby(["model", "seed", "task"], as_index=False)["accuracy"].mean()
    obs_rows, null_rows, test_rows = [], [], []
    for model in order_models(tasks["model"]):
        m = tasks[tasks["model"] == model]
        obs_diffs, null_diffs = [], []
        for s in sorted(m["seed"].unique()):
            acc = m[m["seed"] == s].set_index("task")["accuracy"]
            acc = acc[acc.notna()]
            # canonical task order so that splits are reproducible
            present = [t for t in TASKS if t in acc.index] + sorted(
                t for t in acc.index if t not in TASKS)
            cond = [t for t in present if t in CONDITIONAL_TASKS]
            imp = [t for t in present if t in IMPERATIVE_TASKS]
            if cond and imp:
                c, i = float(acc[cond].mean()), float(acc[imp].mean())
                diff = c - i
            else:
                c = float(acc[cond].mean()) if cond else np.nan
                i = float(acc[imp].mean()) if imp else np.nan
                diff = np.nan
            obs_rows.append({"model": model, "seed": s, "conditional": c, "imperative": i,
                             "difference": diff, "n_conditional": len(cond),
                             "n_imperative": len(imp)})
            if np.isnan(diff):
                continue
            obs_diffs.append(diff)
            pool = acc[cond + imp].to_numpy(dtype=float)
            k = len(cond)
            for split in range(n_null):
                perm = rng.permutation(len(pool))
                d = float(pool[perm[:k]].mean() - pool[perm[k:]].mean())
                null_rows.append({"model": model, "seed": s, "split": split, "difference": d})
                null_diffs.append(d)
        t, p = welch(np.asarray(obs_diffs, dtype=float), np.asarray(null_diffs, dtype=float))
        test_rows.append({"model": model, "t": t, "p": p, "n_observed": len(obs_diffs),
                          "n_null": len(null_diffs)})
    observed = pd.DataFrame(obs_rows, columns=["model", "seed", "conditional", "imperative",
                                               "difference", "n_conditional", "n_imperative"])
    null = pd.DataFrame(null_rows, columns=["model", "seed", "split", "difference"])
    tests = pd.DataFrame(test_rows, columns=["model", "t", "p", "n_observed", "n_null"])
    return observed, null, tests


def learning_curves(heldout: pd.DataFrame) -> pd.DataFrame:
    """Held-out learning curves: per model, seed and batch the mean over tasks (each task
    first averaged over repeats and holdouts), then mean and SD over seeds.

    Returns DataFrame(model, batch, mean, sd, n_seeds); sd is NaN with one seed.
    """
    per_task = heldout.groupby(["model", "seed", "batch", "task"], as_index=False)["accuracy"].mean()
    seeds = per_task.groupby(["model", "seed", "batch"], as_index=False)["accuracy"].mean()
    out = seeds.groupby(["model", "batch"], as_index=False).agg(
        mean=("accuracy", "mean"), sd=("accuracy", lambda x: x.std(ddof=1)),
        n_seeds=("accuracy", "count"))
    key = {m: i for i, m in enumerate(order_models(out["model"]))}
    out = out.sort_values(["model", "batch"], key=lambda c: c.map(key) if c.name == "model" else c)
    return out.reset_index(drop=True)
