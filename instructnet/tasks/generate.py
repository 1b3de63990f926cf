"""Draw trial latents for the 50 tasks (METHODS §1–2), vectorised with numpy.

:func:`generate_trials` returns a trial table (:mod:`instructnet.tasks.schema`): the
epochs, every stimulus's direction, strength and timing per modality, the noise level,
whether a response is required and its direction. Rendering to tensors is
:mod:`instructnet.tasks.rendering`'s job.

Conventions shared by the generators (arrays of shape ``(n, 2, 2)`` are indexed
``[trial, modality, stimulus]``):

* Two-direction draws: θ2 = θ1 + π + δ, |δ| ~ U(0.2π, 0.6π) with a random sign.
* Single-modality tasks show their stimuli in one modality chosen at random per trial.
* Tasks with a "withhold" outcome (COMP, Dur, matching, Con) have exactly ⌊n/2⌋
  response trials, shuffled.
* All angles are wrapped to [0, 2π) (the reference left some GoMod2 targets
  unwrapped and scored them wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..seeding import derive_seed
from .constants import FAMILY_OF, N_STEPS, check_task
from .schema import SLOTS, to_frame
from .thresholds import ConThresholds

TWO_PI = 2 * math.pi
PI = math.pi

# Contrast sets (strength offsets c; stimulus strengths are base + c and base - c).
DM_CONTRASTS = (0.1, 0.15, 0.175)
COMP_CONTRASTS = (0.1, 0.15, 0.2)
MULTI_PAIR_CONTRASTS = (0.1, 0.15, 0.2, 0.25)  # one per modality, opposite signs
DM_MULTI_OFFSETS = (0.125, 0.15, 0.175, 0.2)  # per-modality base offsets
COMP_MULTI_OFFSETS = (0.125, 0.15, 0.175, 0.225)
CON_EPOCHS = dict(stim1_on=30, stim1_off=70, stim2_on=90, stim2_off=130, go_on=130)


class TrialCountError(ValueError):
    """A non-positive or non-integer number of trials."""


def _check_count(n, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise TrialCountError(f"number of {what} must be a positive integer, got {n!r}")


def _ms_steps(rng, n, lo_ms, hi_ms):
    """⌊U(lo, hi) ms / 20 ms⌋ as integer step counts."""
    return np.floor(rng.uniform(lo_ms, hi_ms, n) / 20).astype(np.int64)


def _signed(rng, n, values):
    return rng.choice(np.asarray(values), n) * rng.choice(np.array([-1.0, 1.0]), n)


def _wrap(theta):
    return np.mod(theta, TWO_PI)


def _balanced(rng, n):
    """Exactly ⌊n/2⌋ True, shuffled."""
    out = np.zeros(n, dtype=bool)
    out[: n // 2] = True
    return rng.permutation(out)


def _direction_pair(rng, n):
    theta1 = rng.uniform(0, TWO_PI, n)
    delta = rng.uniform(0.2 * PI, 0.6 * PI, n) * rng.choice(np.array([-1.0, 1.0]), n)
    return theta1, _wrap(theta1 + PI + delta)


def _opposite_sign_pair(rng, n, values):
    """Contrasts (c1, c2), one per modality: opposite signs and different sizes."""
    values = np.asarray(values)
    i = rng.integers(0, len(values), n)
    j = (i + rng.integers(1, len(values), n)) % len(values)  # any other size
    sign = rng.choice(np.array([-1.0, 1.0]), n)
    return sign * values[i], -sign * values[j]


@dataclass
class _Trials:
    """Work arrays of one batch of latents while a generator fills them in."""

    n: int
    epochs: dict
    fix_off: np.ndarray
    timing: str  # "full", "rt" or "delay"

    def __post_init__(self):
        shape = (self.n, 2, 2)
        self.dir = np.full(shape, np.nan)
        self.str = np.full(shape, np.nan)
        self.on = np.full(shape, np.nan)
        self.off = np.full(shape, np.nan)
        self.sigma = np.full(self.n, np.nan)
        self.contrast = np.full(self.n, np.nan)
        self.response = np.ones(self.n, dtype=bool)
        self.target = np.full(self.n, np.nan)

    def frame(self, task: str) -> pd.DataFrame:
        cols = {"task": np.full(self.n, task, dtype=object), "trial": np.arange(self.n)}
        cols.update(self.epochs)
        cols["fix_off"] = self.fix_off
        for idx, slot in enumerate(SLOTS):
            m, s = divmod(idx, 2)
            present = ~np.isnan(self.str[:, m, s])
            cols[f"{slot}_dir"] = np.where(present, _wrap(self.dir[:, m, s]), np.nan)
            cols[f"{slot}_str"] = self.str[:, m, s]
            cols[f"{slot}_on"] = pd.array(np.where(present, self.on[:, m, s], np.nan), "Int16")
            cols[f"{slot}_off"] = pd.array(np.where(present, self.off[:, m, s], np.nan), "Int16")
        cols.update(
            sigma=self.sigma,
            contrast=self.contrast,
            response=self.response,
            target_dir=np.where(self.response, _wrap(self.target), np.nan),
        )
        return to_frame(cols)


def draw_epochs(rng, n):
    """Epoch boundaries laid out backwards from the trial's end (METHODS §1)."""
    go = _ms_steps(rng, n, 400, 500)  # 20..24
    stim2 = _ms_steps(rng, n, 750, 1000)  # 37..49
    delay = _ms_steps(rng, n, 300, 500)  # 15..24
    stim1 = _ms_steps(rng, n, 750, 1000)  # 37..49
    go_on = N_STEPS - go
    stim2_on = go_on - stim2
    stim1_off = stim2_on - delay
    stim1_on = stim1_off - stim1
    return dict(
        stim1_on=stim1_on, stim1_off=stim1_off, stim2_on=stim2_on, stim2_off=go_on, go_on=go_on
    )


