"""Tasks: the 50 psychophysical tasks, their trials, holdouts and scoring."""

from .constants import (
    CONDITIONAL_TASKS,
    FAMILIES,
    FAMILY_OF,
    IMPERATIVE_TASKS,
    N_INPUTS,
    N_OUTPUTS,
    N_STEPS,
    STRUCTURE,
    TASKS,
    UnknownTaskError,
    check_task,
    compositional_references,
)
from .generate import TrialCountError, derive_seed, generate_pool, generate_trials
from .holdouts import HOLDOUTS, UnknownHoldoutError, held_out, holdout_registry, training_tasks
from .render import Rendered, TrialBatch, is_correct, render
from .schema import TrialTableError, read_trials, write_trials
from .thresholds import ConThresholds, ThresholdTableError

__all__ = [
    "CONDITIONAL_TASKS", "FAMILIES", "FAMILY_OF", "IMPERATIVE_TASKS", "N_INPUTS",
    "N_OUTPUTS", "N_STEPS", "STRUCTURE", "TASKS", "UnknownTaskError", "check_task",
    "compositional_references", "TrialCountError", "derive_seed", "generate_pool",
    "generate_trials", "HOLDOUTS", "UnknownHoldoutError", "held_out", "holdout_registry",
    "training_tasks", "Rendered", "TrialBatch", "is_correct", "render", "TrialTableError",
    "read_trials", "write_trials", "ConThresholds", "ThresholdTableError",
]
