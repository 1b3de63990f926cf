"""Evaluation protocols on held-out tasks (METHODS §6): learning curves, zero-shot,
swapped and validation instructions, combined task vectors."""

from .protocols import (
    TRAIN_MODES,
    EvalConfig,
    combined_task_vector,
    combined_vectors,
    heldout_learning,
    is_instructed,
    reference_task_vector,
    swapped_instructions,
    trained_parameters,
    validation_instructions,
    zero_shot,
)

__all__ = [
    "TRAIN_MODES", "EvalConfig", "combined_task_vector", "combined_vectors",
    "heldout_learning", "is_instructed", "reference_task_vector", "swapped_instructions",
    "trained_parameters", "validation_instructions", "zero_shot",
]
