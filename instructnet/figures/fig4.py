"""Figure 4: single sensorimotor units, and the task-variance clusters (supplementary).

Drawn from the tables of :mod:`instructnet.analysis.units` only (``unit_stats``,
``unit_curves``, ``task_variance``); every panel names the unit it shows and the
criterion that selected it.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..analysis.stats import display_name  # noqa: E402
from ..tasks.constants import TASKS  # noqa: E402
from .style import STYLE, empty_figure, save_figure  # noqa: E402

GO_PAIRS = (("Go", "AntiGo"), ("RTGo", "AntiRTGo"), ("GoMod1", "AntiGoMod1"),
            ("GoMod2", "AntiGoMod2"), ("RTGoMod1", "AntiRTGoMod1"), ("RTGoMod2", "AntiRTGoMod2"))


def _label(task: str, held) -> str:
    return f"{task} (held out)" if task in held else task


def _curves(curves: pd.DataFrame, analysis: str) -> pd.DataFrame:
    return curves[curves["analysis"] == analysis] if curves is not None and len(curves) else pd.DataFrame()


def _subtitle(d: pd.DataFrame, model: str) -> str:
    return f"{display_name(model)}, unit {int(d['unit'].iat[0])} — selected by {d['selection'].iat[0]}"


def fig4a_go_tuning(curves: pd.DataFrame, stats: pd.DataFrame, out, model: str = "",
                    held=()) -> Path:
    """Direction tuning of one unit in each pro/anti pair of the Go family (pro solid,
    anti dashed); the preferred-direction shift AntiGo − Go is in the title."""
    title = "Figure 4a: direction tuning across the Go family"
    d = _curves(curves, "go")
    if d.empty:
        return empty_figure(out, "no Go-family tuning in this run", title)
    unit = int(d["unit"].iat[0])
    shift = stats[(stats["task"] == "AntiGo-Go") & (stats["unit"] == unit)]["value"]
    shift_text = f"; preferred direction AntiGo − Go = {shift.iat[0] / math.pi:+.2f}π" if len(shift) else ""
    pairs = [p for p in GO_PAIRS if (d["task"] == p[0]).any() or (d["task"] == p[1]).any()]
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharey=True)
        for ax, (pro, anti) in zip(axes.ravel(), pairs):
            for task, style in ((pro, "-"), (anti, "--")):
                g = d[d["task"] == task].sort_values("x")
                if len(g):
                    ax.plot(g["x"], g["activity"], style, marker="o", ms=3,
                            color="tab:blue" if style == "-" else "tab:red", label=_label(task, held))
            ax.set_xticks([0, math.pi / 2, math.pi, 3 * math.pi / 2, 2 * math.pi])
            ax.set_xticklabels(["0", "π/2", "π", "3π/2", "2π"])
            ax.set_xlabel("stimulus direction")
            ax.legend(fontsize=7)
        for ax in axes.ravel()[len(pairs):]:
            ax.set_axis_off()
        axes[0, 0].set_ylabel("mean activity (stimulus on)")
        axes[1, 0].set_ylabel("mean activity (stimulus on)")
        fig.suptitle(f"{title}\n{_subtitle(d, model)}{shift_text}", fontsize=10)
        return save_figure(fig, out)


def _time_panels(d: pd.DataFrame, tasks, out, title: str, model: str, held, palette=None) -> Path:
    tasks = [t for t in tasks if (d["task"] == t).any()]
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), sharey=True,
                                 squeeze=False)
        for ax, task in zip(axes[0], tasks):
            g = d[d["task"] == task]
            conditions = list(dict.fromkeys(g["condition"]))
            colors = palette or dict(zip(conditions, sns.color_palette("coolwarm", len(conditions))))
            for c in conditions:
                h = g[g["condition"] == c].sort_values("x")
                ax.plot(h["x"], h["activity"], color=colors.get(c), label=c, lw=1.4)
            ax.set_title(_label(task, held), fontsize=10)
            ax.set_xlabel("time step (20 ms)")
            ax.legend(fontsize=7)
        axes[0, 0].set_ylabel("activity")
        fig.suptitle(f"{title}\n{_subtitle(d, model)}", fontsize=10)
        return save_figure(fig, out)


def fig4b_matching(curves: pd.DataFrame, out, model: str = "", held=()) -> Path:
    """One unit's mean activity over time, match vs non-match trials, in the four
    matching tasks."""
    title = "Figure 4b: match vs non-match"
    d = _curves(curves, "matching")
    if d.empty:
        return empty_figure(out, "no matching-task units in this run", title)
    return _time_panels(d, ("DMS", "DNMS", "DMC", "DNMC"), out, title, model, held,
                        {"match": "tab:green", "non-match": "tab:purple"})


def fig4c_dm_contrast(curves: pd.DataFrame, out, model: str = "", held=()) -> Path:
    """One unit's mean activity over time per contrast (stim1 − stim2) in DM and AntiDM
    (trials rotated so that stimulus 1 points at 0)."""
    title = "Figure 4c: evidence accumulation by contrast"
    d = _curves(curves, "dm")
    if d.empty:
        return empty_figure(out, "no DM units in this run", title)
    return _time_panels(d, ("DM", "AntiDM"), out, title, model, held)


def fig4d_comp(curves: pd.DataFrame, out, model: str = "", held=()) -> Path:
    """One unit's mean activity over time on response vs withhold trials of COMP1 and
    COMP2."""
    title = "Figure 4d: COMP1 vs COMP2"
    d = _curves(curves, "comp")
    if d.empty:
        return empty_figure(out, "no COMP units in this run", title)
    return _time_panels(d, ("COMP1", "COMP2"), out, title, model, held,
                        {"respond": "tab:blue", "withhold": "tab:grey"})


def supp_task_variance(variance: pd.DataFrame, out, model: str = "") -> Path:
    """Normalised task variance of every active unit (rows, grouped by cluster) in every
    task (columns, canonical order)."""
    title = "Task variance of sensorimotor units, clustered"
    if variance is None or variance.empty:
        return empty_figure(out, "no task variance in this run", title)
    grid = variance.pivot(index="unit", columns="task", values="normalised")
    grid = grid[[t for t in TASKS if t in grid.columns]]
    clusters = variance.groupby("unit")["cluster"].first().loc[grid.index]
    order = np.lexsort((-grid.to_numpy().argmax(1), clusters.to_numpy()))
    grid = grid.iloc[order]
    sorted_clusters = clusters.iloc[order].to_numpy()
    with sns.axes_style("white"):
        fig, ax = plt.subplots(figsize=(12, 7))
        sns.heatmap(grid.to_numpy(), ax=ax, cmap="magma", vmin=0, vmax=1,
                    cbar_kws={"label": "normalised task variance"},
                    xticklabels=list(grid.columns), yticklabels=False)
        for b in np.flatnonzero(np.diff(sorted_clusters)) + 1:
            ax.axhline(b, color="white", lw=1.2)
        ax.set_xticklabels(ax.get_xticklabels(), rotation=90, fontsize=7)
        ax.set_ylabel(f"{len(grid)} active units, {len(np.unique(sorted_clusters))} clusters")
        ax.set_title(f"{title} ({display_name(model)})" if model else title)
        return save_figure(fig, out)
