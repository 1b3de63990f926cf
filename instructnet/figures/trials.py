"""Example trials as heatmaps: inputs, targets and loss mask over time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..tasks import FAMILY_OF, PAPER, Stimulus, TrialBatch, render  # noqa: E402
from ..tasks.constants import DT_MS, N_RING  # noqa: E402


def _describe(row: pd.Series) -> str:
    if row["response"]:
        return f"respond {math.degrees(row['target_dir']):.0f}°"
    return "withhold"


def _heatmap(ax, data, title, vmax, cmap, boundaries, ylabels):
    sns.heatmap(data.T, ax=ax, cmap=cmap, vmin=0, vmax=vmax, cbar=True, xticklabels=25,
                yticklabels=False, rasterized=True)
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    for y, label in ylabels:
        ax.axhline(y, color="white", lw=0.6)
        ax.text(-2, y + 0.5, label, ha="right", va="bottom", fontsize=7)
    for x in boundaries:
        ax.axvline(x, color="white", lw=0.6, ls=":")
    ax.set_xlabel(f"time step ({DT_MS} ms)", fontsize=8)


def plot_trials(trials: pd.DataFrame, out: str | Path, stimulus: Stimulus = PAPER,
                title: str | None = None):
    """One row of heatmaps (inputs | targets | mask) per trial of ``trials``, rendered
    with ``stimulus`` (the run's ``trials.convention``).

    Rendering is noise-free so that the stimuli are visible; epoch boundaries are
    dotted lines.
    """
    trials = trials.reset_index(drop=True)
    r = render(TrialBatch.from_frame(trials, stimulus=stimulus), noise=False)
    n = len(trials)
    fig, axes = plt.subplots(n, 3, figsize=(13, 2.6 * n), squeeze=False)
    for i, row in trials.iterrows():
        bounds = sorted({int(row[c]) for c in ("stim1_on", "stim1_off", "stim2_on", "go_on")})
        label = f"{row['task']} ({FAMILY_OF[row['task']]}): {_describe(row)}"
        _heatmap(axes[i, 0], r.inputs[i].numpy(), f"{label} — inputs", 1.3, "viridis", bounds,
                 [(0, "fix"), (1, "mod 1"), (1 + N_RING, "mod 2")])
        _heatmap(axes[i, 1], r.targets[i].numpy(), "targets", 1.0, "viridis", bounds,
                 [(0, "fix"), (1, "ring")])
        _heatmap(axes[i, 2], r.mask[i].numpy(), "loss mask", 10.0, "magma", bounds,
                 [(0, "fix"), (1, "ring")])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def task_examples(pools: Sequence[pd.DataFrame], out: str | Path, stimulus: Stimulus = PAPER):
    """One example trial per given task (the first response trial of each pool if any)."""
    picks = []
    for pool in pools:
        resp = pool[pool["response"]]
        picks.append((resp if len(resp) else pool).iloc[[0]])
    return plot_trials(pd.concat(picks, ignore_index=True), out, stimulus,
                       title=f"Example trials (noise-free rendering, {stimulus.convention} "
                             f"convention, k = {stimulus.tuning:g})")
