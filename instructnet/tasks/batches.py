"""Drawing a batch of a task: trials from its pool, instruction rows for instructed
models, then the rendered tensors with fresh noise. Training, held-out tests and
language production all draw their batches here (two kinds of random streams: see
:func:`draw_batch`)."""

from __future__ import annotations

import numpy as np
import torch

from .rendering import TrialBatch, render


def sample_batch(
    rng: np.random.Generator | None,
    noise: torch.Generator,
    pool: TrialBatch,
    choices: torch.Tensor | None,
    batch_size: int,
    indices_only: bool = False,
):
    """The trials of one batch (indices into ``pool``, with replacement) and, for
    instructed models, one instruction row per trial from ``choices``; see
    :func:`draw_batch` for the two kinds of random streams. Returns (trials, rows or
    None), or (the trials' indices into ``pool``, rows or None) if ``indices_only``."""
    idx = draw_indices(rng, noise, len(pool), batch_size, pool.device)
    trials = idx if indices_only else pool[idx]
    sentence_idx = None
    if choices is not None:
        sentence_idx = choices[draw_indices(rng, noise, len(choices), batch_size, choices.device)]
    return trials, sentence_idx


def draw_indices(rng, noise, n: int, size: int, device) -> torch.Tensor:
    """``size`` uniform indices below ``n`` on ``device``: from ``noise`` where it lives
    (device streams: nothing crosses to the host), or from the numpy ``rng``."""
    if rng is None:
        return torch.randint(0, n, (size,), generator=noise, device=device)
    return torch.as_tensor(rng.integers(0, n, size), device=device)


def draw_batch(
    rng: np.random.Generator | None,
    noise: torch.Generator,
    pool: TrialBatch,
    choices: torch.Tensor | None,
    batch_size: int,
):
    """One batch of a task: trial indices from its pool (with replacement), then one
    instruction row per trial from ``choices`` (instructed models), then rendering with
    fresh noise. Returns (trials, sentence rows or None, rendered tensors).

    Two kinds of random streams:

    * **device** (``rng`` None; training): indices, instruction picks and input noise
      all come from the torch generator ``noise``, which lives on the pool's device, so
      a training step moves nothing between host and device;
    * **portable** (``rng`` a numpy Generator; evaluation): indices and picks come from
      ``rng`` and the noise from ``noise`` on *its* device; with a CPU generator the
      batch is the same whichever device renders it (a GPU scores the trials a CPU
      would).
    """
    trials, sentence_idx = sample_batch(rng, noise, pool, choices, batch_size)
    return trials, sentence_idx, render(trials, noise=True, generator=noise)
