"""Figure 5 (language production): produced instructions, their confusion matrix and
partner performance. Every function reads saved tables only (see
:mod:`instructnet.production`), writes ``<out stem>.png`` and ``.pdf`` and returns the
PNG path; an empty input gives a panel saying what is missing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..production.partners import SETTING_ORDER, SOURCES  # noqa: E402
from ..production.produce import NOVEL, confusion_matrix  # noqa: E402
from ..tasks import TASKS  # noqa: E402
from .style import STYLE, empty_figure, percent_axis, save_figure  # noqa: E402

SOURCE_LABELS = {"instructions": "all produced instructions", "novel": "novel instructions only",
                 "embedding": "embedding passed directly"}


def _label(row) -> str:
    if row["novel"]:
        return "novel (validation sentence)" if row.get("validation_match", False) else "novel"
    return f"training sentence of {row['match_task']}"


def fig5d_examples(produced: pd.DataFrame, out, task: str = "AntiDMMod1", n: int = 6) -> Path:
    """A table of up to ``n`` distinct produced instructions for ``task`` per instructing
    model (holdout group), with their label (novel or whose training sentence)."""
    title = f"Instructions produced for {task}"
    rows = produced[produced["task"] == task] if len(produced) else produced
    if rows is None or rows.empty:
        return empty_figure(out, f"no instructions were produced for {task} in this run", title)
    cells = []
    for holdout, g in rows.groupby("instructor_holdout", sort=True):
        g = g.drop_duplicates("text").head(n)
        held = " (task held out)" if bool(g["instructor_heldout"].any()) else ""
        for _, r in g.iterrows():
            cells.append([f"{holdout}{held}", textwrap.fill(str(r["text"]) or "(empty)", 70),
                          _label(r)])
    lines = sum(c[1].count("\n") + 1 for c in cells)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.32 * lines + 0.1 * len(cells)))
    ax.set_axis_off()
    table = ax.table(cellText=cells, colLabels=["instructing model", "produced instruction", "label"],
                     colWidths=[0.16, 0.6, 0.24], loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    row_lines = [1] + [c[1].count("\n") + 1 for c in cells]
    unit = 0.9 / (sum(row_lines) + 1)
    for (r, _), cell in table.get_celld().items():
        cell.set_height(row_lines[r] * unit)
        if r == 0:
            cell.set_text_props(weight="bold")
    ax.set_title(title)
    return save_figure(fig, out)


def fig5e_confusion(produced: pd.DataFrame, out, tasks=None) -> Path:
    """Confusion matrix per instructing model: produced task (rows) × the task whose
    training sentence it reproduced, or novel (columns); fraction novel in the title.
    Columns: the study's ``tasks`` (default all 50) and any other task reproduced."""
    title = "Produced instructions: training sentence set or novel"
    if produced is None or produced.empty:
        return empty_figure(out, "no produced instructions in this run", title)
    groups = list(produced.groupby("instructor_holdout", sort=True))
    produced_tasks = [t for t in TASKS if t in set(produced["task"])]
    shown = set(TASKS if tasks is None else tasks) | set(
        produced.loc[~produced["novel"], "match_task"].dropna().astype(str))
    cols = [*(t for t in TASKS if t in shown), NOVEL]
    with sns.axes_style("white"):
        fig, axes = plt.subplots(len(groups), 1, squeeze=False,
                                 figsize=(14, len(groups) * (2.4 + 0.28 * len(produced_tasks))))
        for ax, (holdout, g) in zip(axes[:, 0], groups):
            matrix = confusion_matrix(g, cols[:-1]).reindex(columns=cols, fill_value=0.0)
            sns.heatmap(matrix, ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=True,
                        xticklabels=cols, yticklabels=list(matrix.index),
                        cbar_kws={"label": "fraction"})
            novel = float(g["novel"].mean())
            ax.set_title(f"instructing model trained on {holdout}: {novel:.0%} of "
                         f"{len(g)} produced sentences novel")
            ax.set_xlabel("training sentence set reproduced")
            ax.set_ylabel("task")
            ax.tick_params(axis="x", labelsize=6, rotation=90)
            ax.tick_params(axis="y", labelsize=7, rotation=0)
    return save_figure(fig, out)


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return "n/a"
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def fig5f_partners(partners: pd.DataFrame, welch: pd.DataFrame, out) -> Path:
    """Partner accuracy by setting and source: bars = mean over (partner seed, task)
    means, dots = those means; Welch tests of instructions vs embedding annotated."""
    title = "Partner models performing from produced instructions"
    if partners is None or partners.empty:
        return empty_figure(out, "no partner evaluations in this run", title)
    units = partners.groupby(["setting", "source", "partner_seed", "task"], observed=True)[
        "accuracy"].mean().reset_index()
    settings = [s for s in SETTING_ORDER if s in set(units["setting"])]
    sources = [s for s in SOURCES if s in set(units["source"])]
    units["source_label"] = units["source"].map(SOURCE_LABELS)
    hue_order = [SOURCE_LABELS[s] for s in sources]
    palette = dict(zip(hue_order, sns.color_palette("Set2", len(hue_order))))
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(max(7, 2.4 * len(settings)), 4.8))
        kw = dict(data=units, x="setting", y="accuracy", hue="source_label", order=settings,
                  hue_order=hue_order, ax=ax)
        sns.barplot(**kw, palette=palette, errorbar=None, alpha=0.85)
        sns.stripplot(**{**kw, "palette": {h: "black" for h in hue_order}}, dodge=True, size=3,
                      legend=False, jitter=0.08)
        if welch is not None and len(welch):
            for i, setting in enumerate(settings):
                w = welch[(welch["setting"] == setting) & (welch["a"] == "instructions")
                          & (welch["b"] == "embedding")]
                if len(w):
                    ax.text(i, 1.04, f"instr. vs emb.: {_stars(float(w['p'].iloc[0]))}",
                            ha="center", fontsize=8)
        ax.set_ylim(0, 1.12)
        ax.set_xlabel("")
        ax.set_ylabel("partner accuracy")
        percent_axis(ax)
        ax.legend(title="", fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08),
                  ncol=len(hue_order), frameon=False)
        ax.set_title(title, pad=18)
    return save_figure(fig, out)
