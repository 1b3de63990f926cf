"""Packed training: several independent networks trained as one stacked computation.

Each network of a pack keeps everything the one-at-a-time path
(:class:`~instructnet.training.loop.Trainer`) gives it — its own initial weights,
Adam state, learning-rate schedule, random streams (task schedule, batch latents,
input noise; seeded exactly as in :func:`~instructnet.training.run.train_job`) and
stopping criterion — so it sees exactly the batches its unpacked run would see, and
ends with the same weights and training log up to float rounding. Only the RNN and
readout (where the time goes) are stacked on a leading network axis
(:class:`~instructnet.models.packed.PackedNetworks`); task encoders stay per network.

A network that meets its criterion is written out at the end of that epoch
(``model.pt`` + ``train_log.parquet``, the same files as the unpacked path) and
leaves the stack; a waiting network (packs larger than ``max_networks``) takes its
place. After every epoch each network's state is checkpointed to its own
``checkpoint.pt`` in the unpacked Trainer's format, so a killed pack resumes where it
stopped — packed or not. Tuned models (language model inside the loop) are rejected:
they train one per job.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..embeddings import instruction_rows, read_embeddings
from ..models.encoders import TASK_DIM
from ..models.io import load_file, save_model
from ..models.network import SensorimotorModel, build_model
from ..models.packed import PackedNetworks, graph_packed
from ..models.spec import ModelSpec
from ..seeding import seed_int
from ..tasks import TrialBatch, is_correct, read_trials
from ..tasks.batches import sample_batch
from ..tasks.constants import N_INPUTS, N_OUTPUTS, N_RING, N_STEPS, TASK_INDEX
from ..tasks.rendering import draw_noise, render
from ..tasks.stimulus import PAPER, Stimulus
from .loop import (
    REMEDY_CHECKPOINT,
    TrainConfig,
    TrainingConfigError,
    TrainingData,
    check_checkpoint,
    check_finite,
    checkpoint_settings,
    criterion_met,
    log_stop,
    lr_scheduler,
    save_atomic,
    stop_training,
    task_schedule,
)

log = logging.getLogger(__name__)

__all__ = ["PackMember", "PackedTrainer", "PackingError", "StackedAdam", "train_pack"]


class PackingError(ValueError):
    """Networks that cannot be trained together."""


# --------------------------------------------------------------------------- optimiser
class StackedAdam:
    """Adam over stacked (N, ...) parameters, per-network step counts and rates.

    The update is torch.optim.Adam's (no weight decay, no amsgrad) applied to each
    network's slice: ``m ← lerp(m, g, 1 − β1)``, ``v ← β2 v + (1 − β2) g²``,
    ``p ← p − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + ε)``. The per-network step
    counts and bias corrections live on the parameters' device (float64, as Adam's
    own Python-float arithmetic), so a step moves nothing between host and device;
    the rates are copied there only when they change (once per epoch).
    """

    def __init__(self, params: Sequence[torch.Tensor], exp_avg, exp_avg_sq, steps: Sequence[int],
                 betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.exp_avg = list(exp_avg)
        self.exp_avg_sq = list(exp_avg_sq)
        self.beta1, self.beta2 = betas
        self.eps = eps
        dev = self.params[0].device
        self._steps = torch.tensor([float(s) for s in steps], dtype=torch.float64).to(dev)
        self._lr: list[float] | None = None
        self._lr_dev = None

    @property
    def steps(self) -> list[int]:
        """Each network's step count (reads the device)."""
        return [int(s) for s in self._steps.tolist()]

    @torch.no_grad()
    def step(self, lr: Sequence[float]) -> None:
        lr = [float(r) for r in lr]
        if lr != self._lr:  # once per epoch: the schedules change the rates per epoch
            self._lr = lr
            self._lr_dev = torch.tensor(lr, dtype=torch.float64).to(self._steps.device)
        self._steps += 1
        dt = self.params[0].dtype
        step_size = (-self._lr_dev / (1 - torch.pow(self.beta1, self._steps))).to(dt)
        bc2_sqrt = (1 - torch.pow(self.beta2, self._steps)).sqrt_().to(dt)
        b1, b2 = self.beta1, self.beta2
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad
            shape = (-1,) + (1,) * (p.dim() - 1)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = v.sqrt().div_(bc2_sqrt.view(shape)).add_(self.eps)
            p.addcdiv_(m * step_size.view(shape), denom)


