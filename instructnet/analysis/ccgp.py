"""Cross-condition generalisation performance (CCGP, METHODS §7).

A *dichotomy* is a list of task pairs ``(side A, side B)`` that differ along one
abstract axis of the task set (e.g. pro/anti: Go–AntiGo, GoMod1–AntiGoMod1, …). For each
pair a linear SVM (``sklearn.svm.LinearSVC``) is trained to tell its two tasks apart
from their representations and then tested on every *other* pair of the dichotomy,
with the labels aligned by side (A → 0, B → 1). A representation that encodes the
axis abstractly generalises (CCGP ≈ 1); one that separates each pair in its own way
does not (≈ 0.5).

A task's score in a dichotomy is the mean test accuracy over every ordered (train
pair, test pair) combination that includes the task, as a member of either pair.
A task that belongs to several dichotomies gets one score per dichotomy; its overall
CCGP (:func:`task_ccgp`) is the mean over those.

Each pair's classifier is fitted once and reused for every test pair (and, through a
:class:`FitCache`, across calls that share representations, e.g. the swapped-
instruction variant, which only changes the held-out tasks).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from ..tasks.constants import DICHOTOMIES, STRUCTURE, STRUCTURE_AXES

# The eight dichotomies of METHODS §7 (data in instructnet.tasks.constants; a study with
# fewer tasks uses instructnet.tasks.study.Study.dichotomies()).
# The structure-vector axis (METHODS §2) each dichotomy splits: side A is +1 there,
# side B −1 (checked by the tests against the structure table).
DICHOTOMY_AXIS: dict[str, int] = {name: STRUCTURE_AXES.index(name) for name in DICHOTOMIES}
DICHOTOMY_TASKS: frozenset[str] = frozenset(t for pairs in DICHOTOMIES.values() for p in pairs for t in p)

COLUMNS = ["dichotomy", "task", "score", "n_combinations"]


def check_dichotomies(dichotomies: Mapping[str, tuple[tuple[str, str], ...]] = DICHOTOMIES) -> None:
    """Every pair differs exactly on its dichotomy's structure axis, A = +1 and B = −1."""
    for name, pairs in dichotomies.items():
        axis = DICHOTOMY_AXIS[name]
        for a, b in pairs:
            va, vb = np.array(STRUCTURE[a]), np.array(STRUCTURE[b])
            if not (va[axis] == 1 and vb[axis] == -1):
                raise ValueError(f"{name}: pair {a}–{b} is not (+1, −1) on axis {STRUCTURE_AXES[axis]!r}")


class FitCache:
    """Fitted pair classifiers, keyed by (key of side A, key of side B). A key names the
    representation a task's samples came from (default: the task itself); calls that
    pass the same keys for the same samples share fits."""

    def __init__(self):
        self.fits: dict[tuple[Hashable, Hashable], LinearSVC] = {}
        self.n_fitted = 0