def _new(rng, n, timing):
    epochs = draw_epochs(rng, n)
    fix_off = np.full(n, N_STEPS) if timing == "rt" else epochs["go_on"].copy()
    tr = _Trials(n, epochs, fix_off, timing)
    tr.sigma = rng.uniform(0.1, 0.15, n)
    return tr


def _show(tr: _Trials, present: np.ndarray):
    """Set on/off of the stimuli marked in ``present`` (n,2,2) by the trial's timing."""
    e = tr.epochs
    if tr.timing == "full":  # both stimuli on from stim1 onset to the go epoch
        on = np.stack([e["stim1_on"], e["stim1_on"]], 1)
        off = np.stack([e["go_on"], e["go_on"]], 1)
    elif tr.timing == "rt":  # only in the go epoch
        on = np.stack([e["go_on"], e["go_on"]], 1)
        off = np.full((tr.n, 2), N_STEPS)
    else:  # delay: stim1, blank delay, stim2
        on = np.stack([e["stim1_on"], e["stim2_on"]], 1)
        off = np.stack([e["stim1_off"], e["stim2_off"]], 1)
    on = np.broadcast_to(on[:, None, :], present.shape)
    off = np.broadcast_to(off[:, None, :], present.shape)
    tr.on = np.where(present, on, np.nan)
    tr.off = np.where(present, off, np.nan)
    tr.str = np.where(present, tr.str, np.nan)
    tr.dir = np.where(present, tr.dir, np.nan)


def _one_modality(rng, n, n_stimuli):
    """Presence mask (n,2,2) for stimuli shown in one random modality."""
    mod = rng.integers(0, 2, n)
    present = np.zeros((n, 2, 2), dtype=bool)
    present[np.arange(n), mod, :n_stimuli] = True
    return present


def _both_modalities(n, n_stimuli):
    present = np.zeros((n, 2, 2), dtype=bool)
    present[:, :, :n_stimuli] = True
    return present


def _parse(task):
    anti = task.startswith("Anti") or task.startswith("ConAnti")
    mod = 1 if task.endswith("Mod1") else 2 if task.endswith("Mod2") else None
    multi = "Multi" in task
    which = None
    for tag in ("COMP", "Dur"):
        if tag in task:
            which = int(task[task.index(tag) + len(tag)])
    return anti, mod, multi, which


# --- Go family ---------------------------------------------------------------------


