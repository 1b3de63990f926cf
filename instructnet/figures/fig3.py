"""Figure 3: task representations — PCA (a–d), CCGP vs zero-shot (e), CCGP per layer (f).

Every function draws from saved tables only (``results/tables/pca.parquet``,
``ccgp.parquet``, ``ccgp_summary.parquet``, ``ccgp_welch.parquet``, ``zero_shot``),
writes ``<stem>.png`` and ``<stem>.pdf`` and returns the PNG path; missing data gives
a panel saying what is missing.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..analysis.ccgp import ccgp_vs_zero_shot  # noqa: E402
from ..analysis.paper import points_correlation  # noqa: E402
from ..analysis.stats import display_name, order_models  # noqa: E402
from .style import STYLE, empty_figure, message_panel, model_color, save_figure  # noqa: E402

PCA_COLORS = {"DMMod1": "#1f77b4", "AntiDMMod1": "#d62728", "DMMod2": "#2ca02c",
              "AntiDMMod2": "#ff7f0e"}
# The axes drawn between task centroids: Pro/Anti (solid) and Mod1/Mod2 (dashed).
PCA_AXES = ((("DMMod1", "AntiDMMod1"), "-", "Pro/Anti"), (("DMMod2", "AntiDMMod2"), "-", None),
            (("DMMod1", "DMMod2"), "--", "Mod1/Mod2"), (("AntiDMMod1", "AntiDMMod2"), "--", None))
LAYER_TITLES = {"embedding": "task embedding (64-d)", "rnn": "sensorimotor RNN at stimulus onset"}
CONDITION_TITLES = {"heldout": "held-out tasks", "swapped": "held-out tasks, swapped instructions",
                    "all_tasks": "all tasks (models trained on all)"}


def fig3ad_pca(pca: pd.DataFrame, out, held: set[str] | frozenset = frozenset({"AntiDMMod1"}),
               max_points: int = 80) -> Path:
    """One row per model: the first three PCs of its task embeddings and RNN states for
    DMMod1, AntiDMMod1, DMMod2, AntiDMMod2, with lines between the task centroids along
    the Pro/Anti and Mod1/Mod2 axes. Held-out tasks are drawn with crosses."""
    title = "Figure 3a–d: PCA of task representations"
    if pca is None or pca.empty:
        return empty_figure(out, "no PCA table in this run", title)
    models = order_models(pca["model"])
    layers = [layer for layer in ("embedding", "rnn") if (pca["layer"] == layer).any()]
    fig = plt.figure(figsize=(4.2 * len(layers), 3.6 * len(models)))
    for i, model in enumerate(models):
        for j, layer in enumerate(layers):
            ax = fig.add_subplot(len(models), len(layers), i * len(layers) + j + 1, projection="3d")
            d = pca[(pca["model"] == model) & (pca["layer"] == layer)]
            if d.empty:
                message_panel(ax, "no data")
                continue
            centroids = {}
            for task, g in d.groupby("task", sort=False):
                g = g.iloc[:: max(1, len(g) // max_points)]
                ax.scatter(g["pc1"], g["pc2"], g["pc3"], s=10, alpha=0.6,
                           color=PCA_COLORS.get(task, "grey"),
                           marker="x" if task in held else "o",
                           label=f"{task}{' (held out)' if task in held else ''}")
                centroids[task] = d.loc[d["task"] == task, ["pc1", "pc2", "pc3"]].mean().to_numpy()
            for (a, b), style, label in PCA_AXES:
                if a in centroids and b in centroids:
                    seg = np.stack([centroids[a], centroids[b]])
                    ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], style, color="black", lw=1.4,
                            label=label)
            ev = [d[f"explained{k}"].iat[0] for k in (1, 2, 3)]
            ax.set_xlabel(f"PC1 ({ev[0]:.0%})", fontsize=7)
            ax.set_ylabel(f"PC2 ({ev[1]:.0%})", fontsize=7)
            ax.set_zlabel(f"PC3 ({ev[2]:.0%})", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{display_name(model)}: {LAYER_TITLES.get(layer, layer)}", fontsize=9)
            if i == 0 and j == len(layers) - 1:
                ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.05, 1.0))
    fig.suptitle(title + f" (holdout {pca['holdout'].iat[0]}, seed {pca['seed'].iat[0]})")
    return save_figure(fig, out)


def fig3e_ccgp_zero_shot(ccgp: pd.DataFrame, zero_shot: pd.DataFrame, out,
                         stage: str = "rnn") -> Path:
    """Held-out CCGP of the RNN states against zero-shot accuracy, one point per model and
    held-out task (means over seeds), with the Pearson correlation (scipy)."""
    title = "Figure 3e: held-out CCGP vs zero-shot accuracy"
    points = (ccgp_vs_zero_shot(ccgp, zero_shot, stage)
              if ccgp is not None and len(ccgp) and zero_shot is not None and len(zero_shot)
              else pd.DataFrame())
    if points.empty:
        return empty_figure(out, "no held-out task has both a CCGP and a zero-shot score", title)
    points["display"] = points["model"].map(display_name)
    models = order_models(points["model"])
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(6.5, 5))
        sns.regplot(data=points, x="ccgp", y="zero_shot", scatter=False, ax=ax, color="grey",
                    ci=None, line_kws={"lw": 1})
        sns.scatterplot(data=points, x="ccgp", y="zero_shot", hue="display",
                        hue_order=[display_name(m) for m in models],
                        palette={display_name(m): model_color(m) for m in models}, ax=ax, s=45)
        c = points_correlation(points)  # the number fidelity.md reports
        if not np.isnan(c["r"]):
            text = f"Pearson r = {c['r']:.3f}, p = {c['p']:.2g} (n = {c['n']})"
        else:
            text = f"Pearson r undefined (n = {c['n']} points)"
        ax.text(0.02, 0.97, text + "\npaper: r = 0.606", transform=ax.transAxes, va="top",
                fontsize=9, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.set_xlabel(f"held-out CCGP ({LAYER_TITLES.get(stage, stage)})")
        ax.set_ylabel("zero-shot accuracy")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(title)
        return save_figure(fig, out)


def _position_label(p: int) -> str:
    if p == 0:
        return "RNN"
    if p == -1:
        return "embedding"
    if p == -2:
        return "LM last / rule"
    return f"LM last{p + 2}"


def fig3f_ccgp_layers(summary: pd.DataFrame, welch: pd.DataFrame, out) -> Path:
    """CCGP per layer, from the language model's layers through the task embedding to
    the sensorimotor RNN (layers aligned from the RNN backwards), one line per model
    (mean ± SD over seeds), one panel per condition; Welch tests between neighbouring
    models at the RNN are listed under each panel."""
    title = "Figure 3f: CCGP across the hierarchy"
    if summary is None or summary.empty:
        return empty_figure(out, "no CCGP in this run", title)
    conditions = [c for c in CONDITION_TITLES if (summary["condition"] == c).any()]
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(1, len(conditions), figsize=(6.2 * len(conditions), 5.2),
                                 squeeze=False)
        for ax, condition in zip(axes[0], conditions):
            d = summary[summary["condition"] == condition]
            positions = sorted(d["position"].unique())
            for model in order_models(d["model"]):
                g = d[d["model"] == model].groupby("position")["ccgp"].agg(["mean", "std", "count"])
                sd = g["std"].fillna(0).to_numpy()
                ax.errorbar(g.index, g["mean"], yerr=sd, marker="o", ms=4, lw=1.4, capsize=2,
                            color=model_color(model),
                            label=f"{display_name(model)} (n={int(g['count'].max())})")
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.set_xticks(positions)
            ax.set_xticklabels([_position_label(int(p)) for p in positions], rotation=40,
                               ha="right", fontsize=8)
            ax.set_ylim(0.3, 1.02)
            ax.set_ylabel("CCGP")
            ax.set_title(CONDITION_TITLES[condition], fontsize=10)
            ax.legend(fontsize=7, loc="lower left")
            w = welch[(welch["condition"] == condition) & (welch["stage"] == "rnn")] \
                if welch is not None and len(welch) else pd.DataFrame()
            lines = []
            for _, r in w.iterrows():
                stat = (f"t={r['t']:.2f}, p={r['p']:.2g}" if np.isfinite(r["p"])
                        else "n/a (< 2 seeds)")
                lines.append(f"{display_name(r['model_a'])} vs {display_name(r['model_b'])}: {stat}")
            if lines:
                ax.text(0.0, -0.32, "Welch, RNN layer:\n" + "\n".join(lines[:8]),
                        transform=ax.transAxes, va="top", fontsize=7)
        fig.suptitle(title)
        return save_figure(fig, out)
