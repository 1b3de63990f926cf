"""Figure 2 (generalisation of instructed models) and its supplementary panels.

Every function takes saved tables (see ``instructnet.analysis.stats``), does no more
than simple aggregation, writes ``<out stem>.png`` and ``<out stem>.pdf`` and returns
the PNG path. All work at demo scale (one model, one seed) and with optional models
missing; an empty input gives a panel that says what is missing instead of an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..analysis.stats import (  # noqa: E402
    display_name,
    learning_curves,
    order_models,
    per_seed,
    split_variant,
)
from .style import (  # noqa: E402
    STYLE,
    empty_figure,
    message_panel,
    model_color,
    model_palette,
    percent_axis,
    save_figure,
)


# --- helpers ------------------------------------------------------------------------
def _width(n: int, per: float = 0.75, lo: float = 5.0) -> float:
    return max(lo, 1.5 + per * n)


def _bars_with_seeds(ax, seeds: pd.DataFrame, order: list[str], hue: str | None = None,
                     hue_order: list[str] | None = None, palette=None):
    """Bars = mean over seeds, dots = one per seed. ``seeds`` has display, accuracy[, hue]."""
    kw = dict(data=seeds, x="display", y="accuracy", order=order, ax=ax)
    if hue:
        kw.update(hue=hue, hue_order=hue_order, palette=palette)
        sns.barplot(**kw, errorbar=None, alpha=0.8)
        # one dark dot per seed (a palette of black: stripplot ignores color= with hue)
        sns.stripplot(**{**kw, "palette": {h: "black" for h in (hue_order or seeds[hue].unique())}},
                      dodge=True, size=4, legend=False, jitter=0.08)
    else:
        pal = palette or {}
        sns.barplot(**kw, errorbar=None, hue="display", palette=pal, legend=False, alpha=0.85)
        sns.stripplot(**kw, color="black", size=4, jitter=0.08)
    ax.set_xlabel("")
    ax.set_ylabel("zero-shot accuracy")
    ax.set_ylim(0, 1.02)
    percent_axis(ax)
    ax.tick_params(axis="x", rotation=35)
    for label in ax.get_xticklabels():
        label.set_ha("right")


def _seed_means(table: pd.DataFrame) -> pd.DataFrame:
    s = per_seed(table)
    s["display"] = s["model"].map(display_name)
    return s


# --- Figure 2 -----------------------------------------------------------------------
def fig2a_learning_curves(heldout: pd.DataFrame, out, max_batch: int = 100) -> Path:
    """Held-out accuracy vs batch (first ``max_batch`` batches; batch 0 = zero-shot),
    mean ± SD over seeds, one line per model."""
    title = "Held-out tasks: learning curves"
    if heldout is None or heldout.empty:
        return empty_figure(out, "no held-out learning data in this run", title)
    curves = learning_curves(heldout[heldout["batch"] < max_batch])
    models = order_models(curves["model"])
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for m in models:
            c = curves[curves["model"] == m]
            color = model_color(m)
            ax.plot(c["batch"], c["mean"], color=color, lw=1.6,
                    label=f"{display_name(m)} (n={int(c['n_seeds'].max())})")
            sd = c["sd"].fillna(0).to_numpy()
            ax.fill_between(c["batch"], c["mean"] - sd, c["mean"] + sd, color=color, alpha=0.15,
                            lw=0)
        ax.set_xlabel("batches of training on the held-out task (0 = zero-shot)")
        ax.set_ylabel("accuracy on held-out tasks")
        ax.set_ylim(0, 1.02)
        percent_axis(ax)
        ax.set_title(f"{title} (mean ± SD over seeds)")
        ax.legend(fontsize=8, loc="lower right", frameon=True)
        return save_figure(fig, out)


def fig2b_distribution(zero_shot: pd.DataFrame, out) -> Path:
    """Distribution over held-out tasks of zero-shot accuracy (task means over seeds)."""
    title = "Zero-shot accuracy across held-out tasks"
    if zero_shot is None or zero_shot.empty:
        return empty_figure(out, "no zero-shot data in this run", title)
    tasks = zero_shot.groupby(["model", "task"], as_index=False)["accuracy"].mean()
    tasks["display"] = tasks["model"].map(display_name)
    models = order_models(tasks["model"])
    order = [display_name(m) for m in models]
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, max(3.0, 1.0 + 0.5 * len(models))))
        sns.boxplot(data=tasks, y="display", x="accuracy", order=order, hue="display",
                    palette=model_palette(models), legend=False, showfliers=False, ax=ax,
                    boxprops={"alpha": 0.6})
        sns.stripplot(data=tasks, y="display", x="accuracy", order=order, color="black",
                      size=3, jitter=0.2, ax=ax)
        ax.set_xlim(-0.02, 1.02)
        percent_axis(ax, "x")
        ax.set_xlabel("zero-shot accuracy of a held-out task (mean over seeds)")
        ax.set_ylabel("")
        ax.set_title(title)
        return save_figure(fig, out)


def fig2c_swapped(zero_shot: pd.DataFrame, swapped: pd.DataFrame, out) -> Path:
    """Held-out zero-shot with the task's own instructions vs instructions of another task."""
    title = "Zero-shot: correct vs swapped instructions"
    parts = []
    if zero_shot is not None and not zero_shot.empty:
        parts.append(_seed_means(zero_shot).assign(instructions="correct"))
    if swapped is not None and not swapped.empty:
        parts.append(_seed_means(swapped).assign(instructions="swapped"))
    if not parts:
        return empty_figure(out, "no zero-shot or swapped-instruction data in this run", title)
    seeds = pd.concat(parts, ignore_index=True)
    models = order_models(seeds["model"])
    order = [display_name(m) for m in models]
    hue_order = [h for h in ("correct", "swapped") if h in set(seeds["instructions"])]
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(_width(len(models), 0.9), 4.5))
        _bars_with_seeds(ax, seeds, order, hue="instructions", hue_order=hue_order,
                         palette={"correct": "#3a7dc9", "swapped": "#c9c9c9"})
        ax.legend(title="instructions", fontsize=8, loc="upper left")
        note = "" if "swapped" in hue_order else "\n(no swapped-instruction data in this run)"
        ax.set_title(title + note)
        return save_figure(fig, out)