def _fit(xa: np.ndarray, xb: np.ndarray, C: float, max_iter: int) -> LinearSVC:
    x = np.concatenate([xa, xb]).astype(np.float64, copy=False)
    y = np.r_[np.zeros(len(xa), np.int8), np.ones(len(xb), np.int8)]
    clf = LinearSVC(C=C, dual="auto", max_iter=max_iter, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def _accuracy(clf: LinearSVC, xa: np.ndarray, xb: np.ndarray) -> float:
    pa = clf.decision_function(xa.astype(np.float64, copy=False)) <= 0  # side A -> class 0
    pb = clf.decision_function(xb.astype(np.float64, copy=False)) > 0
    return float((pa.sum() + pb.sum()) / (len(pa) + len(pb)))


def ccgp_scores(
    reps: Mapping[str, np.ndarray],
    dichotomies: Mapping[str, tuple[tuple[str, str], ...]] = DICHOTOMIES,
    C: float = 1.0,
    max_iter: int = 2000,
    keys: Mapping[str, Hashable] | None = None,
    cache: FitCache | None = None,
    tasks: set[str] | None = None,
) -> pd.DataFrame:
    """CCGP of each task in each dichotomy: DataFrame(dichotomy, task, score,
    n_combinations).

    ``reps`` maps task names to (samples, features) arrays (at least one sample each).
    Pairs with a task missing from ``reps`` are skipped; a dichotomy with fewer than two
    usable pairs gives no rows. ``tasks`` restricts the rows (not the fits) to these
    tasks. ``keys``/``cache``: see :class:`FitCache`.
    """
    keys = keys or {}
    cache = cache if cache is not None else FitCache()
    rows = []
    for name, all_pairs in dichotomies.items():
        pairs = [(a, b) for a, b in all_pairs if a in reps and b in reps]
        if len(pairs) < 2:
            continue
        wanted = {t for p in pairs for t in p if tasks is None or t in tasks}
        if not wanted:
            continue
        clfs = []
        for a, b in pairs:
            key = (keys.get(a, a), keys.get(b, b))
            if key not in cache.fits:
                cache.fits[key] = _fit(np.asarray(reps[a]), np.asarray(reps[b]), C, max_iter)
                cache.n_fitted += 1
            clfs.append(cache.fits[key])
        n = len(pairs)
        acc = np.full((n, n), np.nan)
        for i in range(n):
            for j in range(n):
                if i != j:
                    a, b = pairs[j]
                    acc[i, j] = _accuracy(clfs[i], np.asarray(reps[a]), np.asarray(reps[b]))
        member = {t: [k for k, p in enumerate(pairs) if t in p] for t in wanted}
        for task in sorted(wanted, key=lambda t: [x for p in pairs for x in p].index(t)):
            ks = member[task]
            inc = np.zeros((n, n), bool)
            inc[ks, :] = True
            inc[:, ks] = True
            np.fill_diagonal(inc, False)
            rows.append({"dichotomy": name, "task": task, "score": float(acc[inc].mean()),
                         "n_combinations": int(inc.sum())})
    return pd.DataFrame(rows, columns=COLUMNS).astype(
        {"dichotomy": "string", "task": "string", "score": "float64", "n_combinations": "int32"})


def task_ccgp(scores: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """A task's overall CCGP: the mean of its per-dichotomy scores (grouped by ``by``
    plus task)."""
    keys = [*(by or []), "task"]
    return scores.groupby(keys, as_index=False, sort=False)["score"].mean()


def layer_scale(x: np.ndarray) -> np.ndarray:
    """Divide a layer's samples by their overall RMS around the mean (one scalar per
    layer): the geometry is unchanged, but the SVM's fixed C means the same thing in
    every layer, whatever the units' scale."""
    x = np.asarray(x, np.float64)
    return x / _scale_of({"": x})


# --------------------------------------------------------------------------- hierarchies
HIERARCHY_COLUMNS = ["variant", "layer", "stage", "depth", "position", *COLUMNS]


def layer_ccgp(layers: list[tuple[str, Mapping[str, np.ndarray]]], C: float = 1.0,
               stage: str = "language",
               dichotomies: Mapping[str, tuple[tuple[str, str], ...]] = DICHOTOMIES) -> pd.DataFrame:
    """CCGP of every layer of a stack [(layer name, task -> samples)], each layer scaled
    by :func:`layer_scale`: DataFrame(layer, stage, depth, dichotomy, task, score,
    n_combinations), depth = index in the stack. ``dichotomies``: a study's
    (instructnet.tasks.study.Study.dichotomies)."""
    frames = []
    for depth, (name, reps) in enumerate(layers):
        scaled = _scaled(reps)
        s = ccgp_scores(scaled, dichotomies, C=C)
        s.insert(0, "depth", np.int32(depth))
        s.insert(0, "stage", stage)
        s.insert(0, "layer", name)
        frames.append(s)
    if not frames:
        return pd.DataFrame(columns=["layer", "stage", "depth", *COLUMNS])
    return pd.concat(frames, ignore_index=True).astype({"layer": "string", "stage": "string"})


def _scaled(reps: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    tasks = list(reps)
    sizes = [len(reps[t]) for t in tasks]
    x = layer_scale(np.concatenate([np.asarray(reps[t]) for t in tasks]))
    parts = np.split(x, np.cumsum(sizes)[:-1])
    return dict(zip(tasks, parts))


def model_ccgp(model_layers: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
               language: pd.DataFrame | None = None, C: float = 1.0,
               dichotomies: Mapping[str, tuple[tuple[str, str], ...]] = DICHOTOMIES) -> pd.DataFrame:
    """CCGP over a model's whole hierarchy: language-model layers (pre-computed rows
    ``language`` from :func:`layer_ccgp`, shared by every model of that language model),
    then the model's own layers in order ``rule``/``embedding``/``rnn``.

    ``model_layers[variant][layer]`` maps tasks to samples; the ``swapped`` variant
    holds only the swapped (held-out) tasks and reuses the ``standard`` samples of the
    others, and its fits of pairs without a swapped task, through a shared FitCache.
    Returns DataFrame(variant, layer, stage, depth, position, dichotomy, task, score,
    n_combinations); ``position`` counts back from the RNN (0) so that models with
    different language models line up.
    """
    standard = model_layers["standard"]
    own = [name for name in ("rule", "embedding", "rnn") if name in standard]
    lm_depths = 0 if language is None or language.empty else int(language["depth"].max()) + 1
    frames = []
    if language is not None and not language.empty:
        lang = language.copy()
        lang.insert(0, "variant", "standard")
        frames.append(lang)
    for k, name in enumerate(own):
        cache = FitCache()
        base = _scaled(standard[name])
        s = ccgp_scores(base, dichotomies, C=C, cache=cache)
        s.insert(0, "variant", "standard")
        parts = [s]
        swapped = model_layers.get("swapped", {}).get(name)
        if swapped:
            # scale the swapped samples with the standard layer's scalar
            scale = _scale_of(standard[name])
            reps = {**base, **{t: np.asarray(v, np.float64) / scale for t, v in swapped.items()}}
            keys = {t: ("swapped", t) for t in swapped}
            sw = ccgp_scores(reps, dichotomies, C=C, keys=keys, cache=cache, tasks=set(swapped))
            sw.insert(0, "variant", "swapped")
            parts.append(sw)
        for p in parts:
            p.insert(1, "layer", name)
            p.insert(2, "stage", "rule" if name == "rule" else name)
            p.insert(3, "depth", np.int32(lm_depths + k))
        frames.extend(parts)
    out = pd.concat(frames, ignore_index=True)
    out["depth"] = out["depth"].astype("int32")
    out["position"] = (out["depth"] - out["depth"].max()).astype("int32")
    return out[HIERARCHY_COLUMNS].astype({"variant": "string", "layer": "string", "stage": "string"})


def _scale_of(reps: Mapping[str, np.ndarray]) -> float:
    x = np.concatenate([np.asarray(v, np.float64) for v in reps.values()])
    s = float(np.sqrt(np.mean((x - x.mean(0)) ** 2)))
    return s if s > 0 else 1.0


# --------------------------------------------------------------------------- tables
CONDITIONS = ("heldout", "swapped", "all_tasks")


def stack_ccgp(files: Mapping[tuple[str, str, int], pd.DataFrame],
               held: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Every model's CCGP rows with holdout, model, seed and ``heldout`` (whether the
    task is held out of that model's training). ``held`` maps holdouts to their tasks."""
    frames = []
    for (holdout, model, seed), df in files.items():
        df = df.copy()
        df.insert(0, "seed", np.int32(seed))
        df.insert(0, "model", model)
        df.insert(0, "holdout", holdout)
        df["heldout"] = df["task"].isin(list(held[holdout]))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["holdout", "model", "seed", *HIERARCHY_COLUMNS, "heldout"])
    return pd.concat(frames, ignore_index=True).astype({"holdout": "string", "model": "string"})


def condition_rows(table: pd.DataFrame, condition: str,
                   held: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The rows of one condition: ``heldout`` (standard representations of tasks the
    model did not train on), ``swapped`` (the same tasks driven by swapped
    instructions), ``all_tasks`` (every task of models that held nothing out)."""
    if condition == "heldout":
        return table[(table["variant"] == "standard") & table["heldout"]]
    if condition == "swapped":
        return table[(table["variant"] == "swapped") & table["heldout"]]
    if condition == "all_tasks":
        full = [h for h, tasks in held.items() if not tasks]
        return table[(table["variant"] == "standard") & table["holdout"].isin(full)]
    raise ValueError(f"unknown CCGP condition {condition!r}; expected one of {CONDITIONS}")


def ccgp_summary(table: pd.DataFrame, held: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per condition, model, seed and layer: the mean over tasks of the task CCGP (the
    mean of a task's dichotomy scores; a task held out of several groups is averaged
    over them first). DataFrame(condition, model, seed, layer, stage, depth, position,
    ccgp, n_tasks)."""
    keys = ["model", "seed", "layer", "stage", "depth", "position"]
    frames = []
    for condition in CONDITIONS:
        rows = condition_rows(table, condition, held)
        if rows.empty:
            continue
        per_task = rows.groupby([*keys, "task"], as_index=False, sort=False)["score"].mean()
        s = per_task.groupby(keys, as_index=False, sort=False).agg(
            ccgp=("score", "mean"), n_tasks=("task", "nunique"))
        s.insert(0, "condition", condition)
        frames.append(s)
    cols = ["condition", *keys, "ccgp", "n_tasks"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols].astype({"condition": "string"})


def neighbour_welch(summary: pd.DataFrame, stages: Sequence[str] = ("embedding", "rnn")) -> pd.DataFrame:
    """Two-sided Welch t-tests (scipy, unequal variances) of per-seed CCGP between
    neighbouring models in plotting order, per condition and stage. DataFrame(condition,
    stage, model_a, model_b, t, p, n_a, n_b); t > 0: model_b is higher. Fewer than two
    seeds on a side: t, p = NaN."""
    from .stats import order_models, welch

    rows = []
    for (condition, stage), g in summary[summary["stage"].isin(stages)].groupby(
            ["condition", "stage"], sort=False):
        models = order_models(g["model"])
        for a, b in zip(models[:-1], models[1:]):
            xa = g.loc[g["model"] == a, "ccgp"].to_numpy(float)
            xb = g.loc[g["model"] == b, "ccgp"].to_numpy(float)
            t, p = welch(xb, xa)
            rows.append({"condition": condition, "stage": stage, "model_a": a, "model_b": b,
                         "t": t, "p": p, "n_a": len(xa), "n_b": len(xb)})
    return pd.DataFrame(rows, columns=["condition", "stage", "model_a", "model_b", "t", "p",
                                       "n_a", "n_b"])


def ccgp_vs_zero_shot(table: pd.DataFrame, zero_shot: pd.DataFrame, layer_stage: str = "rnn"
                      ) -> pd.DataFrame:
    """Figure 3e's points: per model and held-out task, the held-out CCGP at
    ``layer_stage`` (task CCGP, mean over seeds and holdouts) beside the zero-shot
    accuracy (mean over seeds and holdouts). DataFrame(model, task, ccgp, zero_shot)."""
    rows = table[(table["variant"] == "standard") & table["heldout"]
                 & (table["stage"] == layer_stage)]
    c = rows.groupby(["model", "holdout", "seed", "task"], as_index=False)["score"].mean()
    c = c.groupby(["model", "task"], as_index=False)["score"].mean().rename(columns={"score": "ccgp"})
    z = zero_shot.groupby(["model", "task"], as_index=False)["accuracy"].mean().rename(
        columns={"accuracy": "zero_shot"})
    return c.merge(z, on=["model", "task"], how="inner")
