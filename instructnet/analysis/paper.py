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

FIDELITY_COLUMNS = ["measure", "model", "display", "paper", "ours", "sd", "n_seeds"]


def paper_table() -> pd.DataFrame:
    """PAPER_NUMBERS as DataFrame(measure, model, display, paper)."""
    rows = [{"measure": m, "model": k, "display": display_name(k), "paper": v}
            for m, d in PAPER_NUMBERS.items() for k, v in d.items()]
    return pd.DataFrame(rows, columns=["measure", "model", "display", "paper"])


def fidelity_table(ours: Mapping[str, pd.DataFrame], config_name: str) -> pd.DataFrame:
    """Our numbers beside the paper's for every (measure, model) where either exists.

    ``ours`` maps a measure (use the MEASURE_* names to align with the paper) to a
    DataFrame(model, mean, sd, n_seeds) such as ``stats.summary``'s output. Missing
    sides are NaN. Rows: paper measures in §8 order, then other measures; models in the
    paper's row order, then ours in MODEL_ORDER. ``config_name`` is kept in
    ``table.attrs["config"]``.
    """
    rows = []
    measures = list(MEASURES) + [m for m in ours if m not in MEASURES]
    for measure in measures:
        paper = PAPER_NUMBERS.get(measure, {})
        df = ours.get(measure)
        mine: dict[str, dict] = {}
        if df is not None and len(df):
            for rec in df.to_dict("records"):
                mine[str(rec["model"])] = rec
        models = list(paper) + order_models(m for m in mine if m not in paper)
        for model in models:
            rec = mine.get(model, {})
            rows.append({
                "measure": measure, "model": model, "display": display_name(model),
                "paper": paper.get(model, np.nan),
                "ours": rec.get("mean", np.nan), "sd": rec.get("sd", np.nan),
                "n_seeds": rec.get("n_seeds", 0 if not rec else np.nan),
            })
    table = pd.DataFrame(rows, columns=FIDELITY_COLUMNS)
    table["n_seeds"] = table["n_seeds"].astype("Int64")
    table.attrs["config"] = config_name
    return table


def _pct(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return "—"
    return f"{100 * float(x):.0f} %"


def fidelity_markdown(table: pd.DataFrame, config_name: str) -> str:
    """Markdown: a title naming the config, then measure | model | paper | ours | Δ."""
    lines = [
        f"# Headline numbers: config `{config_name}`",
        "",
        f"Config: `{config_name}`. Paper values are METHODS §8 (mean over 5 seeds); ours "
        "are the mean ± SD over seeds of per-seed means (percent correct). "
        "\"—\" marks a missing value.",
        "",
        "| measure | model | paper | ours | SD | seeds | ours − paper |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for rec in table.to_dict("records"):
        paper, ours = rec.get("paper"), rec.get("ours")
        diff = (float(ours) - float(paper)) if not (pd.isna(paper) or pd.isna(ours)) else np.nan
        sd = rec.get("sd")
        sd_s = "—" if pd.isna(sd) else f"±{100 * float(sd):.0f}"
        n = rec.get("n_seeds")
        n_s = "—" if pd.isna(n) or n == 0 else str(int(n))
        diff_s = "—" if pd.isna(diff) else f"{100 * diff:+.0f}"
        lines.append(f"| {rec['measure']} | {rec['display']} | {_pct(paper)} | {_pct(ours)} "
                     f"| {sd_s} | {n_s} | {diff_s} |")
    lines.append("")
    lines.append("Not per-model (see METHODS §8): " + "; ".join(
        f"{k}: {v}" for k, v in OTHER_HEADLINES.items()) + ".")
    lines.append("")
    return "\n".join(lines)