def _per_model_bars(table: pd.DataFrame, out, title: str, ylabel: str, empty: str) -> Path:
    if table is None or table.empty:
        return empty_figure(out, empty, title)
    seeds = _seed_means(table)
    models = order_models(seeds["model"])
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(_width(len(models)), 4.5))
        _bars_with_seeds(ax, seeds, [display_name(m) for m in models], palette=model_palette(models))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        return save_figure(fig, out)


def fig2d_family(zero_shot_family: pd.DataFrame, out) -> Path:
    """Zero-shot accuracy with whole task families held out (bars: mean, dots: seeds)."""
    return _per_model_bars(zero_shot_family, out, "Zero-shot, family holdouts",
                           "zero-shot accuracy (family held out)",
                           "no family-holdout data in this run")


def fig2e_tuned(zero_shot: pd.DataFrame, out) -> Path:
    """Frozen vs tuned language model, for each language model with a tuned variant."""
    title = "Tuning the language model"
    if zero_shot is None or zero_shot.empty:
        return empty_figure(out, "no zero-shot data in this run", title)
    models = set(zero_shot["model"].astype(str))
    tuned = [m for m in models if "tuned" in split_variant(m)[1]]
    if not tuned:
        return empty_figure(out, "no tuned models in this run", title)
    seeds = _seed_means(zero_shot)
    keep = set()
    for t in tuned:
        frozen = t[: -len("_tuned")]
        keep.update({t, frozen})
    seeds = seeds[seeds["model"].isin(keep)].copy()
    seeds["base"] = seeds["model"].map(lambda m: m[: -len("_tuned")] if m.endswith("_tuned") else m)
    seeds["language model"] = np.where(seeds["model"].str.endswith("_tuned"), "tuned", "frozen")
    seeds["display"] = seeds["base"].map(display_name)
    bases = order_models(seeds["base"])
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(_width(len(bases), 1.2), 4.5))
        hue_order = [h for h in ("frozen", "tuned") if h in set(seeds["language model"])]
        _bars_with_seeds(ax, seeds, [display_name(b) for b in bases], hue="language model",
                         hue_order=hue_order, palette={"frozen": "#9bbbe0", "tuned": "#1f4e8c"})
        ax.legend(title="language model", fontsize=8, loc="upper left")
        missing = sorted(b for b in bases if b not in models)
        ax.set_title(title + (f" (no frozen run of {', '.join(map(display_name, missing))})"
                              if missing else ""))
        return save_figure(fig, out)


def fig2f_clause(observed: pd.DataFrame, null: pd.DataFrame, out) -> Path:
    """Conditional − imperative zero-shot difference per model (dots: seeds, bar: mean)
    against the null of random task splits (violins)."""
    title = "Conditional minus imperative tasks"
    if observed is None or observed.empty or observed["difference"].isna().all():
        return empty_figure(out, "no conditional/imperative comparison possible in this run",
                             title)
    obs = observed[observed["difference"].notna()].copy()
    obs["display"] = obs["model"].map(display_name)
    models = order_models(obs["model"])
    order = [display_name(m) for m in models]
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(_width(len(models), 0.9), 4.5))
        if null is not None and not null.empty:
            nl = null.copy()
            nl["display"] = nl["model"].map(display_name)
            nl = nl[nl["display"].isin(order)]
            sns.violinplot(data=nl, x="display", y="difference", order=order, color="#d9d9d9",
                           inner=None, cut=0, linewidth=0.6, ax=ax, density_norm="width")
        means = obs.groupby("display")["difference"].mean()
        for i, name in enumerate(order):
            ax.hlines(means[name], i - 0.3, i + 0.3, color="black", lw=2, zorder=4)
        sns.stripplot(data=obs, x="display", y="difference", order=order, hue="display",
                      palette=model_palette(models), legend=False, size=6, jitter=0.1, ax=ax,
                      edgecolor="black", linewidth=0.5, zorder=5)
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("")
        ax.set_ylabel("zero-shot: conditional − imperative")
        ax.tick_params(axis="x", rotation=35)
        for label in ax.get_xticklabels():
            label.set_ha("right")
        ax.set_title(f"{title}\ngrey: null of random task splits; dots: seeds; bar: mean",
                     fontsize=10)
        return save_figure(fig, out)