def _go(task, rng, n, ctx):
    anti, mod, _, _ = _parse(task)
    tr = _new(rng, n, "rt" if "RT" in task else "full")
    strength = rng.uniform(0.8, 1.2, n)
    if mod is None:
        theta = rng.uniform(0, TWO_PI, n)
        present = _one_modality(rng, n, 1)
        tr.dir[:, :, 0] = theta[:, None]
        target = theta
    else:  # a direction in each modality; the named one counts
        theta1 = rng.uniform(0, TWO_PI, n)
        theta2 = _wrap(theta1 + rng.uniform(PI / 4, 3 * PI / 4, n))
        present = _both_modalities(n, 1)
        tr.dir[:, 0, 0], tr.dir[:, 1, 0] = theta1, theta2
        target = theta1 if mod == 1 else theta2
    tr.str[:, :, 0] = strength[:, None]
    _show(tr, present)
    tr.target = target + PI if anti else target
    return tr


# --- decision making ---------------------------------------------------------------


def _dm_strengths(rng, n, multi, mod, contrasts, offsets):
    """Strengths (n,2,2) [trial, modality, stimulus] and the presence mask."""
    strength = np.zeros((n, 2, 2))
    if multi:  # same directions in both modalities; only the sum over modalities decides
        mod_base = rng.uniform(1.0, 1.2, n)
        k = _signed(rng, n, offsets)
        base = np.stack([mod_base + k, mod_base - k], 1)
        c = np.stack(_opposite_sign_pair(rng, n, MULTI_PAIR_CONTRASTS), 1)
        present = _both_modalities(n, 2)
    elif mod is not None:  # both modalities, independent contrasts; the named one counts
        base = rng.uniform(1.0, 1.2, (n, 2))
        c = np.stack([_signed(rng, n, contrasts), _signed(rng, n, contrasts)], 1)
        present = _both_modalities(n, 2)
    else:
        base = np.repeat(rng.uniform(1.0, 1.2, n)[:, None], 2, 1)
        c = np.repeat(_signed(rng, n, contrasts)[:, None], 2, 1)
        present = _one_modality(rng, n, 2)
    strength[:, :, 0] = base + c
    strength[:, :, 1] = base - c
    return np.where(present, strength, np.nan), present


def _evidence(values, present, mod):
    """Per-stimulus evidence (n,2): the named modality's value, or the sum of shown ones."""
    if mod is not None:
        return values[:, mod - 1, :]
    return np.where(present, values, 0.0).sum(axis=1)


def _dm(task, rng, n, ctx):
    anti, mod, multi, _ = _parse(task)
    tr = _new(rng, n, "full")
    theta1, theta2 = _direction_pair(rng, n)
    tr.dir[:] = np.stack([theta1, theta2], 1)[:, None, :]
    tr.str, present = _dm_strengths(rng, n, multi, mod, DM_CONTRASTS, DM_MULTI_OFFSETS)
    _show(tr, present)
    ev = _evidence(tr.str, present, mod)
    tr.contrast = ev[:, 0] - ev[:, 1]
    first = ev[:, 0] < ev[:, 1] if anti else ev[:, 0] > ev[:, 1]
    tr.target = np.where(first, theta1, theta2)
    return tr


def _con_trials(rng, n, anti, response, sigma, size):
    """Con-timed two-stimulus decision trials with given noise and |contrast| per trial."""
    tr = _new(rng, n, "full")
    tr.epochs = {k: np.full(n, v) for k, v in CON_EPOCHS.items()}
    tr.fix_off = tr.epochs["go_on"].copy()
    tr.response = response
    tr.sigma = sigma
    c = size * rng.choice(np.array([-1.0, 1.0]), n)  # signed contrast s1 - s2
    theta1, theta2 = _direction_pair(rng, n)
    tr.dir[:] = np.stack([theta1, theta2], 1)[:, None, :]
    present = _one_modality(rng, n, 2)
    tr.str[:] = np.stack([1 + c / 2, 1 - c / 2], 1)[:, None, :]
    _show(tr, present)
    tr.contrast = c
    first = c < 0 if anti else c > 0
    tr.target = np.where(first, theta1, theta2)
    return tr


