"""Tasks: the 50 psychophysical tasks, their trials, holdouts and scoring.

Drawing and storing trial tables needs only numpy/pandas; the torch half (rendering
and scoring) is imported on first use so that table-only jobs start quickly.
"""

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
from .generate import TrialCountError, generate_pool, generate_trials
from .holdouts import HOLDOUTS, UnknownHoldoutError, held_out, holdout_registry, training_tasks
from .schema import TrialTableError, read_trials, write_trials
from .stimulus import CONVENTIONS, PAPER, Stimulus
from .study import Study, StudyError, parse_tasks
from .thresholds import ConThresholds, ThresholdTableError

__all__ = [
    "CONDITIONAL_TASKS", "FAMILIES", "FAMILY_OF", "IMPERATIVE_TASKS", "N_INPUTS",
    "N_OUTPUTS", "N_STEPS", "STRUCTURE", "TASKS", "UnknownTaskError", "check_task",
    "compositional_references", "TrialCountError", "generate_pool",
    "generate_trials", "HOLDOUTS", "UnknownHoldoutError", "held_out", "holdout_registry",
    "training_tasks", "Rendered", "TrialBatch", "is_correct", "render", "draw_noise", "TrialTableError",
    "read_trials", "write_trials", "ConThresholds", "ThresholdTableError", "Study",
    "StudyError", "parse_tasks", "CONVENTIONS", "PAPER", "Stimulus", "read_pools",
]

_TORCH_NAMES = {"Rendered", "TrialBatch", "is_correct", "render", "draw_noise", "read_pools"}


def __getattr__(name):
    if name in _TORCH_NAMES:
        from . import rendering

        value = getattr(rendering, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
