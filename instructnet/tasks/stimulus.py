"""The stimulus geometry of rendered trials: the paper's or the reference code's
conventions (METHODS §1), as one object that every renderer takes.

Torch-free at import (the workflow reads it while parsing its rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .constants import N_RING

if TYPE_CHECKING:
    import torch

    from .rendering import TrialBatch

TWO_PI = 2 * math.pi
DEFAULT_TUNING = 8.0  # tuning width constant k in exp(-0.5 (k |dθ| / π)^2); the paper's 8

CONVENTIONS = ("paper", "reference")
_CONVENTION_TUNING = {"paper": DEFAULT_TUNING, "reference": 12.0}
GRID = TWO_PI / N_RING  # spacing of the rings' preferred directions (11.25°)


@dataclass(frozen=True)
class Stimulus:
    """The stimulus geometry: how a trial's latent variables become input and target
    bumps and input noise (METHODS §1). Every renderer of trials uses one; the workflow
    builds it from ``trials.convention`` and ``trials.tuning``.

    * ``paper`` (the paper's text; our standard): tuning width constant 8 in
      ``exp(-0.5 (k |θ - θ_i| / π)^2)``, continuous directions, the noise σ of each
      trial its own (drawn per trial in the trial table).
    * ``reference`` (what the authors' code does): width constant 12, every bump's
      direction snapped down to the 32-unit grid (inputs and targets; scoring still
      compares with the exact target direction, as the reference does), and one σ per
      batch — the σ of the batch's first trial, itself a draw from U(0.1, 0.15) —
      except where σ is part of a task's design (ConDM/ConAntiDM take theirs per trial
      from the threshold table, in both conventions).

    ``tuning`` overrides the convention's width constant (None: the convention's).
    """

    convention: str = "paper"
    tuning: float | None = None

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"trials.convention must be one of {', '.join(CONVENTIONS)}, "
                             f"got {self.convention!r}")
        if self.tuning is None:
            object.__setattr__(self, "tuning", _CONVENTION_TUNING[self.convention])
        tuning = self.tuning
        if isinstance(tuning, bool) or not isinstance(tuning, (int, float)) or not (
                math.isfinite(tuning) and tuning > 0):
            raise ValueError(f"trials.tuning must be a positive number, got {tuning!r}")
        object.__setattr__(self, "tuning", float(tuning))

    @classmethod
    def from_config(cls, trials: dict) -> Stimulus:
        """From the validated config's ``trials`` section (``convention``; ``tuning``:
        null for the convention's; defaults in the config schema)."""
        return cls(trials["convention"], trials["tuning"])

    def settings(self) -> dict:
        """Plain settings (a rule's params, a model file's metadata)."""
        return {"convention": self.convention, "tuning": self.tuning}

    @property
    def snapped(self) -> bool:
        return self.convention == "reference"

    @property
    def sigma_per_batch(self) -> bool:
        return self.convention == "reference"

    def directions(self, theta: torch.Tensor) -> torch.Tensor:
        """The directions bumps are drawn at: ``theta`` or, snapped, the grid direction
        at or below it."""
        if not self.snapped:
            return theta
        import torch

        return torch.floor(torch.remainder(theta, TWO_PI) / GRID) * GRID

    def sigma(self, trials: TrialBatch, batch: int | None = None) -> torch.Tensor:
        """Each trial's noise σ ``(B,)``; with one σ per batch, consecutive blocks of
        ``batch`` trials (default: all) share their first trial's."""
        if not self.sigma_per_batch:
            return trials.sigma
        n = len(trials)
        size = batch or n
        if n % size:
            raise ValueError(f"{n} trials do not form batches of {size}")
        import torch

        first = (torch.arange(n, device=trials.device) // size) * size
        return torch.where(trials.own_sigma, trials.sigma, trials.sigma[first])


PAPER = Stimulus()
