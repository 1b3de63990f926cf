"""Design experiments for a small study: train models × seeds on a task set with some
tasks held out, then score training accuracy and zero-shot accuracy on the held-out
tasks (``python -m instructnet.bench design``).

The question it answers is empirical: which task set, holdout groups and number of
batches make a short run (minutes of CPU per model) show the study's effect — trained
tasks learned, held-out tasks done zero-shot by compositional models and not by
SIMPLENET — and how much CPU that costs.

Holdout principle (:func:`eligible_heldout`): a task may be held out of a task set
when, with the other held-out tasks removed,

* some three distinct *training* tasks A, B, C satisfy v(task) = v(A) − v(B) + v(C)
  (the "compositional references" of METHODS §2, searched in the whole training set,
  not only the task's family), and
* every nonzero entry of the task's structure vector occurs with the same value on
  the same axis in some training task (every structural feature was trained).

Groups are given explicitly (``--group NAME=TASK,TASK``) and are checked against the
principle; :func:`principled_groups` builds groups by the rule (one eligible task per
family, drawn with a seed) so that others can check the result on groups nobody chose.

Everything uses the package's own code: trial pools (``generate_pool``), models
(``build_model``), the training loop (``Trainer``; ``--packed``: the packed trainer's
stacked step), the embedding cache (``embed_corpus``/``write_embeddings``) and the
held-out protocol (``zero_shot``, which equals ``heldout_learning``'s batch 0).
Scoring is the strict per-trial ``is_correct``.

Output, under ``--out``: one Parquet file per (task set, group, model, seed) job in
``jobs/`` (a finished job is not run again), and ``design.parquet`` with all rows:
task_set, group, model, seed, batches, kind (``train``: fresh trials of a training
task; ``heldout``: zero-shot on a held-out task; ``train_batches``: the training
batches' own accuracy over the last epoch, what the workflow's stopping rule reads),
task, accuracy, trials, cpu_seconds and wall_seconds (training only, cumulative, of
that job's process; in packed mode the pack's, shared by its networks).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..tasks.constants import FAMILIES, FAMILY_OF, STRUCTURE, TASKS, check_tasks

log = logging.getLogger(__name__)

# Named task sets. ``go_dm``: the 20 imperative tasks (Go family, DM family without the
# Con tasks, whose threshold table is a stage of its own).
TASK_SETS: dict[str, tuple[str, ...]] = {
    "go": FAMILIES["Go"],
    "dm": tuple(t for t in FAMILIES["DM"] if not t.startswith("Con")),
    "go_dm": FAMILIES["Go"] + tuple(t for t in FAMILIES["DM"] if not t.startswith("Con")),
    "go_dmmod": FAMILIES["Go"] + ("DM", "AntiDM", "DMMod1", "AntiDMMod1", "DMMod2", "AntiDMMod2"),
}

COLUMNS = {"task_set": "string", "group": "string", "model": "string", "seed": "int32",
           "batches": "int32", "kind": "string", "task": "string", "accuracy": "float64",
           "trials": "int32", "cpu_seconds": "float64", "wall_seconds": "float64"}


# --------------------------------------------------------------------------- principle
def task_set(spec: str) -> tuple[str, ...]:
    """A named task set (:data:`TASK_SETS`), or comma-separated task names and
    ``family:<name>`` entries (e.g. ``family:Go,DM,AntiDM``), in canonical task order."""
    if spec in TASK_SETS:
        return TASK_SETS[spec]
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part.startswith("family:"):
            fam = part[len("family:"):]
            if fam not in FAMILIES:
                raise ValueError(f"unknown family {fam!r}; expected one of {', '.join(FAMILIES)}")
            names.extend(FAMILIES[fam])
        else:
            names.extend(check_tasks([part]))
    chosen = set(names)
    return tuple(t for t in TASKS if t in chosen)


def compositional_triples(task: str, training: Sequence[str]) -> list[tuple[str, str, str]]:
    """Every (A, B, C) of distinct training tasks (none equal to ``task``) with
    v(task) = v(A) − v(B) + v(C)."""
    target = STRUCTURE[task]
    others = [t for t in training if t != task]
    by_vector: dict[tuple[int, ...], list[str]] = {}
    for t in others:
        by_vector.setdefault(STRUCTURE[t], []).append(t)
    out = []
    for a in others:
        for b in others:
            if a == b:
                continue
            need = tuple(x - y + z for x, y, z in zip(target, STRUCTURE[a], STRUCTURE[b]))
            # v(C) = v(task) - v(A) + v(B)
            for c in by_vector.get(need, ()):
                if c not in (a, b):
                    out.append((a, b, c))
    return out


def features_seen(task: str, training: Sequence[str]) -> bool:
    """Every nonzero structure entry of ``task`` occurs (same axis, same value) in some
    training task."""
    v = STRUCTURE[task]
    return all(any(STRUCTURE[t][k] == x for t in training if t != task)
               for k, x in enumerate(v) if x != 0)


def eligible_heldout(tasks: Sequence[str], also_held_out: Sequence[str] = ()) -> list[str]:
    """The tasks of ``tasks`` that may be held out while ``also_held_out`` are held out
    too: a compositional triple among the remaining training tasks and every structural
    feature seen in training (module docstring)."""
    out = []
    for t in tasks:
        if t in also_held_out:
            continue
        training = [x for x in tasks if x != t and x not in also_held_out]
        if compositional_triples(t, training) and features_seen(t, training):
            out.append(t)
    return out


def check_group(tasks: Sequence[str], group: Sequence[str]) -> list[str]:
    """Reasons why ``group`` breaks the principle on ``tasks`` (empty: it is fine)."""
    problems = []
    missing = [t for t in group if t not in tasks]
    if missing:
        problems.append(f"not in the task set: {', '.join(missing)}")
    training = [t for t in tasks if t not in group]
    for t in group:
        if t in missing:
            continue
        if not compositional_triples(t, training):
            problems.append(f"{t}: no v(A) - v(B) + v(C) among the training tasks")
        if not features_seen(t, training):
            problems.append(f"{t}: a structural feature is never trained")
    return problems


def principled_groups(tasks: Sequence[str], n_groups: int, seed: int,
                      per_family: int = 1) -> list[tuple[str, ...]]:
    """``n_groups`` distinct holdout groups, each ``per_family`` tasks from every family
    of ``tasks``, drawn at random (``seed``) among the tasks the principle allows, each
    draw checked against the tasks already in the group."""
    rng = np.random.default_rng(seed)
    families = [f for f in FAMILIES if any(FAMILY_OF[t] == f for t in tasks)]
    groups: list[tuple[str, ...]] = []
    for _ in range(1000 * n_groups):
        if len(groups) == n_groups:
            break
        group: list[str] = []
        for fam in families:
            for _ in range(per_family):
                options = [t for t in eligible_heldout(tasks, group) if FAMILY_OF[t] == fam]
                options = [t for t in options if not check_group(tasks, group + [t])]
                if not options:
                    break
                group.append(options[rng.integers(len(options))])
        g = tuple(t for t in TASKS if t in group)
        if len(g) == per_family * len(families) and g not in groups:
            groups.append(g)
    return groups


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class DesignConfig:
    batches: int = 3000
    eval_every: int = 0           # 0: only at the end; else every K batches (a multiple of the epoch)
    batches_per_epoch: int = 500  # the learning rate decays once per epoch
    lr: float = 1e-3
    lr_decay: float | None = None  # None: 0.95 per 2400 batches, spread over epochs
    lr_final_steps: tuple[int, ...] = ()  # training.lr_final_steps (epochs before the end)
    lr_final_factor: float = 0.25
    batch_size: int = 64
    grad_clip: float | None = 0.5
    hidden: int = 256
    train_pool: int = 512         # training latents per task (the workflow's default)
    eval_pool: int = 1024         # fresh evaluation latents per task
    train_trials: int = 128       # fresh trials per training task, final training accuracy
    curve_trials: int = 64        # ... at intermediate evaluation points
    heldout_trials: int = 256     # zero-shot trials per held-out task
    base_seed: int = 2024
    convention: str = "paper"     # stimulus geometry of every trial (trials.convention)

    @property
    def decay(self) -> float:
        if self.lr_decay is not None:
            return self.lr_decay
        from ..training.loop import epoch_lr_factor

        return epoch_lr_factor(0.95, self.batches_per_epoch, 2400)

    def train_config(self):
        """The training settings of every job: ``batches`` batches (no stopping before)."""
        from ..training.loop import TrainConfig

        epochs = self.batches // self.batches_per_epoch
        return TrainConfig(batch_size=self.batch_size, batches_per_epoch=self.batches_per_epoch,
                           lr=self.lr, lr_decay=self.decay,
                           lr_decay_batches=self.batches_per_epoch,
                           min_epochs=epochs, max_epochs=epochs, threshold=1.0,
                           grad_clip=self.grad_clip, lr_final_steps=self.lr_final_steps,
                           lr_final_factor=self.lr_final_factor)

    def checkpoints(self) -> list[int]:
        """Batch counts at which the job is evaluated (always the last)."""
        if self.batches % self.batches_per_epoch:
            raise ValueError(f"batches ({self.batches}) must be a multiple of batches_per_epoch "
                             f"({self.batches_per_epoch})")
        if self.eval_every:
            if self.eval_every % self.batches_per_epoch:
                raise ValueError("eval_every must be a multiple of batches_per_epoch")
            points = list(range(self.eval_every, self.batches, self.eval_every))
        else:
            points = []
        return points + [self.batches]


@dataclass(frozen=True)
class Job:
    task_set: str
    tasks: tuple[str, ...]
    group: str
    held_out: tuple[str, ...]
    model: str
    seed: int

    @property
    def training(self) -> tuple[str, ...]:
        return tuple(t for t in self.tasks if t not in self.held_out)

    @property
    def holdout_name(self) -> str:
        return f"design-{self.task_set}-{self.group}"

    @property
    def file_name(self) -> str:
        return f"{self.task_set}__{self.group}__{self.model}__seed{self.seed}.parquet"


# --------------------------------------------------------------------------- data
def embeddings_path(cache_dir: str | Path, lm: str) -> Path:
    return Path(cache_dir) / f"{lm}.parquet"


def ensure_embeddings(lms: Sequence[str], cache_dir: str | Path, device: str = "cpu") -> None:
    """Embed the shipped corpus once per language model (as the workflow's ``embed``
    rule does) into ``cache_dir/<lm>.parquet``; an existing file is reused."""
    from ..embeddings import BUILTIN_MODELS, embed_corpus, load, write_embeddings
    from ..instructions import load_corpus

    for lm in lms:
        path = embeddings_path(cache_dir, lm)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        model = BUILTIN_MODELS[lm]
        corpus = load_corpus()
        loaded = None if model.kind == "bow" else load(model, device)
        pooled, _ = embed_corpus(model, corpus, 64, device, loaded)
        tmp = path.with_name(path.name + ".tmp")
        write_embeddings(corpus, pooled, tmp)
        os.replace(tmp, path)
        log.info("embedded %d sentences with %s -> %s", len(corpus), lm, path)


def _pools(tasks: Sequence[str], cfg: DesignConfig, pool: str):
    from ..tasks import Stimulus, TrialBatch, generate_pool

    n = cfg.eval_pool if pool == "design-eval" else cfg.train_pool
    stimulus = Stimulus(cfg.convention)
    return {t: TrialBatch.from_frame(generate_pool(t, n, cfg.base_seed, pool), stimulus=stimulus)
            for t in tasks}


def _spec(model: str):
    from ..embeddings import language_models
    from ..models.spec import model_spec

    name, _, norm = model.partition("@")  # "sbertnet_minilm@zscore": standardised embeddings
    return model_spec(name, language_models(), norm or "none")


def _encoder_inputs(job: Job, cache_dir):
    """(spec, embeddings tensor or None, train-split rows of every task or None)."""
    import torch

    from ..embeddings import instruction_rows, read_embeddings

    spec = _spec(job.model)
    if not spec.instructed:
        return spec, None, None
    rows, vectors = read_embeddings(embeddings_path(cache_dir, spec.lm))
    return spec, torch.tensor(vectors), instruction_rows(rows, TASKS, "train")


# --------------------------------------------------------------------------- scoring
def _score(model, job: Job, cfg: DesignConfig, eval_pools, sentences, batches: int,
           final: bool, device) -> list[dict]:
    """Strict accuracy on fresh trials: every training task and every held-out task
    (zero-shot). The evaluation streams depend on (base seed, seed) only, so all models
    of a seed see the same trials and noise."""
    from ..evaluation.protocols import EvalConfig, zero_shot
    from ..seeding import seed_int

    spec = _spec(job.model)
    rows = []
    n_train = cfg.train_trials if final else cfg.curve_trials
    parts = [("train", job.training, n_train, seed_int(cfg.base_seed, "design-train", job.seed)),
             ("heldout", job.held_out, cfg.heldout_trials,
              seed_int(cfg.base_seed, "design-heldout", job.seed))]
    for kind, tasks, n, seed in parts:
        if not tasks:
            continue
        table = zero_shot(model, tasks, eval_pools, sentences,
                          EvalConfig(batch_size=n, repeats=1, scoring=("strict",)),
                          seed, device, instructed=spec.instructed)
        for task, acc in zip(table["task"], table["accuracy"]):
            rows.append({"batches": batches, "kind": kind, "task": str(task),
                         "accuracy": float(acc), "trials": n})
    return rows


def _epoch_rows(log_rows: list[dict], epoch: int, batches: int) -> list[dict]:
    return [{"batches": batches, "kind": "train_batches", "task": r["task"],
             "accuracy": float(r["accuracy"]), "trials": int(r["batches"])}
            for r in log_rows if r["epoch"] == epoch]


def _frame(job: Job, rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.insert(0, "seed", job.seed)
    df.insert(0, "model", job.model)
    df.insert(0, "group", job.group)
    df.insert(0, "task_set", job.task_set)
    return df[list(COLUMNS)].astype(COLUMNS)


# --------------------------------------------------------------------------- one job
def run_job(job: Job, cfg: DesignConfig, cache_dir, device: str = "cpu",
            partial: str | Path | None = None) -> pd.DataFrame:
    """Train one (task set, group, model, seed) with the unpacked Trainer and score it.
    ``partial``: a Parquet file rewritten with the rows so far at every evaluation
    point (a killed job keeps its learning curve)."""
    from ..models.network import build_model
    from ..seeding import seed_int
    from ..training.loop import Trainer, TrainingData

    spec, embeddings, sentences = _encoder_inputs(job, cache_dir)
    train_pools = _pools(job.training, cfg, "train")
    eval_pools = _pools(job.tasks, cfg, "design-eval")
    train_sentences = {t: sentences[t] for t in job.training} if sentences else None
    data = TrainingData(job.training, train_pools, train_sentences)
    tcfg = cfg.train_config()
    epochs = tcfg.max_epochs
    model = build_model(spec, seed_int(cfg.base_seed, "init", spec.name, job.seed), embeddings,
                        cfg.hidden, norm_rows=train_sentences.values() if train_sentences else None)
    trainer = Trainer(model, data, tcfg, seed_int(cfg.base_seed, "train", job.holdout_name,
                                                  spec.name, job.seed), device, job.holdout_name)
    points = set(cfg.checkpoints())
    rows: list[dict] = []
    cpu = wall = 0.0
    for epoch in range(1, epochs + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        trainer.run_epoch(progress=False)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        batches = epoch * cfg.batches_per_epoch
        if batches in points:
            new = _epoch_rows(trainer.rows, epoch, batches)
            new += _score(trainer.model, job, cfg, eval_pools, sentences, batches,
                          batches == cfg.batches, device)
            for r in new:
                r.update(cpu_seconds=cpu, wall_seconds=wall)
            rows += new
            _log_point(job, new, batches, cpu)
            if partial is not None and batches != cfg.batches:
                _frame(job, rows).to_parquet(partial, index=False)
    return _frame(job, rows)


def _log_point(job: Job, rows: list[dict], batches: int, cpu: float) -> None:
    tr = [r["accuracy"] for r in rows if r["kind"] == "train"]
    ho = {r["task"]: r["accuracy"] for r in rows if r["kind"] == "heldout"}
    log.info("%s/%s/%s/seed%d @%d: train %.3f (min %.3f), zero-shot %s, %.0f CPU-s",
             job.task_set, job.group, job.model, job.seed, batches, np.mean(tr), np.min(tr),
             ", ".join(f"{t} {a:.2f}" for t, a in ho.items()), cpu)


def _worker_init(threads: int = 1) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)


def _run_and_save(args) -> str:
    job, cfg, cache_dir, out_dir, device = args
    path = Path(out_dir) / "jobs" / job.file_name
    partial = Path(out_dir) / "partial" / job.file_name
    partial.parent.mkdir(exist_ok=True)
    df = run_job(job, cfg, cache_dir, device, partial)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    partial.unlink(missing_ok=True)
    return str(path)


# --------------------------------------------------------------------------- packed
def run_packed(jobs: Sequence[Job], cfg: DesignConfig, cache_dir, device: str = "cuda",
               partial: str | Path | None = None) -> list[pd.DataFrame]:
    """Train ``jobs`` together with the packed trainer's stacked step (one pack; meant
    for a GPU) and score every network at the evaluation points, as :func:`run_job`
    does one at a time. Networks see the batches their unpacked runs would see.
    ``partial``: a folder where every job's rows so far are rewritten at each
    evaluation point (a pack stopped by a time limit keeps its learning curves)."""
    import tempfile

    import torch

    from ..models.network import build_model
    from ..seeding import seed_int
    from ..training.loop import TrainingData
    from ..training.packed import PackedTrainer, PackMember, PackNetwork

    device = torch.device(device)
    tcfg = cfg.train_config()
    epochs = tcfg.max_epochs
    all_tasks = sorted({t for j in jobs for t in j.tasks}, key=TASKS.index)
    train_pools = {k: v.to(device) for k, v in
                   _pools(all_tasks, cfg, "train").items()}
    eval_pools = _pools(all_tasks, cfg, "design-eval")
    networks, sentences_of = [], []
    scratch = tempfile.mkdtemp(prefix="design-pack-")  # PackMember wants paths; never written
    for job in jobs:
        spec, embeddings, sentences = _encoder_inputs(job, cache_dir)
        train_sentences = {t: sentences[t] for t in job.training} if sentences else None
        data = TrainingData(job.training, {t: train_pools[t] for t in job.training},
                            train_sentences)
        member = PackMember(spec, job.holdout_name, job.seed, job.training, tcfg,
                            Path(scratch) / f"{len(networks)}.pt",
                            Path(scratch) / f"{len(networks)}.parquet")
        model = build_model(spec, seed_int(cfg.base_seed, "init", spec.name, job.seed),
                            embeddings, cfg.hidden,
                            norm_rows=train_sentences.values() if train_sentences else None)
        data_seed = seed_int(cfg.base_seed, "train", job.holdout_name, spec.name, job.seed)
        networks.append(PackNetwork(member, model, data, data_seed, device, data.pools))
        sentences_of.append(sentences)
    trainer = PackedTrainer(networks, progress=False)
    trainer.pack(networks)
    points = set(cfg.checkpoints())
    rows: list[list[dict]] = [[] for _ in jobs]
    cpu = wall = 0.0
    for epoch in range(1, epochs + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        trainer.run_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        batches = epoch * cfg.batches_per_epoch
        steps = trainer.adam.steps
        for j in range(len(networks)):
            trainer.unpack(j, steps)
        if batches not in points:
            continue
        for j, (job, n) in enumerate(zip(jobs, networks)):
            new = _epoch_rows(n.rows, epoch, batches)
            new += _score(n.model, job, cfg, eval_pools, sentences_of[j], batches,
                          batches == cfg.batches, device)
            for r in new:
                r.update(cpu_seconds=cpu, wall_seconds=wall)
            rows[j] += new
            _log_point(job, new, batches, cpu)
            if partial is not None and batches != cfg.batches:
                _frame(job, rows[j]).to_parquet(Path(partial) / job.file_name, index=False)
    return [_frame(job, r) for job, r in zip(jobs, rows)]


# --------------------------------------------------------------------------- sweep
def make_jobs(task_sets: Sequence[str], groups: Mapping[str, Sequence[str]],
              models: Sequence[str], seeds: Sequence[int], check: bool = True,
              only_in: Mapping[str, str] | None = None) -> list[Job]:
    """Every (task set, group, model, seed); a group whose tasks are not all in a task
    set is skipped for it, and ``only_in[name]`` restricts a group to one task set.
    ``check``: raise if a group breaks the holdout principle."""
    only_in = dict(only_in or {})
    jobs = []
    for ts in task_sets:
        tasks = task_set(ts)
        for name, group in groups.items():
            group = tuple(check_tasks(group))
            if not set(group) <= set(tasks) or only_in.get(name, ts) != ts:
                continue
            problems = check_group(tasks, group)
            if problems and check:
                raise ValueError(f"group {name} on task set {ts} breaks the holdout principle: "
                                 + "; ".join(problems))
            for model in models:
                _spec(model)  # fail early on an unknown name
                for seed in seeds:
                    jobs.append(Job(ts, tasks, name, group, model, int(seed)))
    if not jobs:
        raise ValueError("no job: no group lies inside any task set")
    return jobs


def run_sweep(jobs: Sequence[Job], cfg: DesignConfig, out_dir: str | Path,
              cache_dir: str | Path | None = None, n_jobs: int = 2, device: str = "cpu",
              packed: bool = False, threads: int = 1) -> pd.DataFrame:
    """Run every job not yet in ``out_dir/jobs`` and write ``out_dir/design.parquet``
    (all rows) and ``out_dir/summary.json`` (one entry per job at its last point)."""
    out_dir = Path(out_dir)
    (out_dir / "jobs").mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir else out_dir / "embeddings"
    lms = sorted({s.lm for s in (_spec(j.model) for j in jobs) if s.instructed})
    ensure_embeddings(lms, cache_dir)
    cfg.checkpoints()  # validate before starting anything
    (out_dir / "config.json").write_text(json.dumps(
        {"config": cfg.__dict__, "lr_decay_per_epoch": cfg.decay, "threads": threads,
         "parallel_jobs": n_jobs, "device": str(device), "packed": packed,
         "jobs": [j.__dict__ for j in jobs]}, indent=1, default=list))
    todo = [j for j in jobs if not (out_dir / "jobs" / j.file_name).exists()]
    if packed:
        by_set: dict[str, list[Job]] = {}
        for j in todo:
            by_set.setdefault(j.task_set, []).append(j)
        (out_dir / "partial").mkdir(exist_ok=True)
        for pack in by_set.values():
            for job, df in zip(pack, run_packed(pack, cfg, cache_dir, device,
                                                out_dir / "partial")):
                df.to_parquet(out_dir / "jobs" / job.file_name, index=False)
                (out_dir / "partial" / job.file_name).unlink(missing_ok=True)
    elif todo:
        args = [(j, cfg, cache_dir, out_dir, device) for j in todo]
        if n_jobs <= 1:  # in this process, with ``threads`` torch threads meanwhile
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for a in args:
                    _run_and_save(a)
            finally:
                torch.set_num_threads(before)
        else:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
            ctx = mp.get_context("spawn")
            with ctx.Pool(n_jobs, initializer=_worker_init, initargs=(threads,),
                          maxtasksperchild=1) as pool:
                for path in pool.imap_unordered(_run_and_save, args):
                    log.info("wrote %s", path)
    frames = [pd.read_parquet(out_dir / "jobs" / j.file_name) for j in jobs]
    table = pd.concat(frames, ignore_index=True).astype(COLUMNS)
    table.to_parquet(out_dir / "design.parquet", index=False)
    summary = summarize(table)
    (out_dir / "summary.json").write_text(json.dumps(summary.to_dict("records"), indent=1))
    return table


def collect(out_dir: str | Path) -> pd.DataFrame:
    """Every finished job under ``out_dir/jobs`` (whatever sweep wrote it), and the
    evaluation points so far of every stopped one under ``out_dir/partial``, into
    ``out_dir/design.parquet`` and ``out_dir/summary.json``."""
    out_dir = Path(out_dir)
    files = sorted((out_dir / "jobs").glob("*.parquet"))
    done = {f.name for f in files}
    files += sorted(f for f in (out_dir / "partial").glob("*.parquet") if f.name not in done)
    if not files:
        raise FileNotFoundError(f"no finished or partial job under {out_dir}")
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).astype(COLUMNS)
    table.to_parquet(out_dir / "design.parquet", index=False)
    (out_dir / "summary.json").write_text(json.dumps(summarize(table).to_dict("records"), indent=1))
    return table


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per job and evaluation point: mean and min training accuracy (fresh
    trials), zero-shot accuracy per held-out task and its mean, CPU seconds."""
    keys = ["task_set", "group", "model", "seed", "batches"]
    out = []
    for key, g in table.groupby(keys, sort=False, observed=True):
        tr = g[g["kind"] == "train"]
        ho = g[g["kind"] == "heldout"]
        row = dict(zip(keys, key))
        row.update(train_mean=round(float(tr["accuracy"].mean()), 4),
                   train_min=round(float(tr["accuracy"].min()), 4),
                   train_min_task=str(tr.loc[tr["accuracy"].idxmin(), "task"]),
                   zero_shot_mean=round(float(ho["accuracy"].mean()), 4),
                   zero_shot={str(t): round(float(a), 4) for t, a in zip(ho["task"], ho["accuracy"])},
                   cpu_seconds=round(float(g["cpu_seconds"].iloc[0]), 1))
        out.append(row)
    return pd.DataFrame(out)