# --------------------------------------------------------------------------- one network
@dataclass
class PackMember:
    """One network of a pack: what :func:`~instructnet.training.run.train_job` takes
    for one (holdout, model, seed), minus what the pack shares (device, base seed)."""

    spec: ModelSpec
    holdout: str
    seed: int
    tasks: Sequence[str]
    config: TrainConfig
    model_out: str | Path
    log_out: str | Path
    checkpoint: str | Path | None = None

    @property
    def label(self) -> str:
        return f"{self.holdout}/{self.spec.name}/seed{self.seed}"


class PackNetwork:
    """The per-network half of a pack member: encoder, its Adam, schedule, streams, log.

    ``opt``/``sched`` are exactly the unpacked Trainer's optimiser and scheduler over
    the whole model; the stacked RNN/readout parameters get no gradients here (Adam
    skips them) and their moments live in the pack while the network is packed."""

    def __init__(self, member: PackMember, model: SensorimotorModel, data: TrainingData,
                 data_seed: int, device: torch.device, pools: Mapping[str, TrialBatch]):
        self.member = member
        self.config = member.config
        self.model = model.to(device)
        self.device = device
        self.tasks = list(data.tasks)
        self.pools = pools
        self.stimulus = data.stimulus
        self.sentences = ({t: s.to(device) for t, s in data.sentences.items()}
                          if data.sentences else None)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=self.config.lr)
        self.sched = lr_scheduler(self.opt, self.config)
        self.stacked = list(self.model.rnn.parameters()) + list(self.model.readout.parameters())
        ids = {id(p) for p in self.stacked}
        self.encoder_params = [p for p in params if id(p) not in ids]
        self.rng = np.random.default_rng(data_seed)
        self.noise = torch.Generator(device=device).manual_seed(data_seed)
        self.epoch = 0
        self.rows: list[dict] = []
        self.schedule = None

    @property
    def label(self) -> str:
        return self.member.label

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    # -- checkpoints in the unpacked Trainer's format ----------------------------------
    def state(self) -> dict:
        return {
            "epoch": self.epoch, "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "rng": self.rng.bit_generator.state, "noise": self.noise.get_state(),
            "rows": self.rows, **checkpoint_settings(self.config, self.stimulus),
        }

    def load_state(self, state: dict) -> None:
        check_checkpoint(state, self.config, self.stimulus, self.label)
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["rng"]
        self.noise.set_state(state["noise"].cpu())  # map_location may have moved it
        self.rows = list(state["rows"])

    def _last_accuracies(self) -> list[float]:
        return [row["accuracy"] for row in self.rows if row["epoch"] == self.epoch]

    def done(self) -> bool:
        """The unpacked Trainer's stopping rule on the last finished epoch."""
        return stop_training(self.epoch, self._last_accuracies(), self.config)

    @property
    def reached_criterion(self) -> bool:
        return criterion_met(self._last_accuracies(), self.config)

    # -- an epoch ------------------------------------------------------------------------
    def begin_epoch(self) -> None:
        self.schedule = task_schedule(self.rng, len(self.tasks), self.config.batches_per_epoch)
        self.epoch_lr = self.lr

    def draw(self, b: int, noise_out: torch.Tensor | None = None, indices_only: bool = False):
        """Batch ``b`` of the epoch: the draws of the unpacked Trainer's step, from the
        same generator in the same order (trial indices, instruction picks, noise).
        Returns (task, trials, sentence rows or None, noise), with the trials' indices
        into the task's pool instead of the trials if ``indices_only``; the noise is
        written into ``noise_out`` when given."""
        task = self.tasks[self.schedule[b]]
        choices = self.sentences[task] if self.sentences is not None else None
        B = self.config.batch_size
        trials, sentence_idx = sample_batch(None, self.noise, self.pools[task], choices, B,
                                            indices_only=indices_only)
        if noise_out is None:
            noise_out = draw_noise(B, self.noise)
        else:
            torch.randn(noise_out.shape, generator=self.noise, device=noise_out.device,
                        out=noise_out)
        return task, trials, sentence_idx, noise_out

    def end_epoch(self, tasks: list[str], losses: np.ndarray, accs: np.ndarray, seconds: float):
        check_finite(self.label, self.epoch, tasks, losses)
        cfg = self.config
        with warnings.catch_warnings():  # rule models: opt.step() never ran (nothing to step)
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.sched.step()
        self.epoch += 1
        names = np.asarray(tasks)
        rows = []
        for t in self.tasks:
            sel = names == t
            rows.append({
                "epoch": self.epoch, "task": t,
                "loss": float(np.mean(losses[sel])) if sel.any() else float("nan"),
                "accuracy": float(np.mean(accs[sel])) if sel.any() else float("nan"),
                "batches": int(sel.sum()), "lr": self.epoch_lr, "seconds": seconds,
                "trials_per_s": cfg.batches_per_epoch * cfg.batch_size / seconds,
            })
        self.rows.extend(rows)
        table = pd.DataFrame(rows)
        log.info("%s: epoch %d loss %.4f, mean accuracy %.3f (min %.3f, %s), lr %.2e, %.0f trials/s",
                 self.label, self.epoch, table["loss"].mean(), table["accuracy"].mean(),
                 table["accuracy"].min(), table.loc[table["accuracy"].idxmin(), "task"],
                 self.epoch_lr, table["trials_per_s"].iloc[0])

    def write_outputs(self) -> pd.DataFrame:
        """model.pt and train_log.parquet, exactly as train_job writes them."""
        m = self.member
        table = pd.DataFrame(self.rows).astype({"epoch": "int32", "task": "string", "batches": "int32"})
        table.insert(0, "seed", np.int32(m.seed))
        table.insert(0, "model", m.spec.name)
        table.insert(0, "holdout", m.holdout)
        table = table.astype({"holdout": "string", "model": "string"})
        save_model(self.model.cpu(), m.spec, m.model_out, holdout=m.holdout, seed=m.seed,
                   training_tasks=list(m.tasks), train_config=asdict(self.config),
                   epochs=self.epoch, reached_criterion=self.reached_criterion,
                   stimulus=self.stimulus.settings())
        table.to_parquet(m.log_out, index=False)
        return table


