"""From collected evaluation tables to the statistics the figures and the fidelity
table read (rule ``statistics``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from . import paper
from .stats import clause_analysis, summary, welch_matrix, zero_shot_table


def _zero_shot_like(table: pd.DataFrame) -> pd.DataFrame:
    """Tests without learning: mean accuracy over repeats per holdout, model, seed, task."""
    keys = ["holdout", "model", "seed", "task"]
    return table.groupby(keys, as_index=False, observed=True)["accuracy"].mean()


def condition_tables(heldout: pd.DataFrame, extra: Mapping[str, pd.DataFrame]) -> dict:
    """Per-task accuracy tables by test condition (empty tables are left out)."""
    conditions = {}
    if len(heldout):
        zs = zero_shot_table(heldout)
        conditions["zero-shot"] = zs
        last = heldout[heldout["batch"] == heldout["batch"].max()]
        conditions["after held-out learning"] = _zero_shot_like(last)
    for name, table in extra.items():
        if not len(table):
            continue
        if name == "input_only":
            conditions["input weights only, zero-shot"] = zero_shot_table(table)
            end = table[table["batch"] == table["batch"].max()]
            conditions["input weights only, after learning"] = _zero_shot_like(end)
        else:
            conditions[name] = _zero_shot_like(table)
    return conditions


def statistics(heldout: pd.DataFrame, extra: Mapping[str, pd.DataFrame], config_name: str,
               seed: int = 0) -> dict[str, pd.DataFrame | str]:
    """Every table of the statistics stage, keyed like the rule's outputs."""
    conditions = condition_tables(heldout, extra)
    zs = conditions.get("zero-shot", pd.DataFrame(columns=["holdout", "model", "seed", "task", "accuracy"]))
    swap = zs[zs["holdout"].astype(str).str.startswith("swap")] if len(zs) else zs
    family = zs[zs["holdout"].astype(str).str.startswith("family")] if len(zs) else zs
    summaries, welch = [], []
    for name, table in conditions.items():
        summaries.append(summary(table).assign(condition=name))
        welch.append(welch_matrix(table).assign(condition=name))
    observed, null, tests = clause_analysis(swap if len(swap) else zs, n_null=50, seed=seed)
    ours = {paper.MEASURE_SWAP: summary(swap) if len(swap) else None,
            paper.MEASURE_FAMILY: summary(family) if len(family) else None}
    if "validation" in conditions:  # the paper's condition: models trained on every task
        valid = conditions["validation"]
        valid = valid[valid["holdout"].astype(str) == "multitask"]
        ours[paper.MEASURE_VALIDATION] = summary(valid) if len(valid) else None
    if "combined" in conditions:
        ours[paper.MEASURE_COMBINED] = summary(conditions["combined"])
    if len(swap):
        tuned = swap[swap["model"].astype(str).str.endswith("_tuned")]
        ours[paper.MEASURE_TUNED] = summary(tuned) if len(tuned) else None
        anti = swap[swap["task"] == "AntiDMMod1"]
        ours[paper.MEASURE_ANTIDMMOD1] = summary(anti) if len(anti) else None
    fidelity = paper.fidelity_table({k: v for k, v in ours.items() if v is not None}, config_name)
    return {
        "zero_shot": zs,
        "summary": summary(swap if len(swap) else zs),
        "conditions": pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(),
        "welch": pd.concat(welch, ignore_index=True) if welch else pd.DataFrame(),
        "clause_observed": observed,
        "clause_null": null,
        "clause_tests": tests,
        "fidelity": fidelity,
        "fidelity_md": paper.fidelity_markdown(fidelity, config_name),
    }