def compare(tables: Mapping[str, pd.DataFrame], target: float = 0.85,
            at_most: int | None = None,
            seeds: Sequence[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare sweeps (``label -> design table``, e.g. one per batch size) over their
    groups and seeds: per label, model and evaluation point, the mean, min and max over
    networks of the mean training accuracy (fresh trials, strict) and of the zero-shot
    mean, with the number of networks; and per label and model, the first evaluation
    point at which each network's mean training accuracy reached ``target`` (min,
    median, max over the networks that reached it, and how many did). ``at_most``:
    ignore points after this many batches (so that sweeps of different lengths are
    compared over the same range); ``seeds``: only these seeds' networks (so that sweeps
    of different sizes are compared on the same networks)."""
    rows, first = [], []
    for label, table in _only_seeds(tables, seeds).items():
        summary = summarize(table)
        if at_most is not None:
            summary = summary[summary["batches"] <= at_most]
        for (model, batches), g in summary.groupby(["model", "batches"], sort=True):
            rows.append({"label": label, "model": model, "batches": int(batches),
                         "networks": len(g),
                         "train_mean": g["train_mean"].mean(), "train_lo": g["train_mean"].min(),
                         "train_hi": g["train_mean"].max(),
                         "zero_shot_mean": g["zero_shot_mean"].mean(),
                         "zero_shot_lo": g["zero_shot_mean"].min(),
                         "zero_shot_hi": g["zero_shot_mean"].max()})
        net = ["group", "model", "seed"]
        reached = summary[summary["train_mean"] >= target].groupby(net)["batches"].min()
        for model, g in summary.groupby("model", sort=True):
            hits = reached[reached.index.get_level_values("model") == model]
            first.append({"label": label, "model": model,
                          "networks": g.groupby(net).ngroups, "reached": len(hits),
                          "first_min": int(hits.min()) if len(hits) else None,
                          "first_median": float(hits.median()) if len(hits) else None,
                          "first_max": int(hits.max()) if len(hits) else None})
    return pd.DataFrame(rows).round(3), pd.DataFrame(first)


def _only_seeds(tables: Mapping[str, pd.DataFrame], seeds: Sequence[int] | None):
    if seeds is None:
        return dict(tables)
    return {label: t[t["seed"].isin(list(seeds))] for label, t in tables.items()}


def per_task(tables: Mapping[str, pd.DataFrame], at_most: int | None = None,
             seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Training accuracy per task (fresh trials, strict) at each network's last
    evaluation point (at most ``at_most`` batches): per label, model and task, the mean,
    min and max over the networks that trained on it, and how many did. Which tasks hold
    a model's mean training accuracy down."""
    rows = []
    for label, table in _only_seeds(tables, seeds).items():
        tr = table[table["kind"] == "train"]
        if at_most is not None:
            tr = tr[tr["batches"] <= at_most]
        last = tr.groupby(["group", "model", "seed"])["batches"].transform("max")
        tr = tr[tr["batches"] == last]
        for (model, task), g in tr.groupby(["model", "task"], sort=True, observed=True):
            rows.append({"label": label, "model": model, "task": task, "networks": len(g),
                         "batches": int(g["batches"].max()), "accuracy": g["accuracy"].mean(),
                         "lo": g["accuracy"].min(), "hi": g["accuracy"].max()})
    return pd.DataFrame(rows).round(3)