# --------------------------------------------------------------------------- the pack
class PackedTrainer:
    """Trains ``networks`` together, at most ``max_networks`` in the stack at a time.

    All networks must share ``batch_size``, ``batches_per_epoch`` and ``grad_clip``
    (the stacked step is one batch per network); learning rates, decay, thresholds and
    epoch limits may differ. ``run()`` returns each network's log table, in order.
    Its steps are public for the benchmarks that drive a pack themselves: ``pack``
    (stack networks), ``step`` (one stacked batch), ``run_epoch``, ``unpack`` (copy one
    network's slices back into its own model and optimiser).
    """

    def __init__(self, networks: Sequence[PackNetwork], max_networks: int | None = None,
                 progress: bool = True, cuda_graphs: bool = True):
        if not networks:
            raise PackingError("no networks to train")
        shared = {(n.config.batch_size, n.config.batches_per_epoch, n.config.grad_clip)
                  for n in networks}
        if len(shared) != 1:
            raise PackingError("networks trained together must share batch_size, "
                               f"batches_per_epoch and grad_clip; got {sorted(shared, key=str)}")
        for n in networks:
            if n.config.batches_per_epoch < len(n.tasks):
                raise TrainingConfigError(
                    f"training.batches_per_epoch ({n.config.batches_per_epoch}) must be at least "
                    f"the number of training tasks ({len(n.tasks)}) so that every task is scored")
        self.networks = list(networks)
        self.max_networks = max_networks or len(networks)
        self.progress = progress
        self.device = networks[0].device
        # CUDA graphs for the stacked recurrence (forward and backward each one replay)
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self.tables: dict[int, pd.DataFrame] = {}
        # Every pool of every network, concatenated once: a stacked step then gathers
        # all networks' trials with one index per field instead of one per network.
        self._offsets: dict[int, int] = {}
        parts = []
        for n in self.networks:
            for pool in n.pools.values():
                if id(pool) not in self._offsets:
                    self._offsets[id(pool)] = sum(len(q) for q in parts)
                    parts.append(pool)
        self.all_trials = TrialBatch.cat(parts)

    # -- stacking ------------------------------------------------------------------------
    def pack(self, active: list[PackNetwork]) -> None:
        """Stack the active networks' RNN/readout weights and Adam moments."""
        self.active = active
        self.packed = PackedNetworks.from_models([n.model for n in active]).to(self.device)
        moments = {"exp_avg": [], "exp_avg_sq": []}
        steps = []
        for n in active:
            st = [n.opt.state.get(p, {}) for p in n.stacked]
            counts = {int(s["step"]) for s in st if "step" in s}
            if len(counts) > 1:
                raise ValueError(f"{n.label}: inconsistent optimiser step counts {sorted(counts)}")
            steps.append(counts.pop() if counts else 0)
            for key in moments:
                moments[key].append([s[key] if key in s else torch.zeros_like(p)
                                     for s, p in zip(st, n.stacked)])
        params = self.packed.tensors()
        stack = lambda key: [torch.stack([m[i] for m in moments[key]]).to(params[i])  # noqa: E731
                             for i in range(len(params))]
        self.adam = StackedAdam(params, stack("exp_avg"), stack("exp_avg_sq"), steps)
        N = len(active)
        B = active[0].config.batch_size
        self.noise_buf = torch.empty(N * B, N_STEPS, 2 * N_RING, device=self.device)
        self.x = torch.empty(N, N_STEPS, B, N_INPUTS, device=self.device)
        self.core = self.packed
        if self.cuda_graphs:
            try:
                self.core = graph_packed(self.packed, self.x,
                                         torch.zeros(N, B, TASK_DIM, device=self.device))
            except Exception as exc:  # noqa: BLE001 - same results, only slower
                warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); "
                              "the packed networks run eagerly", RuntimeWarning, stacklevel=2)
                log.warning("CUDA graph capture failed (%s); running eagerly", exc)
                self.cuda_graphs = False
                self.core = self.packed

    @torch.no_grad()
    def unpack(self, j: int, steps: list[int]) -> None:
        """Copy network j's slices (weights, Adam moments and step) into its own model
        and optimiser, where checkpoints and outputs read them."""
        n = self.active[j]
        self.packed.write_back(j, n.model)
        step = steps[j]
        if step == 0:
            return
        for i, p in enumerate(n.stacked):
            n.opt.state[p] = {
                "step": torch.tensor(float(step)),
                "exp_avg": self.adam.exp_avg[i][j].clone(),
                "exp_avg_sq": self.adam.exp_avg_sq[i][j].clone(),
            }

    # -- one stacked step ----------------------------------------------------------------
    def step(self, b: int, losses: torch.Tensor, accs: torch.Tensor, tasks: list[list[str]]):
        """Batch ``b`` of every active network as one stacked step: each network draws
        its batch from its own generator (as its unpacked run would), the batches are
        gathered and rendered together, the stacked networks run forward and backward
        once, each network's Adam steps on its own gradients. Losses and accuracies
        are written into row ``b`` of the device tensors ``losses``/``accs``; nothing
        waits for the device or crosses between host and device."""
        N, B = len(self.active), self.active[0].config.batch_size
        idx, sentence_rows = [], []
        for j, n in enumerate(self.active):
            task, tr_idx, sentence_idx, _ = n.draw(b, self.noise_buf[j * B : (j + 1) * B],
                                                   indices_only=True)
            tasks[j].append(task)
            idx.append(tr_idx + self._offsets[id(n.pools[task])])
            sentence_rows.append((task, sentence_idx))
        trials = self.all_trials[torch.cat(idx)]
        r = render(trials, noise=self.noise_buf, batch=B)  # B: one σ per network batch (reference)
        self.x.copy_(r.inputs.view(N, B, N_STEPS, N_INPUTS).transpose(1, 2))
        target = r.targets.view(N, B, N_STEPS, N_OUTPUTS).transpose(1, 2)
        mask = r.mask.view(N, B, N_STEPS, N_OUTPUTS).transpose(1, 2)
        task_vecs = []
        for n, (task, sentence_idx) in zip(self.active, sentence_rows):
            task_idx = torch.full((B,), TASK_INDEX[task], device=self.device)
            task_vecs.append(n.model.task_vectors(task_idx, sentence_idx))
        const = torch.stack(task_vecs)
        for p in self.adam.params:
            p.grad = None
        for n in self.active:
            n.opt.zero_grad(set_to_none=True)
        outputs = self.core(self.x, const)
        if isinstance(outputs, tuple):
            outputs = outputs[0]
        per_net = (mask * (outputs - target).square()).mean(dim=(1, 2, 3))
        per_net.sum().backward()  # network j's parameters only receive its own loss's gradient
        clip = self.active[0].config.grad_clip
        if clip is not None:
            for p in self.adam.params:
                p.grad.clamp_(-clip, clip)
        for n in self.active:
            if n.encoder_params:
                if clip is not None:
                    torch.nn.utils.clip_grad_value_(n.encoder_params, clip)
                n.opt.step()
        self.adam.step([n.lr for n in self.active])
        losses[b] = per_net.detach()
        out = outputs.detach().transpose(1, 2).reshape(N * B, N_STEPS, N_OUTPUTS)
        scoring = self.active[0].config.criterion_scoring  # per network's own batch of B
        accs[b] = is_correct(out, trials, scoring, batch=B).view(N, B).float().mean(dim=1)

    def run_epoch(self) -> None:
        """One epoch of every packed network: ``batches_per_epoch`` stacked steps, then
        each network's epoch-end bookkeeping (log rows, finiteness check)."""
        active = self.active
        bpe = active[0].config.batches_per_epoch
        for n in active:
            n.begin_epoch()
        losses = torch.empty(bpe, len(active), device=self.device)  # read once per epoch
        accs = torch.empty(bpe, len(active), device=self.device)
        tasks: list[list[str]] = [[] for _ in active]
        epochs = sorted({n.epoch + 1 for n in active})
        bar = tqdm(range(bpe), desc=f"{len(active)} networks, epoch {'/'.join(map(str, epochs))}",
                   disable=not self.progress, mininterval=5, leave=False)
        self.packed.train()
        start = time.perf_counter()
        for b in bar:
            self.step(b, losses, accs, tasks)
        losses, accs = losses.cpu().numpy(), accs.cpu().numpy()
        seconds = time.perf_counter() - start
        for j, n in enumerate(active):
            n.end_epoch(tasks[j], losses[:, j].astype(np.float64), accs[:, j].astype(np.float64),
                        seconds)

    def _checkpoint(self, n: PackNetwork) -> None:
        if n.member.checkpoint is not None:
            save_atomic(n.state(), Path(n.member.checkpoint))

    def _finish(self, i: int) -> None:
        n = self.networks[i]
        log_stop(n.label, n.epoch, n.reached_criterion, n.config)
        self.tables[i] = n.write_outputs()
        log.info("%s: finished after %d epochs; wrote %s", n.label, n.epoch, n.member.model_out)

    # -- the loop ------------------------------------------------------------------------
    def resume(self) -> None:
        """Load each network's checkpoint, if it has one."""
        for n in self.networks:
            ckpt = n.member.checkpoint
            if ckpt is not None and Path(ckpt).exists():
                n.load_state(load_file(ckpt, self.device, REMEDY_CHECKPOINT))
                log.info("%s: resumed from %s after epoch %d", n.label, ckpt, n.epoch)

    def run(self) -> list[pd.DataFrame]:
        waiting = list(range(len(self.networks)))
        slots: list[int] = []
        while waiting or slots:
            # networks whose criterion is met (possibly on resume) are written out now
            for i in [i for i in waiting if self.networks[i].done()]:
                waiting.remove(i)
                self._finish(i)
            while waiting and len(slots) < self.max_networks:
                slots.append(waiting.pop(0))
            if not slots:
                break
            self.pack([self.networks[i] for i in slots])
            while True:
                self.run_epoch()
                finished = []
                steps = self.adam.steps
                for j, i in enumerate(slots):
                    self.unpack(j, steps)
                    self._checkpoint(self.networks[i])
                    if self.networks[i].done():
                        finished.append(i)
                for i in finished:
                    self._finish(i)
                if finished:
                    slots = [i for i in slots if i not in finished]
                    break  # restack the remaining networks (plus waiting ones)
        return [self.tables[i] for i in range(len(self.networks))]


