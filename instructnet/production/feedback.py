"""Motor feedback (METHODS §7): infer task-embedding vectors from task performance.

With every weight of a trained sensorimotor model frozen, a set of ``vectors`` 64-d
task vectors per task — the input the model's encoder would otherwise compute from an
instruction — is optimised on the task loss alone (masked MSE; Adam at ``lr``, × ``lr_decay`` per
``lr_decay_batches`` batches, the paper's epoch of 800, applied after every epoch of
``batches_per_epoch`` batches). The vectors are independent: each
step draws ``batch_size`` trials for every vector (so each vector sees batches of
``batch_size`` trials, as in the paper) and Adam's updates are per element. A vector has
converged once its accuracy over the trials of an epoch reaches the task's threshold
(0.9; 0.85 for DMC and DNMC in the paper); the run stops when all have, or after
``max_epochs``. The model's weights are never touched (no gradient is computed for them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import torch

from ..models.encoders import TASK_DIM
from ..models.network import SensorimotorModel
from ..tasks import TrialBatch, is_correct
from ..tasks.batches import draw_batch
from ..tasks.constants import check_tasks
from ..training.loop import epoch_lr_factor, is_positive_int

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackConfig:
    vectors: int = 25
    batch_size: int = 64
    batches_per_epoch: int = 800
    max_epochs: int = 20
    lr: float = 0.05
    lr_decay: float = 0.8
    lr_decay_batches: int = 800  # lr × lr_decay per this many batches (paper: one epoch)
    threshold: float = 0.9
    threshold_overrides: Mapping[str, float] = field(
        default_factory=lambda: {"DMC": 0.85, "DNMC": 0.85})

    def __post_init__(self):
        for name in ("vectors", "batch_size", "batches_per_epoch", "max_epochs",
                     "lr_decay_batches"):
            if not is_positive_int(getattr(self, name)):
                raise ValueError(f"production.feedback.{name} must be a positive integer, "
                                 f"got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"production.feedback.lr must be positive, got {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"production.feedback.lr_decay must be in (0, 1], got {self.lr_decay!r}")
        for task, value in {"": self.threshold, **self.threshold_overrides}.items():
            if not 0 < value <= 1:
                raise ValueError(f"production.feedback threshold {task} must be in (0, 1], got {value!r}")
        check_tasks(list(self.threshold_overrides))

    @property
    def epoch_lr_factor(self) -> float:
        """The learning-rate factor applied after each epoch."""
        return epoch_lr_factor(self.lr_decay, self.batches_per_epoch, self.lr_decay_batches)

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> FeedbackConfig:
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown production.feedback settings: {', '.join(unknown)}")
        return cls(**values)

    def threshold_of(self, task: str) -> float:
        return float(self.threshold_overrides.get(task, self.threshold))


def initial_vectors(model: SensorimotorModel, n: int, generator: torch.Generator,
                    scale: float | None = None) -> torch.Tensor:
    """``n`` random starting vectors (n, 64): Gaussian, scaled to ``scale`` per element
    (default 1/√64, i.e. unit expected norm)."""
    scale = 1.0 / math.sqrt(TASK_DIM) if scale is None else scale
    return torch.randn(n, TASK_DIM, generator=generator) * scale


def motor_feedback(
    model: SensorimotorModel,
    task: str,
    pool: TrialBatch,
    config: FeedbackConfig,
    seed: int,
    noise_seed: int,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, pd.DataFrame]:
    """Optimise ``config.vectors`` task vectors for ``task`` with ``model`` frozen.

    Returns (vectors (K, 64) on CPU, log with one row per (epoch, vector): task,
    epoch, vector, lr, loss, accuracy, converged). ``converged`` is cumulative: once a
    vector has reached the threshold in an epoch, it stays converged and is no longer
    updated.
    """
    (task,) = check_tasks([task])
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    noise = torch.Generator(device=device).manual_seed(noise_seed)
    init = initial_vectors(model, config.vectors, torch.Generator().manual_seed(seed % 2**63))
    vectors = torch.nn.Parameter(init.to(device))
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    k, per = config.vectors, config.batch_size
    owner = torch.arange(k, device=device).repeat_interleave(per)  # trial → vector
    optimizer = torch.optim.Adam([vectors], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.epoch_lr_factor)
    pool = pool.to(device)
    threshold = config.threshold_of(task)
    converged = torch.zeros(k, dtype=torch.bool, device=device)
    rows = []
    try:
        for epoch in range(config.max_epochs):
            correct = torch.zeros(k, device=device)
            loss_sum = torch.zeros(k, device=device)
            lr = optimizer.param_groups[0]["lr"]
            for _ in range(config.batches_per_epoch):
                trials, _, r = draw_batch(rng, noise, pool, None, k * per)
                outputs, _ = model(r.inputs, vectors[owner])
                per_trial = (r.mask * (outputs - r.targets).square()).mean(dim=(1, 2))
                loss_vec = per_trial.view(k, per).mean(1)  # masked MSE of each vector
                loss = loss_vec.sum()  # gradients of different vectors do not mix
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                vectors.grad[converged] = 0.0
                before = vectors.detach()[converged].clone()
                optimizer.step()
                with torch.no_grad():
                    vectors[converged] = before  # converged vectors stay where they are
                    correct += is_correct(outputs.detach(), trials).float().view(k, per).sum(1)
                    loss_sum += loss_vec.detach()
            accuracy = correct / (config.batches_per_epoch * per)
            converged |= accuracy >= threshold
            for v in range(k):
                rows.append({"task": task, "epoch": epoch + 1, "vector": v, "lr": lr,
                             "loss": float(loss_sum[v]) / config.batches_per_epoch,
                             "accuracy": float(accuracy[v]), "converged": bool(converged[v])})
            log.info("%s epoch %d: loss %.4f, accuracy %.3f, %d/%d converged", task, epoch + 1,
                     float(loss_sum.mean()) / config.batches_per_epoch, float(accuracy.mean()),
                     int(converged.sum()), k)
            scheduler.step()
            if bool(converged.all()):
                break
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
    table = pd.DataFrame(rows).astype({"task": "string", "epoch": "int32", "vector": "int32"})
    return vectors.detach().cpu(), table


def feedback_table(task: str, vectors: torch.Tensor, log_table: pd.DataFrame) -> pd.DataFrame:
    """One row per inferred vector: task, vector, epochs, final loss and accuracy,
    converged, and the 64-d ``embedding``."""
    last = log_table[log_table["epoch"] == log_table["epoch"].max()].sort_values("vector")
    return pd.DataFrame({
        "task": pd.array([task] * len(vectors), dtype="string"),
        "vector": np.arange(len(vectors), dtype=np.int32),
        "epochs": np.full(len(vectors), int(log_table["epoch"].max()), np.int32),
        "loss_first": log_table[log_table["epoch"] == 1].sort_values("vector")["loss"].to_numpy(),
        "loss": last["loss"].to_numpy(),
        "accuracy": last["accuracy"].to_numpy(),
        "converged": last["converged"].to_numpy(bool),
        "embedding": list(vectors.numpy().astype(np.float32)),
    })


def vectors_of(table: pd.DataFrame, task: str, converged_only: bool = True) -> torch.Tensor:
    """The inferred vectors of ``task`` (K, 64): the converged ones, or all of them when
    none converged (or ``converged_only`` is False)."""
    rows = table[table["task"] == task]
    if converged_only and rows["converged"].any():
        rows = rows[rows["converged"].to_numpy(bool)]
    return torch.tensor(np.stack(rows["embedding"].to_numpy()), dtype=torch.float32)
