"""Turn tables of trial latents into network tensors, and judge network outputs.

A trial table (see :mod:`instructnet.tasks.schema`) holds one row of latent variables
per trial. :class:`TrialBatch` is the same table as a handful of column tensors on a
device, so that a training loop can slice batches out of a pool without touching
pandas. :func:`render` builds inputs ``(B, 150, 65)``, targets ``(B, 150, 33)`` and the
loss mask ``(B, 150, 33)`` for a batch, vectorised over trials, in the trials' stimulus
geometry (:class:`~instructnet.tasks.stimulus.Stimulus`: the paper's or the reference
code's convention); :func:`is_correct` judges outputs per trial (METHODS §1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd
import torch

from .constants import CON_TASKS, N_INPUTS, N_OUTPUTS, N_RING, N_STEPS
from .schema import SLOTS, read_trials, validate_trials
from .stimulus import DEFAULT_TUNING, PAPER, Stimulus

TWO_PI = 2 * math.pi

# Output/target constants of METHODS §1.
FIX_TARGET_ON = 0.85
BASELINE = 0.05
TUNING_AMPLITUDE = 0.8
GRACE_STEPS = 5  # the first 100 ms of the go epoch carry no loss
MASK_RING = 5.0
MASK_FIX = 10.0
# Correctness criteria.
FIX_THRESHOLD = 0.5
RESPONSE_THRESHOLD = 0.6
ANGLE_TOLERANCE = TWO_PI / 10
WITHHOLD_THRESHOLD = 0.15
WITHHOLD_WINDOW = (144, 149)  # steps 144..148, as in the reference


def circular_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Absolute angular distance in [0, π], whatever range the angles come in."""
    d = torch.remainder(a - b, TWO_PI)
    return torch.minimum(d, TWO_PI - d)


def _pref_dirs(device, dtype) -> torch.Tensor:
    return torch.arange(N_RING, device=device, dtype=dtype) * (TWO_PI / N_RING)


def tuning_curve(directions: torch.Tensor, tuning: float = DEFAULT_TUNING) -> torch.Tensor:
    """Unit-amplitude ring bump ``exp(-0.5 (k |θ - θ_i| / π)^2)`` for each direction.

    ``directions`` has any shape ``S``; the result has shape ``S + (32,)``.
    """
    pref = _pref_dirs(directions.device, directions.dtype)
    d = circular_distance(directions.unsqueeze(-1), pref)
    return torch.exp(-0.5 * (tuning * d / math.pi) ** 2)