# --- supplementary ------------------------------------------------------------------
def supp_training_curves(train_logs: pd.DataFrame, out) -> Path:
    """Training accuracy and loss per epoch (mean over tasks; band: SD over seeds/holdouts)."""
    title = "Training"
    if train_logs is None or train_logs.empty:
        return empty_figure(out, "no training logs in this run", title)
    keys = [c for c in ("model", "holdout", "seed", "epoch") if c in train_logs.columns]
    runs = train_logs.groupby(keys, as_index=False)[["accuracy", "loss"]].mean()
    runs["display"] = runs["model"].map(display_name)
    models = order_models(runs["model"])
    order = [display_name(m) for m in models]
    with sns.axes_style(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        for ax, value, label in ((axes[0], "accuracy", "training accuracy (mean over tasks)"),
                                 (axes[1], "loss", "training loss (mean over tasks)")):
            sns.lineplot(data=runs, x="epoch", y=value, hue="display", hue_order=order,
                         palette=model_palette(models), errorbar="sd", ax=ax, marker="o",
                         markersize=3, legend=(value == "accuracy"))
            ax.set_ylabel(label)
            ax.set_xlabel("epoch")
        axes[0].set_ylim(0, 1.02)
        percent_axis(axes[0])
        axes[0].axhline(0.95, color="grey", ls="--", lw=0.8)
        if axes[0].get_legend():
            axes[0].legend(fontsize=8, title=None, loc="lower right")
        if runs["loss"].gt(0).all():
            axes[1].set_yscale("log")
        fig.suptitle(f"{title} (mean ± SD over seeds and holdouts; dashed: 95 % criterion)")
        return save_figure(fig, out)


def supp_validation(validation: pd.DataFrame, out) -> Path:
    """Accuracy with novel validation instructions on the tasks each model trained on."""
    return _per_model_bars(validation, out, "Validation instructions (trained tasks)",
                           "accuracy, validation instructions",
                           "no validation-instruction data in this run")


def supp_welch_heatmaps(matrices: Mapping[str, pd.DataFrame], out) -> Path:
    """One heatmap of two-sided Welch p-values (model_a × model_b) per condition;
    colour is −log10 p, cells are annotated with p; blank cells need ≥ 2 seeds."""
    title = "Welch t-tests between models (two-sided p)"
    items = [(k, v) for k, v in (matrices or {}).items() if v is not None and not v.empty]
    if not items:
        return empty_figure(out, "no pairwise tests in this run (needs ≥ 2 models)", title)
    n = len(items)
    sizes = [len(set(v["model_a"]) | set(v["model_b"])) for _, v in items]
    side = max(3.5, 1.5 + 0.6 * max(sizes))
    with sns.axes_style("white"):
        fig, axes = plt.subplots(1, n, figsize=(side * n + 1, side), squeeze=False)
        for ax, (cond, m) in zip(axes[0], items):
            models = order_models(set(m["model_a"]) | set(m["model_b"]))
            names = [display_name(x) for x in models]
            p = m.pivot_table(index="model_a", columns="model_b", values="p", aggfunc="first",
                              dropna=False).reindex(index=models, columns=models)
            if p.isna().all().all():
                message_panel(ax, "p undefined: every model\nneeds ≥ 2 seeds", cond)
                continue
            p.index, p.columns = names, names
            logp = -np.log10(p.clip(lower=1e-300).astype(float))
            annot = p.map(lambda x: "" if pd.isna(x) else (f"{x:.0e}" if x < 1e-3 else f"{x:.3f}"))
            sns.heatmap(logp, ax=ax, cmap="rocket_r", vmin=0, vmax=max(3.0, float(np.nanmax(logp))),
                        annot=annot if len(models) <= 14 else False, fmt="", square=True,
                        annot_kws={"fontsize": 7}, cbar_kws={"label": "−log10 p", "shrink": 0.7},
                        mask=p.isna())
            ax.set_title(cond)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.tick_params(axis="x", rotation=45, labelsize=8)
            ax.tick_params(axis="y", rotation=0, labelsize=8)
            for label in ax.get_xticklabels():
                label.set_ha("right")
        fig.suptitle(title)
        return save_figure(fig, out)
