"""The paper's headline numbers (METHODS §8) and a table putting ours beside them.

Only rows of §8 with a per-model number are encoded here; the CCGP correlation
(r = 0.606) and the partner-accuracy numbers of the production analysis are not
per-model and are listed in ``OTHER_HEADLINES`` for reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .stats import display_name, order_models

MEASURE_SWAP = "zero-shot, swap holdouts"
MEASURE_VALIDATION = "validation instructions (all tasks trained)"
MEASURE_FAMILY = "zero-shot, family holdouts"
MEASURE_TUNED = "zero-shot, swap holdouts, tuned language model"
MEASURE_COMBINED = "combined rule vectors"
MEASURE_ANTIDMMOD1 = "zero-shot, AntiDMMod1 held out (swap group 9)"

MEASURES: tuple[str, ...] = (
    MEASURE_SWAP, MEASURE_VALIDATION, MEASURE_FAMILY, MEASURE_TUNED, MEASURE_COMBINED,
    MEASURE_ANTIDMMOD1,
)

# measure -> {workflow model name: paper value (fraction)}; mean over 5 seeds.
PAPER_NUMBERS: dict[str, dict[str, float]] = {
    MEASURE_SWAP: {
        "simplenet": 0.39, "gptnet": 0.57, "bownet": 0.64, "bertnet": 0.66,
        "gptnet_xl": 0.68, "clipnet_s": 0.68, "sbertnet": 0.79, "sbertnet_l": 0.83,
        "structurenet": 0.88,
    },
    MEASURE_VALIDATION: {"sbertnet_l": 0.97, "sbertnet": 0.94},
    MEASURE_FAMILY: {"sbertnet_l": 0.71, "sbertnet": 0.72, "structurenet": 0.72},
    MEASURE_TUNED: {"sbertnet_l_tuned": 0.86},
    MEASURE_COMBINED: {"simplenet": 0.60},
    MEASURE_ANTIDMMOD1: {
        "structurenet": 0.92, "sbertnet_l": 0.82, "gptnet_xl": 0.06, "simplenet": 0.22,
    },
}

OTHER_HEADLINES: dict[str, str] = {
    "CCGP vs zero-shot": "Pearson r = 0.606",
    "partner accuracy from produced instructions":
        "93 % (partner trained on all tasks), 78 % (task held out from partner); novel "
        "sentences only 88 % / 75 %; embedding passed directly 31 % / 28 %; 53 % of "
        "produced sentences novel",
}

FIDELITY_COLUMNS = ["measure", "model", "display", "paper"]
# per scoring rule: mean, SD and 95 % t-interval over seeds, and the number of seeds
FIDELITY_STATS = ("ours", "sd", "ci_low", "ci_high", "n_seeds")
SCORING_NOTES = {
    "paper": "the reference code's rule, which computed the paper's numbers: one "
             "'did it respond' decision per batch (a known flaw, kept to compare like with like)",
    "strict": "per trial, our standard (figures use it)",
}
CONVENTION_NOTES = {
    "paper": "the paper's text: tuning width constant k = {k:g}, continuous directions, "
             "noise σ per trial",
    "reference": "the reference code's: tuning width constant k = {k:g}, directions snapped "
                 "down to the 32-unit grid, one noise σ per batch",
}


def paper_table() -> pd.DataFrame:
    """PAPER_NUMBERS as DataFrame(measure, model, display, paper)."""
    rows = [{"measure": m, "model": k, "display": display_name(k), "paper": v}
            for m, d in PAPER_NUMBERS.items() for k, v in d.items()]
    return pd.DataFrame(rows, columns=["measure", "model", "display", "paper"])


def _by_scoring(ours: Mapping) -> dict:
    """``{scoring: {measure: summary}}`` from either that or a plain ``{measure: summary}``
    (one unnamed rule, reported as ``ours``)."""
    if ours and all(isinstance(v, Mapping) for v in ours.values()):
        return dict(ours)
    return {None: dict(ours)}


def _stat_column(name: str, scoring) -> str:
    return name if scoring is None else f"{name}_{scoring}"


def fidelity_table(ours: Mapping, config_name: str) -> pd.DataFrame:
    """Our numbers beside the paper's for every (measure, model) where either exists.

    ``ours`` maps a scoring rule (``paper``, ``strict``) to ``{measure: summary}``, each
    summary a DataFrame(model, mean, sd, ci_low, ci_high, n_seeds) such as
    ``stats.summary``'s output (use the MEASURE_* names to align with the paper); a plain
    ``{measure: summary}`` is one unnamed rule. Columns: measure, model, display, paper,
    then per rule ``ours_<rule>``, ``sd_<rule>``, ``ci_low_<rule>``, ``ci_high_<rule>``,
    ``n_seeds_<rule>`` (without the suffix for an unnamed rule). Missing sides are NaN.
    Rows: paper measures in §8 order, then other measures; models in the paper's row
    order, then ours in MODEL_ORDER. ``config_name`` is kept in ``table.attrs["config"]``.
    """
    by_rule = _by_scoring(ours)
    rows = []
    measures = list(MEASURES)
    for rule in by_rule.values():
        measures += [m for m in rule if m not in measures]
    for measure in measures:
        paper = PAPER_NUMBERS.get(measure, {})
        mine: dict = {}
        for scoring, rule in by_rule.items():
            df = rule.get(measure)
            if df is not None and len(df):
                for rec in df.to_dict("records"):
                    mine.setdefault(str(rec["model"]), {})[scoring] = rec
        models = list(paper) + order_models(m for m in mine if m not in paper)
        for model in models:
            row = {"measure": measure, "model": model, "display": display_name(model),
                   "paper": paper.get(model, np.nan)}
            for scoring in by_rule:
                rec = mine.get(model, {}).get(scoring, {})
                for name, key in (("ours", "mean"), ("sd", "sd"), ("ci_low", "ci_low"),
                                  ("ci_high", "ci_high"), ("n_seeds", "n_seeds")):
                    row[_stat_column(name, scoring)] = rec.get(key, 0 if name == "n_seeds" else np.nan)
            rows.append(row)
    columns = FIDELITY_COLUMNS + [_stat_column(n, s) for s in by_rule for n in FIDELITY_STATS]
    table = pd.DataFrame(rows, columns=columns)
    for s in by_rule:
        table[_stat_column("n_seeds", s)] = table[_stat_column("n_seeds", s)].astype("Int64")
    table.attrs["config"] = config_name
    table.attrs["scorings"] = [s for s in by_rule if s is not None]
    return table


def _mean_sd(rec: Mapping, scoring) -> str:
    mean, sd = rec.get(_stat_column("ours", scoring)), rec.get(_stat_column("sd", scoring))
    lo, hi = rec.get(_stat_column("ci_low", scoring)), rec.get(_stat_column("ci_high", scoring))
    text = _pct(mean)
    if text != "—" and not pd.isna(sd):
        text += f" ±{100 * float(sd):.0f}"
    if text != "—" and not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{100 * float(lo):.0f}, {100 * float(hi):.0f}]"
    return text


def _pct(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return "—"
    return f"{100 * float(x):.0f} %"


def fidelity_markdown(table: pd.DataFrame, config_name: str, extra_lines=(),
                      stimulus: Mapping | None = None) -> str:
    """Markdown: a title naming the config, then measure | model | paper | ours per
    scoring rule (mean ±SD [95 % CI]) | seeds | ours − paper (paper scoring when there is
    one: that is the comparable column). ``extra_lines``: more rows of text below.
    ``stimulus``: the run's stimulus geometry (``Stimulus.settings()``), named above the
    table (every column of ours used it)."""
    rules = [c[len("ours_"):] for c in table.columns if c.startswith("ours_")] or [None]
    compare = "paper" if "paper" in rules else rules[0]
    head = ["measure", "model", "paper"] + [
        "ours" if r is None else f"ours, {r} scoring" for r in rules] + ["seeds", "ours − paper"]
    lines = [
        f"# Headline numbers: config `{config_name}`",
        "",
        f"Config: `{config_name}`. Paper values are METHODS §8 (mean over 5 seeds); ours "
        "are the mean ±SD [95 % t-interval] over seeds of per-seed means (percent "
        "correct). \"—\" marks a missing value.",
        "",
    ]
    if stimulus:
        convention = stimulus["convention"]
        note = CONVENTION_NOTES[convention].format(k=stimulus["tuning"])
        lines.append(f"- Stimulus convention `{convention}` ({note}) in every column of "
                     "ours; the paper's numbers came from the reference code, i.e. the "
                     "`reference` convention (`trials.convention`).")
    for r in rules:
        if r in SCORING_NOTES:
            lines.append(f"- `{r}` scoring: {SCORING_NOTES[r]}.")
    if stimulus or any(r in SCORING_NOTES for r in rules):
        lines.append("")
    lines += ["| " + " | ".join(head) + " |",
              "|---|---|" + "---:|" * (len(head) - 2)]
    for rec in table.to_dict("records"):
        paper, ours = rec.get("paper"), rec.get(_stat_column("ours", compare))
        diff = (float(ours) - float(paper)) if not (pd.isna(paper) or pd.isna(ours)) else np.nan
        n = rec.get(_stat_column("n_seeds", compare))
        n_s = "—" if pd.isna(n) or n == 0 else str(int(n))
        diff_s = "—" if pd.isna(diff) else f"{100 * diff:+.0f}"
        cells = [rec["measure"], rec["display"], _pct(paper)] + [_mean_sd(rec, r) for r in rules]
        lines.append("| " + " | ".join(cells + [n_s, diff_s]) + " |")
    lines.append("")
    lines += list(extra_lines)
    lines.append("Paper, not per model (METHODS §8): " + "; ".join(
        f"{k}: {v}" for k, v in OTHER_HEADLINES.items()) + ".")
    lines.append("")
    return "\n".join(lines)


# --- headlines that are not per model (METHODS §8) -------------------------------------
PAPER_CCGP_R = 0.606
# (setting, source) -> paper partner accuracy
PAPER_PARTNERS: dict[tuple[str, str], float] = {
    ("partner trained on task", "instructions"): 0.93,
    ("task held out from partner", "instructions"): 0.78,
    ("partner trained on task", "novel"): 0.88,
    ("task held out from partner", "novel"): 0.75,
    ("partner trained on task", "embedding"): 0.31,
    ("task held out from partner", "embedding"): 0.28,
}


def ccgp_correlation(ccgp: pd.DataFrame, zero_shot: pd.DataFrame, stage: str = "rnn") -> dict:
    """Pearson r between held-out CCGP (``stage``) and zero-shot accuracy over Figure 3e's
    points (model × held-out task, means over seeds): {r, p, n}; r and p are NaN with
    fewer than three points or no variance."""
    from .ccgp import ccgp_vs_zero_shot

    points = ccgp_vs_zero_shot(ccgp, zero_shot, stage) if len(ccgp) and len(zero_shot) else None
    return points_correlation(points)


def points_correlation(points: pd.DataFrame | None) -> dict:
    """Pearson {r, p, n} over Figure 3e's points (columns ccgp, zero_shot)."""
    from scipy import stats as sps

    if points is None or points.empty:
        return {"r": np.nan, "p": np.nan, "n": 0}
    x, y = points["ccgp"].to_numpy(float), points["zero_shot"].to_numpy(float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"r": np.nan, "p": np.nan, "n": len(x)}
    res = sps.pearsonr(x, y)
    return {"r": float(res.statistic), "p": float(res.pvalue), "n": len(x)}