@dataclass
class TrialBatch:
    """Column tensors of a trial table (all of length B, on one device).

    ``slot_*`` tensors have shape ``(B, 4)`` over the stimulus slots
    ``m1_s1, m1_s2, m2_s1, m2_s2`` (modality × stimulus). Absent stimuli have
    strength 0 and an empty on/off interval.
    """

    slot_dir: torch.Tensor  # float32 (B, 4)
    slot_str: torch.Tensor  # float32 (B, 4)
    slot_on: torch.Tensor  # int64 (B, 4)
    slot_off: torch.Tensor  # int64 (B, 4)
    fix_off: torch.Tensor  # int64 (B,)
    go_on: torch.Tensor  # int64 (B,)
    sigma: torch.Tensor  # float32 (B,)
    response: torch.Tensor  # bool (B,)
    target_dir: torch.Tensor  # float32 (B,), 0 where no response
    own_sigma: torch.Tensor  # bool (B,): σ set by the task's design (Con tasks), see Stimulus
    stimulus: Stimulus = PAPER  # the geometry these trials are rendered with

    @staticmethod
    def _columns() -> list[str]:
        return [f.name for f in fields(TrialBatch) if f.name != "stimulus"]

    @classmethod
    def from_frame(cls, trials: pd.DataFrame, device: str | torch.device = "cpu",
                   stimulus: Stimulus = PAPER) -> TrialBatch:
        """The trials of a table, to be rendered with ``stimulus`` (default: the paper's
        geometry; the workflow passes the configured one, see :func:`read_pools`)."""
        validate_trials(trials)

        def col(name, dtype, fill=0.0):
            values = trials[name].to_numpy(dtype=np.float64, na_value=fill)
            return torch.tensor(values, device=device).to(dtype)

        def slot(kind, dtype):
            return torch.stack([col(f"{s}_{kind}", dtype) for s in SLOTS], dim=1)

        return cls(
            slot_dir=slot("dir", torch.float32),
            slot_str=slot("str", torch.float32),
            slot_on=slot("on", torch.int64),
            slot_off=slot("off", torch.int64),
            fix_off=col("fix_off", torch.int64),
            go_on=col("go_on", torch.int64),
            sigma=col("sigma", torch.float32),
            response=torch.tensor(trials["response"].to_numpy(dtype=bool), device=device),
            target_dir=col("target_dir", torch.float32),
            own_sigma=torch.tensor(trials["task"].astype(str).isin(CON_TASKS).to_numpy(),
                                   device=device),
            stimulus=stimulus,
        )

    def __len__(self) -> int:
        return self.sigma.shape[0]

    @property
    def device(self) -> torch.device:
        return self.sigma.device

    def __getitem__(self, index) -> TrialBatch:
        """Select trials (an index tensor, a slice or a boolean mask)."""
        return replace(self, **{name: getattr(self, name)[index] for name in self._columns()})

    @classmethod
    def cat(cls, batches) -> TrialBatch:
        """One batch holding ``batches``' trials in order (all on one device)."""
        batches = list(batches)
        geometry = {b.stimulus for b in batches}
        if len(geometry) > 1:
            raise ValueError(f"cannot join trials rendered with different stimuli: {geometry}")
        return cls(**{name: torch.cat([getattr(b, name) for b in batches])
                      for name in cls._columns()}, stimulus=batches[0].stimulus)

    def to(self, device) -> TrialBatch:
        return replace(self, **{name: getattr(self, name).to(device) for name in self._columns()})


@dataclass
class Rendered:
    inputs: torch.Tensor  # (B, T, 65) float32
    targets: torch.Tensor  # (B, T, 33) float32
    mask: torch.Tensor  # (B, T, 33) float32


def read_pools(paths, stimulus: Stimulus, device: str | torch.device = "cpu") -> dict[str, TrialBatch]:
    """{task: TrialBatch} of trial tables ``{task: path}``, rendered with ``stimulus``."""
    return {t: TrialBatch.from_frame(read_trials(p), device, stimulus) for t, p in paths.items()}


def _as_batch(trials, device=None) -> TrialBatch:
    if isinstance(trials, pd.DataFrame):
        return TrialBatch.from_frame(trials, device or "cpu")
    if device is not None:
        return trials.to(device)
    return trials