def _con(task, rng, n, ctx):
    """ConDM / ConAntiDM: respond only on the easy side of the threshold table."""
    table: ConThresholds = ctx["thresholds"]
    response = _balanced(rng, n)
    sigma, size = table.sample(task, response, rng)
    return _con_trials(rng, n, task == "ConAntiDM", response, sigma, size)


def decision_probe_trials(task: str, sigma: float, contrast: float, n: int, seed) -> pd.DataFrame:
    """DM or AntiDM trials in the Con tasks' layout at one noise level and |contrast|,
    every one requiring a response: the probes of the Con threshold sweep."""
    if task not in ("DM", "AntiDM"):
        raise ValueError(f"probe trials are DM or AntiDM trials, not {task!r}")
    _check_count(n, "probe trials")
    rng = np.random.default_rng(seed)
    tr = _con_trials(rng, n, task == "AntiDM", np.ones(n, bool), np.full(n, float(sigma)),
                     np.full(n, float(contrast)))
    return tr.frame(task)


# --- comparison --------------------------------------------------------------------


def _comp(task, rng, n, ctx):
    anti, mod, multi, which = _parse(task)
    tr = _new(rng, n, "delay")
    theta1, theta2 = _direction_pair(rng, n)
    tr.dir[:] = np.stack([theta1, theta2], 1)[:, None, :]
    strength, present = _dm_strengths(rng, n, multi, mod, COMP_CONTRASTS, COMP_MULTI_OFFSETS)
    tr.response = _balanced(rng, n)
    # Give the stimulus named by the task the winning strengths on response trials and
    # the losing ones otherwise (swapping whole stimuli keeps every marginal intact).
    ev = _evidence(strength, present, mod)
    wins = ev[:, which - 1] < ev[:, 2 - which] if anti else ev[:, which - 1] > ev[:, 2 - which]
    swap = wins != tr.response
    strength[swap] = strength[swap][:, :, ::-1]
    tr.str = strength
    _show(tr, present)
    ev = _evidence(tr.str, present, mod)
    tr.contrast = ev[:, 0] - ev[:, 1]
    tr.target = theta1 if which == 1 else theta2
    return tr


# --- duration ----------------------------------------------------------------------


def _single_durations(rng, n):
    """(long, short) step counts: long ⌊U(700,1000)/20⌋, short ⌊U(500, 20·long-160)/20⌋."""
    long = _ms_steps(rng, n, 700, 1000)
    short = np.floor(rng.uniform(500, 20 * long - 160) / 20).astype(np.int64)
    return long, short


def _dur(task, rng, n, ctx):
    anti, mod, multi, which = _parse(task)
    tr = _new(rng, n, "delay")
    theta1, theta2 = _direction_pair(rng, n)
    tr.dir[:] = np.stack([theta1, theta2], 1)[:, None, :]
    tr.response = _balanced(rng, n)
    # The task's stimulus gets the target duration (longer, or shorter for Anti) on
    # response trials and the other one otherwise.
    gets_long = tr.response != anti  # does the task's stimulus get the long duration?
    dur = np.zeros((n, 2, 2))  # [trial, modality, stimulus]

    def assign(m, long, short, task_long):
        dur[:, m, which - 1] = np.where(task_long, long, short)
        dur[:, m, 2 - which] = np.where(task_long, short, long)

    if multi:  # only the sum over modalities decides
        total = _ms_steps(rng, n, 1500, 2000)  # 75..99
        long = np.stack([np.floor(0.55 * total), np.floor(0.45 * total)], 1)
        a = _ms_steps(rng, n, 300, 500)  # summed difference, 15..24
        b = _ms_steps(rng, n, 200, 300)  # 10..14
        short = np.stack([long[:, 0] - a - b, long[:, 1] + b], 1)
        flip = rng.random(n) < 0.5  # which modality carries the 0.55 share
        long[flip], short[flip] = long[flip][:, ::-1], short[flip][:, ::-1]
        for m in range(2):
            assign(m, long[:, m], short[:, m], gets_long)
        present = _both_modalities(n, 2)
    elif mod is not None:  # the other modality always points to the other answer
        for m in range(2):
            long, short = _single_durations(rng, n)
            assign(m, long, short, gets_long if m == mod - 1 else ~gets_long)
        present = _both_modalities(n, 2)
    else:
        long, short = _single_durations(rng, n)
        for m in range(2):
            assign(m, long, short, gets_long)
        present = _one_modality(rng, n, 2)
    tr.str = np.where(present, rng.uniform(0.8, 1.2, (n, 2, 2)), np.nan)
    tr.dir = np.where(present, tr.dir, np.nan)
    # Layout per modality: stim2 ends at the go epoch, a blank delay, stim1 before it.
    go_on = tr.epochs["go_on"]
    delay = tr.epochs["stim2_on"] - tr.epochs["stim1_off"]
    s2_on = go_on[:, None] - dur[:, :, 1]
    s1_off = s2_on - delay[:, None]
    s1_on = s1_off - dur[:, :, 0]
    tr.on = np.where(present, np.stack([s1_on, s2_on], 2), np.nan)
    tr.off = np.where(present, np.stack([s1_off, np.repeat(go_on[:, None], 2, 1)], 2), np.nan)
    tr.epochs = dict(
        stim1_on=np.nanmin(tr.on[:, :, 0], 1).astype(np.int64),
        stim1_off=np.nanmax(tr.off[:, :, 0], 1).astype(np.int64),
        stim2_on=np.nanmin(tr.on[:, :, 1], 1).astype(np.int64),
        stim2_off=go_on,
        go_on=go_on,
    )
    ev = _evidence(dur, present, mod)
    tr.contrast = ev[:, 0] - ev[:, 1]
    tr.target = theta1 if which == 1 else theta2
    return tr