def headline_lines(ccgp: pd.DataFrame | None = None, zero_shot: pd.DataFrame | None = None,
                   partners: pd.DataFrame | None = None) -> list[str]:
    """Markdown lines for the headlines that are not per model: r(CCGP, zero-shot) per
    scoring rule, and partner accuracy per (setting, source) and rule, beside the
    paper's (``partners``: the production summary table)."""
    from .stats import scored, scorings

    lines = []
    if ccgp is not None and zero_shot is not None:
        lines += ["| headline | scoring | ours | paper |", "|---|---|---|---|"]
        for rule in scorings(zero_shot):
            c = ccgp_correlation(ccgp, scored(zero_shot, rule) if rule else zero_shot)
            ours = ("r undefined" if pd.isna(c["r"]) else
                    f"r = {c['r']:.3f} (p = {c['p']:.2g})") + f", n = {c['n']} (model × held-out task)"
            lines.append(f"| CCGP (RNN) vs zero-shot, Pearson | {rule or '—'} | {ours} "
                         f"| r = {PAPER_CCGP_R} |")
        lines.append("")
    if partners is not None and len(partners):
        lines += ["| partner accuracy | source | scoring | ours | seeds × tasks | paper |",
                  "|---|---|---|---:|---:|---:|"]
        for rule in scorings(partners):
            part = scored(partners, rule) if rule else partners
            for rec in part.to_dict("records"):
                key = (str(rec["setting"]), str(rec["source"]))
                ours = _pct(rec["mean"]) + ("" if pd.isna(rec["sd"]) else f" ±{100 * rec['sd']:.0f}")
                lines.append(f"| {key[0]} | {key[1]} | {rule or '—'} | {ours} | {int(rec['n'])} "
                             f"| {_pct(PAPER_PARTNERS.get(key))} |")
        lines.append("")
    return lines
