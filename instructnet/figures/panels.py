"""Every figure panel the workflow draws, one definition each.

A panel is drawn from saved tables alone by the function of the same name in
``instructnet.figures.fig{figure}``, called as ``draw(*tables, out, **settings)``. The
plan (:mod:`instructnet.plan`) reads this registry to list a panel's input files and
settings; rule ``figure`` (workflow/rules/figures.smk) draws any panel through
:func:`draw_panel`. Importing this module loads no plotting library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Panel:
    """figure: the paper's figure (2-5; the report's category). tables: the tables it
    reads, by name: ``results/tables/{name}.parquet``, or for ``units`` panels the unit
    tables ``results/units/<holdout>/<model>/seed<seed>/{name}.parquet`` of the units
    model (``analysis.units``). settings: keyword arguments the plan fills in (``held``:
    the held-out tasks of the panel's holdout; ``model``: the units model; ``task``: the
    production example task; ``tasks``: the study's tasks). prepare: a table transform
    applied after the strict scoring is selected (``zero_shot``: batch 0 of learning
    curves; ``by_condition``: one Welch matrix per condition)."""

    figure: int
    tables: tuple[str, ...]
    settings: tuple[str, ...] = ()
    prepare: str | None = None
    units: bool = False


PANELS: dict[str, Panel] = {
    # Figure 2: held-out performance (and its supplementary figures)
    "fig2a_learning_curves": Panel(2, ("heldout",)),
    "fig2b_distribution": Panel(2, ("zero_shot",)),
    "fig2c_swapped": Panel(2, ("zero_shot", "swapped")),
    "fig2d_family": Panel(2, ("heldout_family",), prepare="zero_shot"),
    "fig2e_tuned": Panel(2, ("heldout_tuned",), prepare="zero_shot"),
    "fig2f_clause": Panel(2, ("clause_observed", "clause_null")),
    "supp_training_curves": Panel(2, ("train_logs",)),
    "supp_validation": Panel(2, ("validation",)),
    "supp_welch_heatmaps": Panel(2, ("welch",), prepare="by_condition"),
    # Figure 3: geometry of the task representations
    "fig3ad_pca": Panel(3, ("pca",), settings=("held",)),
    "fig3e_ccgp_zero_shot": Panel(3, ("ccgp", "zero_shot")),
    "fig3f_ccgp_layers": Panel(3, ("ccgp_summary", "ccgp_welch")),
    # Figure 4: single units of one model (and the task-variance clusters)
    "fig4a_go_tuning": Panel(4, ("unit_curves", "unit_stats"), ("model", "held"), units=True),
    "fig4b_matching": Panel(4, ("unit_curves",), ("model", "held"), units=True),
    "fig4c_dm_contrast": Panel(4, ("unit_curves",), ("model", "held"), units=True),
    "fig4d_comp": Panel(4, ("unit_curves",), ("model", "held"), units=True),
    "supp_task_variance": Panel(4, ("task_variance",), ("model",), units=True),
    # Figure 5: language production
    "fig5d_examples": Panel(5, ("production_produced",), settings=("task",)),
    "fig5e_confusion": Panel(5, ("production_produced",), settings=("tasks",)),
    "fig5f_partners": Panel(5, ("production_partners", "production_welch")),
}


def panels(figure: int) -> tuple[str, ...]:
    """The panels of one figure, in the registry's order."""
    return tuple(name for name, panel in PANELS.items() if panel.figure == figure)


def _prepare(kind: str | None, table):
    from ..analysis.stats import zero_shot_table

    if kind == "zero_shot":
        return zero_shot_table(table) if len(table) else table
    if kind == "by_condition":
        return ({c: t.drop(columns="condition") for c, t in table.groupby("condition", sort=False)}
                if len(table) else {})
    return table


def draw_panel(name: str, paths, out, **settings) -> Path:
    """Draw panel ``name`` from its table files (in the order of ``Panel.tables``) into
    ``out`` (PNG, and a PDF beside it). Accuracy tables are read in the strict scoring
    (the tables also hold the paper's rule, ``scoring == "paper"``)."""
    import pandas as pd

    from ..analysis.stats import scored

    panel = PANELS[name]
    if len(paths) != len(panel.tables):
        raise ValueError(f"{name} draws from {len(panel.tables)} tables "
                         f"({', '.join(panel.tables)}), got {len(paths)} files")
    tables = [_prepare(panel.prepare, scored(pd.read_parquet(p))) for p in paths]
    draw = getattr(importlib.import_module(f"{__package__}.fig{panel.figure}"), name)
    return draw(*tables, out, **settings)