# --- matching ----------------------------------------------------------------------


def _match(task, rng, n, ctx):
    tr = _new(rng, n, "delay")
    tr.response = _balanced(rng, n)
    is_match = tr.response if task in ("DMS", "DMC") else ~tr.response
    theta1 = rng.uniform(0, TWO_PI, n)
    if task in ("DMS", "DNMS"):
        other = _wrap(theta1 + PI + rng.uniform(-PI / 2, PI / 2, n))
        theta2 = np.where(is_match, theta1, other)
    else:  # categories [0, π) and [π, 2π); a non-match lies ≥ π/5 inside the other half
        cat = (theta1 >= PI).astype(float)
        same = cat * PI + rng.uniform(0, PI, n)
        other = (1 - cat) * PI + rng.uniform(PI / 5, PI - PI / 5, n)
        theta2 = np.where(is_match, same, other)
    tr.dir[:] = np.stack([theta1, theta2], 1)[:, None, :]
    tr.str[:] = rng.uniform(0.8, 1.2, (n, 2))[:, None, :]
    _show(tr, _one_modality(rng, n, 2))
    tr.target = theta1 if task in ("DMS", "DMC") else theta2
    return tr


_FAMILY_GENERATORS = {"Go": _go, "DM": _dm, "COMP": _comp, "Dur": _dur, "Matching": _match}


def generate_trials(
    task: str,
    n: int,
    seed: int | np.random.SeedSequence | np.random.Generator,
    thresholds: ConThresholds | None = None,
) -> pd.DataFrame:
    """Draw ``n`` trials of ``task`` as a trial table.

    ``seed`` may be an int, a SeedSequence or a Generator; the same seed gives the same
    table. ConDM/ConAntiDM read ``thresholds`` (the shipped default table if None).
    """
    check_task(task)
    _check_count(n, f"trials for {task}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if task in ("ConDM", "ConAntiDM"):
        ctx = {"thresholds": thresholds if thresholds is not None else ConThresholds.default()}
        tr = _con(task, rng, int(n), ctx)
    else:
        tr = _FAMILY_GENERATORS[FAMILY_OF[task]](task, rng, int(n), {})
    tr.response = np.asarray(tr.response, dtype=bool)
    return tr.frame(task)


def generate_pool(
    task: str, n: int, base_seed: int, pool: str, thresholds: ConThresholds | None = None
) -> pd.DataFrame:
    """The ``pool`` (e.g. ``train``/``eval``) trials of ``task``, seeded by name."""
    return generate_trials(task, n, derive_seed(base_seed, "trials", pool, task), thresholds)
