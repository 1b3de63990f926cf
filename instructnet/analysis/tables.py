"""From collected evaluation tables to the statistics the figures and the fidelity
table read (rule ``statistics``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from . import paper
from .stats import clause_analysis, scored, scorings, summary, welch_matrix, zero_shot_table


def _zero_shot_like(table: pd.DataFrame) -> pd.DataFrame:
    """Tests without learning: mean accuracy over repeats per holdout, model, seed, task."""
    keys = [k for k in ("holdout", "model", "seed", "task") if k in table.columns]
    return table.groupby(keys, as_index=False, observed=True)["accuracy"].mean()


def condition_tables(heldout: pd.DataFrame, extra: Mapping[str, pd.DataFrame]) -> dict:
    """Per-task accuracy tables by test condition (empty tables are left out), from tables
    of one scoring rule (see ``stats.scored``)."""
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


def _of_scheme(zs: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The rows of holdout groups of one scheme (swap…, family…)."""
    return zs[zs["holdout"].astype(str).str.startswith(prefix)] if len(zs) else zs


def headline_measures(conditions: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Our value of each §8 measure that the run has (per-model summaries), from the
    condition tables of one scoring rule."""
    zs = conditions.get("zero-shot", pd.DataFrame(columns=["holdout", "model", "seed", "task", "accuracy"]))
    swap, family = _of_scheme(zs, "swap"), _of_scheme(zs, "family")
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
    return {k: v for k, v in ours.items() if v is not None}


def _with_scoring(frames: Mapping) -> pd.DataFrame:
    """Concatenate {scoring: table} with a ``scoring`` column (none for [None]), placed
    before ``accuracy`` in accuracy tables and first in summaries."""
    parts = []
    for scoring, table in frames.items():
        table = table.copy()
        if scoring is not None:
            at = table.columns.get_loc("accuracy") if "accuracy" in table.columns else 0
            table.insert(at, "scoring", scoring)
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def statistics(heldout: pd.DataFrame, extra: Mapping[str, pd.DataFrame], config_name: str,
               seed: int = 0) -> dict[str, pd.DataFrame | str]:
    """Every table of the statistics stage, keyed like the rule's outputs.

    Accuracy tables carry a ``scoring`` column (strict, paper) when the evaluation
    tables do; every statistic is computed per scoring rule, the clause analysis on the
    strict rule only; the fidelity table puts both beside the paper's values."""
    rules = scorings(heldout)
    per_rule = {s: condition_tables(scored(heldout, s) if s else heldout,
                                    {k: scored(v, s) if s else v for k, v in extra.items()})
                for s in rules}
    empty = pd.DataFrame(columns=["holdout", "model", "seed", "task", "accuracy"])
    zs_by = {s: c.get("zero-shot", empty) for s, c in per_rule.items()}
    summary_by, conditions_by, welch_by = {}, {}, {}
    for s, conditions in per_rule.items():
        zs = zs_by[s]
        swap = _of_scheme(zs, "swap")
        summary_by[s] = summary(swap if len(swap) else zs)
        conditions_by[s] = pd.concat([summary(t).assign(condition=n) for n, t in conditions.items()],
                                     ignore_index=True) if conditions else pd.DataFrame()
        welch_by[s] = pd.concat([welch_matrix(t).assign(condition=n) for n, t in conditions.items()],
                                ignore_index=True) if conditions else pd.DataFrame()
    main = rules[0]  # strict when present
    zs = zs_by[main]
    swap = _of_scheme(zs, "swap")
    observed, null, tests = clause_analysis(swap if len(swap) else zs, n_null=50, seed=seed)
    ours = {s: headline_measures(c) for s, c in per_rule.items()}
    fidelity = paper.fidelity_table(ours, config_name)
    return {
        "zero_shot": _with_scoring(zs_by),
        "summary": _with_scoring(summary_by),
        "conditions": _with_scoring(conditions_by),
        "welch": _with_scoring(welch_by),
        "clause_observed": observed,
        "clause_null": null,
        "clause_tests": tests,
        "fidelity": fidelity,
        "fidelity_md": paper.fidelity_markdown(fidelity, config_name),
    }