# --------------------------------------------------------------------------- a job
def train_pack(
    members: Sequence[PackMember],
    pool_paths: Mapping[str, str | Path],
    base_seed: int,
    embeddings_paths: Mapping[str, str | Path] | None = None,
    hidden: int = 256,
    device: str | torch.device = "cpu",
    max_networks: int | None = None,
    progress: bool = True,
    cuda_graphs: bool = True,
    stimulus: Stimulus = PAPER,
) -> list[pd.DataFrame]:
    """Train ``members`` together and write each one's ``model.pt`` and
    ``train_log.parquet``; the same files, seeds and streams as one
    :func:`~instructnet.training.run.train_job` per member. On CUDA, ``cuda_graphs``
    replays the stacked recurrence as CUDA graphs (:func:`graph_packed`). ``embeddings_paths`` maps a
    language-model name to its embedding table (instructed members). Trials are
    rendered with ``stimulus``. Checkpoints are removed once every member is written out."""
    device = torch.device(device)
    for m in members:
        if m.spec.tuned:
            raise PackingError(
                f"{m.label}: tuned models train their language model inside the loop and "
                "cannot be packed; train them one per job (training.packing.by: none)")
    pools: dict[str, TrialBatch] = {}
    embeddings: dict[str, tuple] = {}
    networks = []
    for m in members:
        for t in m.tasks:
            if t not in pools:
                pools[t] = TrialBatch.from_frame(read_trials(pool_paths[t]), device, stimulus)
        emb = sentences = None
        if m.spec.instructed:
            if m.spec.lm not in embeddings:
                rows, vectors = read_embeddings((embeddings_paths or {})[m.spec.lm])
                embeddings[m.spec.lm] = (rows, torch.tensor(vectors))
            rows, emb = embeddings[m.spec.lm]
            sentences = instruction_rows(rows, m.tasks, "train")
        data = TrainingData(m.tasks, {t: pools[t] for t in m.tasks}, sentences)
        model = build_model(m.spec, seed_int(base_seed, "init", m.spec.name, m.seed), emb, hidden,
                            norm_rows=sentences.values() if sentences else None)
        data_seed = seed_int(base_seed, "train", m.holdout, m.spec.name, m.seed)
        networks.append(PackNetwork(m, model, data, data_seed, device, data.pools))
    trainer = PackedTrainer(networks, max_networks, progress, cuda_graphs)
    trainer.resume()
    tables = trainer.run()
    for m in members:
        if m.checkpoint is not None:
            Path(m.checkpoint).unlink(missing_ok=True)
    return tables
