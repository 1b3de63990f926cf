"""Single sensorimotor units (Figure 4) and task-variance clustering (supplementary).

One trained model is run on the first ``n_trials`` trials of each task's evaluation
pool (seeded input noise; instructed models get the task's training instructions in
turn). From its hidden activity (trials × steps × units):

* ``go``: direction tuning in every Go-family task. The stimulus direction a trial is
  about is its target direction (pro tasks) or the target minus π (anti tasks); a
  unit's response is its mean activity from stimulus onset to the end of the trial.
  Per unit and task: the tuning curve over ``n_bins`` direction bins, its depth
  (max − min), the preferred direction (angle of the curve's resultant vector) and
  the vector strength. Illustrated unit: the paper's Figure 4a shows a unit whose
  preferred direction turns by π from Go to AntiGo (it codes the response, not the
  stimulus); the unit drawn is the one with the largest
  min(depth × vector strength in Go, in AntiGo) × (1 − cos Δ)/2, Δ its preferred
  AntiGo − Go (a strongly, unimodally tuned unit whose preference flips scores 1 × its
  tuning; a stimulus-coding unit scores 0). Every unit's Δ is in ``unit_stats``
  (``preferred_shift``), so the population is there beside the example.
* ``matching``: activity in the test-stimulus epoch [stim2 on, go) of match vs
  non-match trials of DMS, DNMS, DMC, DNMC (match: same direction, or same category);
  d′ = (mean match − mean non-match) / pooled SD. Illustrated unit: the largest mean
  |d′| over the four tasks.
* ``dm``: DM and AntiDM trials rotated so that stimulus 1 points at 0 rad (the task is
  rotation invariant; rotation removes direction tuning from the comparison), mean
  activity over [stim1 on, go) against the trial's contrast (stim1 − stim2): Pearson r
  (scipy). Illustrated unit: the largest mean |r| over DM and AntiDM.
* ``comp``: activity in [stim2 on, end) of response vs withhold trials of COMP1 and
  COMP2, d′ as above. Illustrated unit: the largest mean |d′| over the two tasks.
* task variance: per unit and task, the variance across trials of the activity at each
  step, averaged over steps from the earliest stimulus onset on; normalised by the
  unit's largest task variance. Units whose largest task variance is below 1e-3 of the
  population's largest are inactive and left out; the others are clustered
  (agglomerative, Ward, sklearn) with the number of clusters that maximises the
  silhouette score (2 … ``max_clusters``).

Outputs are tables: ``unit_stats`` (analysis, task, unit, statistic, value; every unit),
``unit_curves`` (what the figures draw for the illustrated units) and
``task_variance`` (unit, task, variance, normalised, cluster).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from ..tasks.constants import FAMILIES, TASK_INDEX, TASKS, UNIT_TASKS

TWO_PI = 2 * math.pi
GO_TASKS = FAMILIES["Go"]
MATCH_TASKS = UNIT_TASKS["matching"]
DM_TASKS = UNIT_TASKS["dm"]
COMP_TASKS = UNIT_TASKS["comp"]
SELECTION = {
    "go": "largest min(depth x vector strength in Go, in AntiGo) x (1 - cos shift)/2",
    "matching": "largest mean |d'| (match vs non-match) over DMS, DNMS, DMC, DNMC",
    "dm": "largest mean |Pearson r| (activity vs contrast) over DM and AntiDM",
    "comp": "largest mean |d'| (response vs withhold) over COMP1 and COMP2",
}


def rotate_to_stim1(trials):
    """A copy of a TrialBatch rotated so that the first shown stimulus points at 0."""
    from ..tasks.rendering import TrialBatch

    present = trials.slot_off > trials.slot_on
    first = torch.argmax(present.int(), dim=1)
    phi = trials.slot_dir[torch.arange(len(first)), first]
    fields = dict(trials.__dict__)
    fields["slot_dir"] = torch.remainder(trials.slot_dir - phi[:, None], TWO_PI)
    fields["target_dir"] = torch.remainder(trials.target_dir - phi, TWO_PI)
    return TrialBatch(**fields)


def run_task(model, frame: pd.DataFrame, sentences, task: str, n_trials: int, seed: int,
             rotate: bool = False, stimulus=None):
    """Hidden activity (n, T, H) of ``model`` on the first ``n_trials`` rows of a task's
    trial table ``frame`` (and those rows), rendered with ``stimulus`` (default: the
    paper's geometry)."""
    from ..evaluation.protocols import is_instructed
    from ..seeding import seed_int
    from ..tasks.rendering import TrialBatch, render
    from ..tasks.stimulus import PAPER

    frame = frame.iloc[:n_trials].reset_index(drop=True)
    trials = TrialBatch.from_frame(frame, stimulus=stimulus or PAPER)
    if rotate:
        trials = rotate_to_stim1(trials)
    n = len(frame)
    if is_instructed(model):
        rows = sentences[task]
        idx = torch.full((len(rows),), TASK_INDEX[task], dtype=torch.long)
        vec = model.task_vectors(idx, rows)[torch.arange(n) % len(rows)]
    else:
        vec = model.task_vectors(torch.full((n,), TASK_INDEX[task], dtype=torch.long))
    gen = torch.Generator().manual_seed(seed_int(seed, "units", task))
    r = render(trials, noise=True, generator=gen)
    _, hidden = model(r.inputs, vec)
    return hidden.numpy(), frame


def _window_mean(h: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean activity (n, H) of each trial over its steps [start, stop)."""
    t = np.arange(h.shape[1])
    w = ((t >= start[:, None]) & (t < stop[:, None])).astype(h.dtype)
    return np.einsum("nt,nth->nh", w, h) / np.maximum(w.sum(1), 1)[:, None]


def _onset(frame: pd.DataFrame) -> np.ndarray:
    ons = []
    for s in ("m1_s1", "m1_s2", "m2_s1", "m2_s2"):
        on = frame[f"{s}_on"].to_numpy(dtype=float, na_value=np.inf)
        off = frame[f"{s}_off"].to_numpy(dtype=float, na_value=-np.inf)
        ons.append(np.where(off > on, on, np.inf))
    return np.min(ons, axis=0).astype(int)


def _dprime(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) < 2 or len(b) < 2:
        return np.full(a.shape[1], np.nan)
    pooled = np.sqrt(0.5 * (a.var(0, ddof=1) + b.var(0, ddof=1)))
    return np.where(pooled > 1e-9, (a.mean(0) - b.mean(0)) / np.maximum(pooled, 1e-9), 0.0)


def _long(analysis: str, task: str, stats: Mapping[str, np.ndarray]) -> pd.DataFrame:
    frames = [pd.DataFrame({"analysis": analysis, "task": task, "unit": np.arange(len(v), dtype=np.int32),
                            "statistic": name, "value": np.asarray(v, float)})
              for name, v in stats.items()]
    return pd.concat(frames, ignore_index=True)


def _pick(score: np.ndarray) -> int:
    score = np.where(np.isfinite(score), score, -np.inf)
    return int(np.argmax(score))


def direction_tuning(resp: np.ndarray, directions: np.ndarray, n_bins: int = 8):
    """Binned tuning curves (bins, H), bin centres, preferred direction, vector
    strength and depth per unit; empty bins are NaN and ignored."""
    edges = np.linspace(0, TWO_PI, n_bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    b = np.clip(np.digitize(np.remainder(directions, TWO_PI), edges) - 1, 0, n_bins - 1)
    curve = np.full((n_bins, resp.shape[1]), np.nan)
    for k in range(n_bins):
        if (b == k).any():
            curve[k] = resp[b == k].mean(0)
    ok = ~np.isnan(curve[:, 0])
    c = curve[ok]
    z = (c * np.exp(1j * centres[ok])[:, None]).sum(0)
    total = c.sum(0)
    pref = np.remainder(np.angle(z), TWO_PI)
    strength = np.where(total > 1e-9, np.abs(z) / np.maximum(total, 1e-9), 0.0)
    depth = np.nanmax(curve, 0) - np.nanmin(curve, 0)
    return curve, centres, pref, strength, depth


def go_example_unit(go_resp: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[int, np.ndarray]:
    """(illustrated unit, every unit's preferred AntiGo − Go) from per-task tuning stats
    (``go_resp[task]``: preferred, vector_strength, depth per unit): the unit with the
    largest min(depth × vector strength in Go, in AntiGo) × (1 − cos Δ)/2."""
    shift = circular_difference(go_resp["AntiGo"]["preferred"], go_resp["Go"]["preferred"])
    tuned = np.minimum(*(np.asarray(go_resp[t]["depth"]) * np.asarray(go_resp[t]["vector_strength"])
                         for t in ("Go", "AntiGo")))
    return _pick(tuned * (1 - np.cos(shift)) / 2), shift


def circular_difference(a, b):
    """a − b wrapped to (−π, π]."""
    return np.remainder(np.asarray(a) - np.asarray(b) + math.pi, TWO_PI) - math.pi


def unit_analyses(model, frames: Mapping[str, pd.DataFrame], sentences, n_trials: int, seed: int,
                  n_bins: int = 8, max_clusters: int = 10, stimulus=None):
    """Run every analysis of the module docstring. ``frames``: task -> evaluation trial
    table (all 50 tasks for task variance). Returns (unit_stats, unit_curves,
    task_variance) DataFrames."""
    model = model.cpu().eval()
    stats, curves, tv = [], [], {}
    go_curves, go_resp = {}, {}
    match_act, dm_act, comp_act = {}, {}, {}
    with torch.no_grad():
        for task in TASKS:
            if task not in frames:
                continue
            rotate = task in DM_TASKS
            h, fr = run_task(model, frames[task], sentences, task, n_trials, seed, rotate, stimulus)
            onset = _onset(fr)
            start = int(onset.min())
            tv[task] = h[:, start:].var(0).mean(0)
            go_on = fr["go_on"].to_numpy(int)
            end = np.full(len(fr), h.shape[1])
            if task in GO_TASKS:
                anti = task.startswith("Anti")
                dirs = fr["target_dir"].to_numpy(float) - (math.pi if anti else 0.0)
                resp = _window_mean(h, onset, end)
                curve, centres, pref, strength, depth = direction_tuning(resp, dirs, n_bins)
                go_curves[task] = (curve, centres)
                go_resp[task] = dict(preferred=pref, vector_strength=strength, depth=depth,
                                     mean=resp.mean(0))
                stats.append(_long("go", task, go_resp[task]))
            if task in MATCH_TASKS:
                response = fr["response"].to_numpy(bool)
                match = response if task in ("DMS", "DMC") else ~response
                resp = _window_mean(h, fr["stim2_on"].to_numpy(int), go_on)
                d = _dprime(resp[match], resp[~match])
                match_act[task] = (h, match)
                stats.append(_long("matching", task, {"dprime": d, "match": resp[match].mean(0),
                                                      "nonmatch": resp[~match].mean(0)}))
            if task in DM_TASKS:
                contrast = fr["contrast"].to_numpy(float)
                resp = _window_mean(h, fr["stim1_on"].to_numpy(int), go_on)
                r = _pearson(contrast, resp)
                dm_act[task] = (h, contrast)
                stats.append(_long("dm", task, {"pearson_r": r, "mean": resp.mean(0)}))
            if task in COMP_TASKS:
                response = fr["response"].to_numpy(bool)
                resp = _window_mean(h, fr["stim2_on"].to_numpy(int), end)
                d = _dprime(resp[response], resp[~response])
                comp_act[task] = (h, response)
                stats.append(_long("comp", task, {"dprime": d, "respond": resp[response].mean(0),
                                                  "withhold": resp[~response].mean(0)}))

    # --- illustrated units and their curves
    if "Go" in go_resp and "AntiGo" in go_resp:
        unit, shift = go_example_unit(go_resp)
        stats.append(_long("go", "AntiGo-Go", {"preferred_shift": shift}))
        for task, (curve, centres) in go_curves.items():
            curves.append(_curve_rows("go", task, unit, "direction", centres, curve[:, unit], "all"))
    if all(t in match_act for t in MATCH_TASKS):
        score = np.nanmean([_stat(stats, "matching", t, "dprime") for t in MATCH_TASKS], axis=0)
        unit = _pick(np.abs(score))
        for task, (h, match) in match_act.items():
            for label, sel in (("match", match), ("non-match", ~match)):
                if sel.any():
                    curves.append(_curve_rows("matching", task, unit, "step", np.arange(h.shape[1]),
                                              h[sel, :, unit].mean(0), label))
    if all(t in dm_act for t in DM_TASKS):
        score = np.nanmean([np.abs(_stat(stats, "dm", t, "pearson_r")) for t in DM_TASKS], axis=0)
        unit = _pick(score)
        for task, (h, contrast) in dm_act.items():
            for label, sel in _contrast_groups(contrast):
                curves.append(_curve_rows("dm", task, unit, "step", np.arange(h.shape[1]),
                                          h[sel, :, unit].mean(0), label))
    if all(t in comp_act for t in COMP_TASKS):
        score = np.nanmean([np.abs(_stat(stats, "comp", t, "dprime")) for t in COMP_TASKS], axis=0)
        unit = _pick(score)
        for task, (h, response) in comp_act.items():
            for label, sel in (("respond", response), ("withhold", ~response)):
                if sel.any():
                    curves.append(_curve_rows("comp", task, unit, "step", np.arange(h.shape[1]),
                                              h[sel, :, unit].mean(0), label))

    unit_stats = (pd.concat(stats, ignore_index=True) if stats else
                  pd.DataFrame(columns=["analysis", "task", "unit", "statistic", "value"]))
    unit_curves = (pd.concat(curves, ignore_index=True) if curves else
                   pd.DataFrame(columns=["analysis", "task", "unit", "selection", "x_kind", "x",
                                         "condition", "activity"]))
    strings = {"analysis": "string", "task": "string"}
    return (unit_stats.astype({**strings, "statistic": "string"}),
            unit_curves.astype({**strings, "selection": "string", "x_kind": "string",
                                "condition": "string"}),
            task_variance_clusters(tv, max_clusters))


def _stat(stats: list[pd.DataFrame], analysis: str, task: str, statistic: str) -> np.ndarray:
    for s in stats:
        if s["analysis"].iat[0] == analysis and s["task"].iat[0] == task:
            sel = s[s["statistic"] == statistic]
            if len(sel):
                return sel["value"].to_numpy()
    raise KeyError((analysis, task, statistic))


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of x (n,) with every column of y (n, H); NaN where a column is constant."""
    from scipy import stats as sps

    const = y.std(0) < 1e-12
    if np.std(x) < 1e-12 or len(x) < 3:
        return np.full(y.shape[1], np.nan)
    safe = np.where(const[None, :], np.arange(len(x))[:, None], y)
    r = sps.pearsonr(x[:, None], safe, axis=0).statistic
    return np.where(const, np.nan, r)


def _contrast_groups(contrast: np.ndarray, max_groups: int = 6):
    values = np.round(contrast, 3)
    uniq = np.unique(values[np.isfinite(values)])
    if len(uniq) <= max_groups:
        return [(f"{v:+.3f}", values == v) for v in uniq]
    bins = pd.qcut(contrast, max_groups, duplicates="drop")
    return [(f"{iv.left:+.2f}…{iv.right:+.2f}", np.asarray(bins == iv)) for iv in bins.categories]


def _curve_rows(analysis, task, unit, x_kind, x, y, condition) -> pd.DataFrame:
    return pd.DataFrame({"analysis": analysis, "task": task, "unit": np.int32(unit),
                         "selection": SELECTION[analysis], "x_kind": x_kind,
                         "x": np.asarray(x, float), "condition": condition,
                         "activity": np.asarray(y, float)})


def task_variance_clusters(tv: Mapping[str, np.ndarray], max_clusters: int = 10) -> pd.DataFrame:
    """Normalised task variance per active unit, clustered (see module docstring).
    DataFrame(unit, task, variance, normalised, cluster)."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    cols = ["unit", "task", "variance", "normalised", "cluster"]
    if not tv:
        return pd.DataFrame(columns=cols)
    tasks = list(tv)
    v = np.stack([tv[t] for t in tasks], axis=1)  # (H, tasks)
    peak = v.max(1)
    active = np.flatnonzero(peak > 1e-3 * max(peak.max(), 1e-12))
    norm = v[active] / peak[active, None] if len(active) else v[:0]
    labels = np.zeros(len(active), int)
    best = -np.inf
    for k in range(2, min(max_clusters, len(active) - 1) + 1):
        lab = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(norm)
        if len(np.unique(lab)) < 2:
            continue
        s = silhouette_score(norm, lab)
        if s > best:
            best, labels = s, lab
    rows = pd.DataFrame({
        "unit": np.repeat(active, len(tasks)).astype(np.int32),
        "task": np.tile(tasks, len(active)),
        "variance": v[active].ravel(),
        "normalised": norm.ravel(),
        "cluster": np.repeat(labels, len(tasks)).astype(np.int32),
    })
    return rows[cols].astype({"task": "string"})
