"""Analyses of saved result tables: statistics (§7) and the paper's headline numbers (§8)."""

from .paper import PAPER_NUMBERS, fidelity_markdown, fidelity_table, paper_table
from .stats import (
    MODEL_ORDER,
    clause_analysis,
    display_name,
    learning_curves,
    order_models,
    per_seed,
    summary,
    welch_matrix,
    zero_shot_table,
)

__all__ = [
    "MODEL_ORDER", "PAPER_NUMBERS", "clause_analysis", "display_name", "fidelity_markdown",
    "fidelity_table", "learning_curves", "order_models", "paper_table", "per_seed",
    "summary", "welch_matrix", "zero_shot_table",
]