def parse_group(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME=Task1,Task2`` (or just ``Task1,Task2``, named by its tasks)."""
    name, _, tasks = text.rpartition("=")
    group = tuple(check_tasks([t.strip() for t in tasks.split(",") if t.strip()]))
    if not group:
        raise ValueError(f"empty holdout group {text!r}")
    return (name or "+".join(group)), group


def main(args) -> dict:
    """The ``design`` subcommand (arguments from instructnet.bench.__main__)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    groups = dict(parse_group(g) for g in args.group)
    only_in = {}
    if args.auto_groups:
        for ts in args.task_set:
            for i, g in enumerate(principled_groups(task_set(ts), args.auto_groups, args.group_seed)):
                name = f"{ts}-auto{args.group_seed}.{i}"
                groups[name], only_in[name] = g, ts
    if args.list_eligible:
        return {ts: {"tasks": list(task_set(ts)), "eligible": eligible_heldout(task_set(ts)),
                     "groups": {n: list(g) for n, g in groups.items()
                                if set(g) <= set(task_set(ts)) and only_in.get(n, ts) == ts}}
                for ts in args.task_set}
    if args.compare:
        tables = {}
        for item in args.compare:
            label, _, path = item.rpartition("=")
            path = Path(path)
            tables[label or path.stem] = pd.read_parquet(
                path / "design.parquet" if path.is_dir() else path)
        curves, first = compare(tables, args.target, args.at_most, args.only_seeds)
        out = {"target": args.target, "curves": curves.to_dict("records"),
               "first_at_target": first.to_dict("records")}
        if args.per_task:
            out["per_task"] = per_task(tables, args.at_most, args.only_seeds).to_dict("records")
        return out
    if args.collect:
        table = collect(args.out)
        summary = summarize(table)
        return {"out": str(Path(args.out) / "design.parquet"), "summary": summary.to_dict("records")}
    cfg = DesignConfig(batches=args.batches, eval_every=args.eval_every,
                       batches_per_epoch=args.batches_per_epoch, lr=args.lr,
                       lr_decay=args.lr_decay, lr_final_steps=tuple(args.lr_final_steps),
                       lr_final_factor=args.lr_final_factor, hidden=args.hidden,
                       batch_size=args.batch_size,
                       train_trials=args.train_trials, heldout_trials=args.heldout_trials,
                       curve_trials=args.curve_trials, base_seed=args.base_seed,
                       convention=args.convention)
    jobs = make_jobs(args.task_set, groups, args.models, args.seeds, check=not args.no_check,
                     only_in=only_in)
    table = run_sweep(jobs, cfg, args.out, args.embeddings_dir, args.jobs, args.device,
                      args.packed, args.threads)
    summary = summarize(table)
    last = summary[summary["batches"] == summary.groupby(
        ["task_set", "group", "model", "seed"])["batches"].transform("max")]
    return {"out": str(Path(args.out) / "design.parquet"), "jobs": len(jobs),
            "final": last.to_dict("records")}
