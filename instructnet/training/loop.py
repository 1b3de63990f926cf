"""Training a sensorimotor model on a set of tasks (METHODS §6).

Masked MSE, Adam, learning rate × ``lr_decay`` per ``lr_decay_batches`` batches (the
paper: × 0.95 after every epoch of 2400 batches), applied once per epoch as
``lr_decay ** (batches_per_epoch / lr_decay_batches)``, so that the rate after a given
number of batches does not depend on the epoch size; optionally (``lr_final_steps``, the
reference code's last-epochs step) the rate is also multiplied by ``lr_final_factor``
at the start of each of the epochs that lie those many epochs before ``max_epochs``
(the reference: 5, 2 and 1 before its cap, × 0.25 each). An epoch is ``batches_per_epoch``
batches of ``batch_size`` trials; each batch holds trials of one task, and the tasks
are interleaved at random (equal counts per task).

Training runs to criterion (the paper's stopping rule): it stops once every training
task is at least ``threshold`` correct over its batches of the last epoch and at least
``min_epochs`` have run. ``max_epochs`` is a safety cap: a run stopped there without
meeting the criterion says so in its log and in ``model.pt`` (``reached_criterion``).

Each batch draws trial latents from the task's training pool and fresh input noise
from a seeded generator. A checkpoint (model, optimiser, scheduler, random states,
log) is written atomically after every epoch, so a job killed at any point and started
again continues from the last finished epoch and ends with the same weights as an
uninterrupted run (on CPU).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..models.io import load_file
from ..models.network import SensorimotorModel, masked_mse
from ..tasks import TrialBatch, is_correct
from ..tasks.batches import draw_batch
from ..tasks.constants import TASK_INDEX
from ..tasks.rendering import SCORINGS
from ..tasks.stimulus import PAPER

log = logging.getLogger(__name__)
# a checkpoint that cannot be read: the job can start afresh without it
REMEDY_CHECKPOINT = "delete it and the job starts afresh"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingConfigError(ValueError):
    """A training hyperparameter out of range."""


def is_positive_int(value) -> bool:
    """A positive Python int (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    batches_per_epoch: int = 2400
    lr: float = 1e-3
    lr_decay: float = 0.95
    lr_decay_batches: int = 2400  # lr × lr_decay per this many batches (paper: one epoch)
    min_epochs: int = 35
    max_epochs: int = 80
    threshold: float = 0.95
    grad_clip: float | None = 0.5  # clip gradients by value (reference); None: off
    # the accuracy rule of the training log and so of the stopping criterion
    # (instructnet.tasks.rendering.is_correct): strict (per trial) or paper (the
    # reference's batch-level response decision, which decided the paper's stopping)
    criterion_scoring: str = "strict"
    # the reference's last-epochs step: the rate × lr_final_factor from the epoch that
    # lies k epochs before max_epochs, for each k (reference: (5, 2, 1), × 0.25); () off
    lr_final_steps: tuple[int, ...] = ()
    lr_final_factor: float = 0.25

    def __post_init__(self):
        object.__setattr__(self, "lr_final_steps", tuple(self.lr_final_steps))
        positive_ints = ("batch_size", "batches_per_epoch", "lr_decay_batches", "min_epochs",
                         "max_epochs")
        for name in positive_ints:
            value = getattr(self, name)
            if not is_positive_int(value):
                raise TrainingConfigError(f"training.{name} must be a positive integer, got {value!r}")
        if self.min_epochs > self.max_epochs:
            raise TrainingConfigError(
                f"training.min_epochs ({self.min_epochs}) exceeds max_epochs ({self.max_epochs})"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainingConfigError(f"training.lr must be a positive number, got {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise TrainingConfigError(f"training.lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not 0 < self.threshold <= 1:
            raise TrainingConfigError(f"training.threshold must be in (0, 1], got {self.threshold!r}")
        if self.criterion_scoring not in SCORINGS:
            raise TrainingConfigError(f"training.criterion_scoring must be one of "
                                      f"{', '.join(SCORINGS)}, got {self.criterion_scoring!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise TrainingConfigError(f"training.grad_clip must be positive or null, got {self.grad_clip!r}")
        for k in self.lr_final_steps:
            if not is_positive_int(k):
                raise TrainingConfigError(
                    f"training.lr_final_steps must be positive integers (epochs before the "
                    f"cap), got {k!r}")
        if not 0 < self.lr_final_factor <= 1:
            raise TrainingConfigError(
                f"training.lr_final_factor must be in (0, 1], got {self.lr_final_factor!r}")

    @property
    def epoch_lr_factor(self) -> float:
        """The learning-rate factor applied after each epoch (:func:`epoch_lr_factor`)."""
        return epoch_lr_factor(self.lr_decay, self.batches_per_epoch, self.lr_decay_batches)

    def lr_factor(self, epochs_done: int) -> float:
        """The learning rate of the epoch that follows ``epochs_done`` finished ones, as a
        fraction of ``lr``: the per-epoch decay, times ``lr_final_factor`` for every
        last-epochs step already reached (the epoch's index ``epochs_done`` is at least
        ``max_epochs - k``). With steps (5, 2, 1) the last five epochs before the cap run
        at × 0.25, the last two at × 0.25², the last at × 0.25³, as the reference's
        MultiStepLR at milestones (cap - 5, cap - 2, cap - 1) makes them. A step that
        would lie before the first epoch (``k > max_epochs``, e.g. a short test run of
        the paper's config) does not happen, as in the reference."""
        reached = sum(0 <= self.max_epochs - k <= epochs_done for k in self.lr_final_steps)
        return self.epoch_lr_factor ** epochs_done * self.lr_final_factor ** reached

    @classmethod
    def from_mapping(cls, values: Mapping, **override) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        # the training section's keys that are not settings of one run: the GPT criterion
        # (chosen per model), seeds, network size, the model spec's embedding norm
        unknown = sorted(set(values) - known - {"threshold_gpt", "seeds", "hidden", "embedding_norm"})
        if unknown:
            raise TrainingConfigError(f"unknown training settings: {', '.join(unknown)}")
        kwargs = {k: v for k, v in values.items() if k in known}
        kwargs.update(override)
        return cls(**kwargs)


@dataclass
class TrainingData:
    """What a training run reads: one trial pool per task, instruction rows per task."""

    tasks: Sequence[str]
    pools: Mapping[str, TrialBatch]
    sentences: Mapping[str, torch.Tensor] | None = None  # task -> embedding row indices

    def __post_init__(self):
        missing = [t for t in self.tasks if t not in self.pools]
        if missing:
            raise ValueError(f"no training pool for tasks: {', '.join(missing)}")
        if len({self.pools[t].stimulus for t in self.tasks}) > 1:
            raise ValueError("the training pools are rendered with different stimuli")

    @property
    def stimulus(self):
        """The geometry every pool of the run is rendered with (TrialBatch.stimulus)."""
        return self.pools[self.tasks[0]].stimulus
        if self.sentences is not None:
            missing = [t for t in self.tasks if len(self.sentences.get(t, ())) == 0]
            if missing:
                raise ValueError(f"no training instructions for tasks: {', '.join(missing)}")


def epoch_lr_factor(lr_decay: float, batches_per_epoch: int, lr_decay_batches: int) -> float:
    """The learning-rate factor applied after each epoch when the rate falls by
    ``lr_decay`` per ``lr_decay_batches`` batches: ``lr_decay ** (batches_per_epoch /
    lr_decay_batches)``, so the rate after a given number of batches does not depend on
    the epoch size (training, the production decoder, motor feedback)."""
    return lr_decay ** (batches_per_epoch / lr_decay_batches)


def lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, start_epoch: int = 0):
    """The training schedule of every parameter group of ``optimizer``: after each epoch
    (one ``step()``), each group's rate is its initial rate × ``config.lr_factor`` of
    the finished epochs. ``start_epoch``: epochs finished before this optimiser's first
    (a tuned model's second phase); its rates start at their initial values and follow
    the schedule's changes from that epoch on."""
    first = config.lr_factor(start_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epochs: config.lr_factor(start_epoch + epochs) / first)


def check_finite(label: str, epoch: int, tasks: Sequence[str], losses: np.ndarray) -> None:
    """Raise :class:`TrainingDiverged` naming the first batch of an epoch (``epoch``
    finished epochs before it) whose loss is NaN or infinite."""
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        raise TrainingDiverged(f"{label}: loss became {float(losses[bad[0]])} in epoch "
                               f"{epoch + 1} on task {tasks[bad[0]]} (batch {bad[0] + 1})")


def task_schedule(rng: np.random.Generator, n_tasks: int, n_batches: int) -> np.ndarray:
    """Task index of every batch of an epoch: counts equal up to one (which tasks get
    the extra batch is random), order random."""
    base = np.tile(np.arange(n_tasks), n_batches // n_tasks)
    extra = rng.permutation(n_tasks)[: n_batches % n_tasks]
    return rng.permutation(np.concatenate([base, extra]))


def criterion_met(accuracies, config: TrainConfig) -> bool:
    """Whether every training task's accuracy over the last epoch (``accuracies``) is at
    least ``config.threshold`` (a task without a score fails)."""
    values = np.asarray(list(accuracies), dtype=float)
    return bool(len(values)) and bool((values >= config.threshold).all())


def stop_training(epoch: int, accuracies, config: TrainConfig) -> bool:
    """The stopping rule after ``epoch`` finished epochs: the criterion met and at least
    ``min_epochs`` run, or ``max_epochs`` reached (the safety cap). Shared by Trainer and
    the packed trainer, so that they stop alike."""
    if epoch <= 0:
        return False
    if epoch >= config.max_epochs:
        return True
    return epoch >= config.min_epochs and criterion_met(accuracies, config)


def log_stop(label: str, epoch: int, reached: bool, config: TrainConfig) -> None:
    """Say why a run stopped; a run capped by max_epochs before its criterion warns."""
    if reached:
        log.info("%s: criterion met (every training task >= %.0f%%) after %d epochs",
                 label, 100 * config.threshold, epoch)
    else:
        log.warning("%s: stopped at max_epochs (%d) without meeting the criterion "
                    "(every training task >= %.0f%%)", label, epoch, 100 * config.threshold)


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_settings(config: TrainConfig, stimulus) -> dict:
    """What a checkpoint records of the settings it was trained under."""
    return {"config": asdict(config), "stimulus": stimulus.settings()}


def check_checkpoint(state: dict, config: TrainConfig, stimulus, label: str) -> None:
    """Refuse to resume a checkpoint written under other training settings or another
    stimulus geometry (checkpoints older than ``trials.convention``: the paper's)."""
    saved = {"config": state["config"], "stimulus": state.get("stimulus", PAPER.settings())}
    if saved != checkpoint_settings(config, stimulus):
        raise ValueError(f"{label}: the checkpoint was written with other training settings "
                         "(training or trials section); delete it to start afresh")


class Trainer:
    """Runs the training protocol for one model on one device."""

    def __init__(
        self,
        model: SensorimotorModel,
        data: TrainingData,
        config: TrainConfig,
        seed: int,
        device: str | torch.device = "cpu",
        label: str = "",
        param_groups: list[dict] | None = None,
        start_epoch: int = 0,
    ):
        if config.batches_per_epoch < len(data.tasks):
            raise TrainingConfigError(
                f"training.batches_per_epoch ({config.batches_per_epoch}) must be at least the "
                f"number of training tasks ({len(data.tasks)}) so that every task is scored"
            )
        self.model = model.to(device)
        self.data = data
        self.config = config
        self.device = torch.device(device)
        self.label = label or "model"
        if param_groups is None:
            param_groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
        self.optimizer = torch.optim.Adam(param_groups, lr=config.lr)
        self.scheduler = lr_scheduler(self.optimizer, config, start_epoch)
        self.rng = np.random.default_rng(seed)
        self.noise = torch.Generator(device=self.device).manual_seed(seed)
        self.pools = {t: data.pools[t].to(self.device) for t in data.tasks}
        self.sentences = (
            {t: s.to(self.device) for t, s in data.sentences.items()} if data.sentences else None
        )
        self.epoch = start_epoch
        self.rows: list[dict] = []

    # -- checkpointing ---------------------------------------------------------------
    def state(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.bit_generator.state,
            "noise": self.noise.get_state(),
            "rows": self.rows,
            **checkpoint_settings(self.config, self.data.stimulus),
        }

    def load_state(self, state: dict) -> None:
        check_checkpoint(state, self.config, self.data.stimulus, self.label)
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["rng"]
        self.noise.set_state(state["noise"].cpu())  # map_location may have moved it
        self.rows = list(state["rows"])

    # -- one batch -------------------------------------------------------------------
    def step(self, task: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One training batch of ``task``; returns its loss and accuracy as 0-d tensors
        on the training device. Nothing here waits for the device or copies between
        host and device (the batch is drawn on the device, see :func:`draw_batch`);
        the epoch reads the values back once, at its end."""
        cfg = self.config
        choices = self.sentences[task] if self.sentences is not None else None
        trials, sentence_idx, r = draw_batch(None, self.noise, self.pools[task], choices,
                                             cfg.batch_size)
        task_idx = torch.full((cfg.batch_size,), TASK_INDEX[task], device=self.device)
        outputs, _ = self.model(r.inputs, self.model.task_vectors(task_idx, sentence_idx))
        loss = masked_mse(outputs, r.targets, r.mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        accuracy = is_correct(outputs.detach(), trials, cfg.criterion_scoring).float().mean()
        return loss.detach(), accuracy

    # -- one epoch -------------------------------------------------------------------
    def run_epoch(self, progress: bool = True) -> pd.DataFrame:
        cfg = self.config
        tasks = list(self.data.tasks)
        schedule = task_schedule(self.rng, len(tasks), cfg.batches_per_epoch)
        lr = self.optimizer.param_groups[0]["lr"]  # the sensorimotor parameters' rate
        # per-batch loss and accuracy stay on the device until the epoch ends
        losses = torch.empty(len(schedule), device=self.device)
        accs = torch.empty(len(schedule), device=self.device)
        start = time.perf_counter()
        bar = tqdm(schedule, desc=f"{self.label} epoch {self.epoch + 1}", disable=not progress,
                   mininterval=5, leave=False)
        self.model.train()
        for b, k in enumerate(bar):
            losses[b], accs[b] = self.step(tasks[k])
        losses, accs = losses.cpu().numpy().astype(np.float64), accs.cpu().numpy().astype(np.float64)
        seconds = time.perf_counter() - start
        check_finite(self.label, self.epoch, [tasks[k] for k in schedule], losses)
        self.scheduler.step()
        self.epoch += 1
        rows = []
        for i, t in enumerate(tasks):
            sel = schedule == i
            rows.append({
                "epoch": self.epoch,
                "task": t,
                "loss": float(np.mean(losses[sel])) if sel.any() else float("nan"),
                "accuracy": float(np.mean(accs[sel])) if sel.any() else float("nan"),
                "batches": int(sel.sum()),
                "lr": lr,
                "seconds": seconds,
                "trials_per_s": cfg.batches_per_epoch * cfg.batch_size / seconds,
            })
        self.rows.extend(rows)
        return pd.DataFrame(rows)

    def done(self, epoch_table: pd.DataFrame) -> bool:
        return stop_training(self.epoch, epoch_table["accuracy"], self.config)

    @property
    def reached_criterion(self) -> bool:
        """Whether the last finished epoch met the criterion (every task ≥ threshold)."""
        last = [row["accuracy"] for row in self.rows if row["epoch"] == self.epoch]
        return criterion_met(last, self.config)

    def fit(self, checkpoint: str | Path | None = None, progress: bool = True,
            final: bool = True) -> pd.DataFrame:
        """Train to criterion, resuming from ``checkpoint`` if it exists; return the log.
        ``final=False``: a planned phase (the tuned variant's frozen epochs), whose end
        is not reported as meeting or missing the criterion."""
        checkpoint = Path(checkpoint) if checkpoint else None
        if checkpoint is not None and checkpoint.exists():
            self.load_state(load_file(checkpoint, self.device, REMEDY_CHECKPOINT))
            log.info("%s: resumed from %s after epoch %d", self.label, checkpoint, self.epoch)
            last = [row for row in self.rows if row["epoch"] == self.epoch]
            if last and self.done(pd.DataFrame(last)):
                if final:
                    log_stop(self.label, self.epoch, self.reached_criterion, self.config)
                return self.log_table()
        while True:
            table = self.run_epoch(progress)
            log.info(
                "%s: epoch %d loss %.4f, mean accuracy %.3f (min %.3f, %s), lr %.2e, %.0f trials/s",
                self.label, self.epoch, table["loss"].mean(), table["accuracy"].mean(),
                table["accuracy"].min(), table.loc[table["accuracy"].idxmin(), "task"],
                table["lr"].iloc[0], table["trials_per_s"].iloc[0],
            )
            if checkpoint is not None:
                save_atomic(self.state(), checkpoint)
            if self.done(table):
                if final:
                    log_stop(self.label, self.epoch, self.reached_criterion, self.config)
                return self.log_table()

    def log_table(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows)
        return df.astype({"epoch": "int32", "task": "string", "batches": "int32"})