def draw_noise(batch_size: int, generator: torch.Generator | None = None,
               device: str | torch.device | None = None) -> torch.Tensor:
    """Standard-normal input noise ``(B, 150, 64)`` for the stimulus units of a batch,
    drawn from ``generator`` on the generator's own device (so a CPU generator gives
    the same numbers whichever device the batch lives on), then moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    eps = torch.randn(batch_size, N_STEPS, 2 * N_RING, generator=generator, device=gen_device)
    return eps if device is None else eps.to(device)


def render(
    trials: TrialBatch | pd.DataFrame,
    *,
    noise: bool | torch.Tensor = True,
    generator: torch.Generator | None = None,
    batch: int | None = None,
    device: str | torch.device | None = None,
) -> Rendered:
    """Render inputs, targets and loss mask for a batch of trials.

    With ``noise=True`` every stimulus input unit gets independent Gaussian noise of
    the trial's ``sigma`` at every step, drawn from ``generator`` (:func:`draw_noise`:
    on the generator's device, then moved to the batch's); the fixation input gets
    none. ``noise`` may also be that standard-normal tensor ``(B, 150, 64)`` itself,
    drawn beforehand. ``noise=False`` gives the noise-free rendering used by tests and
    plots. The geometry is the trials' own (``TrialBatch.stimulus``; a DataFrame
    renders with the paper's). ``batch``: the trials form consecutive batches of this
    size (several networks' batches rendered at once), which matters where the
    geometry shares one σ per batch.
    Only device-side ops: rendering a batch on a GPU moves nothing to or from
    the host (unless a CPU generator draws its noise).
    """
    b = _as_batch(trials, device)
    dev, dtype = b.device, torch.float32
    B, T = len(b), N_STEPS
    t = torch.arange(T, device=dev)

    # Inputs: one batched matmul over five "slots" — the fixation input and the four
    # (modality, stimulus) stimuli — each a 0/1 time course times a 65-unit pattern.
    active = torch.empty(B, 5, T, device=dev, dtype=dtype)
    active[:, 0] = t < b.fix_off.unsqueeze(-1)
    active[:, 1:] = (t >= b.slot_on.unsqueeze(-1)) & (t < b.slot_off.unsqueeze(-1))
    stimulus = b.stimulus
    k = stimulus.tuning
    bumps = TUNING_AMPLITUDE * b.slot_str.unsqueeze(-1) * tuning_curve(stimulus.directions(b.slot_dir), k)
    pattern = torch.zeros(B, 5, N_INPUTS, device=dev, dtype=dtype)
    pattern[:, 0, 0].fill_(1.0)  # fill_, not `= 1.0`: no host tensor, no copy
    pattern[:, 1:3, 1 : 1 + N_RING] = bumps[:, :2]
    pattern[:, 3:5, 1 + N_RING :] = bumps[:, 2:]
    inputs = torch.bmm(active.transpose(1, 2), pattern)  # (B, T, 65)
    if isinstance(noise, torch.Tensor):
        if noise.shape != (B, T, 2 * N_RING):
            raise ValueError(f"noise must be ({B}, {T}, {2 * N_RING}), got {tuple(noise.shape)}")
        inputs[:, :, 1:].addcmul_(noise.to(dev), stimulus.sigma(b, batch).view(B, 1, 1))
    elif noise:
        eps = draw_noise(B, generator, dev)
        inputs[:, :, 1:].addcmul_(eps, stimulus.sigma(b, batch).view(B, 1, 1))

    # Targets and mask are piecewise constant in time: look each step's row up in a
    # small table (phase 0: before go, 1: go epoch) instead of building it by parts.
    go = (t >= b.go_on.unsqueeze(-1)).long()  # (B, T)
    rows = torch.full((B, 2, N_OUTPUTS), BASELINE, device=dev, dtype=dtype)
    rows[:, 0, 0].fill_(FIX_TARGET_ON)
    resp_bump = (TUNING_AMPLITUDE * tuning_curve(stimulus.directions(b.target_dir), k)
                 * b.response.unsqueeze(-1))
    rows[:, 1, 1:] += resp_bump
    offset = 2 * torch.arange(B, device=dev).unsqueeze(-1)
    targets = torch.nn.functional.embedding(go + offset, rows.view(2 * B, N_OUTPUTS))

    # Loss mask: 1 before go; 0 for the grace steps; then 10 (fixation) / 5 (ring).
    late = (t >= (b.go_on + GRACE_STEPS).unsqueeze(-1)).long()
    # filled on the device: `t[i, j] = 5.0` would copy a host scalar into the GPU
    # tensor (a synchronising copy, seen on an H200 under sync-debug mode)
    weights = torch.ones(3, N_OUTPUTS, device=dev, dtype=dtype)
    weights[1].fill_(0.0)
    weights[2, :1].fill_(MASK_FIX)
    weights[2, 1:].fill_(MASK_RING)
    mask = torch.nn.functional.embedding(go + late, weights)
    return Rendered(inputs=inputs, targets=targets, mask=mask)


def population_vector(ring: torch.Tensor) -> torch.Tensor:
    """Direction in [0, 2π) of the population vector of ring activity ``(..., 32)``."""
    pref = _pref_dirs(ring.device, ring.dtype)
    angle = torch.atan2((ring * torch.sin(pref)).sum(-1), (ring * torch.cos(pref)).sum(-1))
    return torch.remainder(angle, TWO_PI)


SCORINGS = ("strict", "paper")


def is_correct(outputs: torch.Tensor, trials: TrialBatch | pd.DataFrame,
               scoring: str = "strict", batch: int | None = None) -> torch.Tensor:
    """Per-trial correctness (bool ``(B,)``) of network outputs ``(B, 150, 33)``.

    ``strict`` (our standard): a trial is correct when the fixation output stays above
    0.5 wherever its target is 0.85 (before the go epoch), and then either — a response
    being required — the largest ring output at the last step exceeds 0.6 with its
    population vector within 36° of the target, or — no response required — every
    output unit stays below 0.15 over steps 144–148. Everything is judged per trial,
    and angles circularly.

    ``paper``: the reference implementation's rule, which computed the paper's numbers
    (METHODS §1): the same, except that "did it respond" is ONE decision for the whole
    batch — the largest ring output at the last step over all trials exceeds 0.6 — so
    a trial whose own peak is weak passes the direction test when any batch mate
    responds strongly, and the score depends on the batch's size and composition. A
    known flaw, kept only to compare our numbers with the paper's like with like.
    ``batch``: under ``paper``, the trials form consecutive batches of this size, each
    with its own decision (several networks' batches scored at once); default: one.
    """
    return correct_by_scoring(outputs, trials, (scoring,), batch)[scoring]


def fixation_held(outputs: torch.Tensor, trials: TrialBatch) -> torch.Tensor:
    """Per trial (bool ``(B,)``): the fixation output stays above 0.5 at every step
    before the go epoch (what every scoring rule requires first)."""
    before_go = torch.arange(outputs.shape[1], device=outputs.device) < trials.go_on.unsqueeze(-1)
    return ((outputs[:, :, 0] > FIX_THRESHOLD) | ~before_go).all(dim=1)


def correct_by_scoring(outputs: torch.Tensor, trials: TrialBatch | pd.DataFrame,
                       scorings=SCORINGS, batch: int | None = None) -> dict[str, torch.Tensor]:
    """:func:`is_correct` under each rule of ``scorings``, {rule: bool (B,)}: everything
    the rules share (fixation, direction, withholding) is computed once."""
    unknown = [s for s in scorings if s not in SCORINGS]
    if unknown:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {unknown[0]!r}")
    b = _as_batch(trials, outputs.device)
    if outputs.shape[0] != len(b) or outputs.shape[-1] != N_OUTPUTS:
        raise ValueError(
            f"outputs of shape {tuple(outputs.shape)} do not match {len(b)} trials × "
            f"{N_STEPS} steps × {N_OUTPUTS} outputs"
        )
    fix_ok = fixation_held(outputs, b)

    last_ring = outputs[:, -1, 1:]
    peak = last_ring.max(dim=-1).values
    on_target = circular_distance(population_vector(last_ring), b.target_dir) < ANGLE_TOLERANCE
    lo, hi = WITHHOLD_WINDOW
    withhold_ok = (outputs[:, lo:hi, :] < WITHHOLD_THRESHOLD).flatten(1).all(dim=1)

    out = {}
    for scoring in scorings:
        rule_peak = peak
        if scoring == "paper":  # one batch-level decision, broadcast to every trial
            size = batch or len(peak)
            rule_peak = peak.view(-1, size).amax(dim=1, keepdim=True).expand(-1, size).reshape(-1)
        response_ok = (rule_peak > RESPONSE_THRESHOLD) & on_target
        out[scoring] = fix_ok & torch.where(b.response, response_ok, withhold_ok)
    return out
