"""Held-out evaluation protocols (METHODS §6, "Held-out test" and "Other tests").

* :func:`heldout_learning`: for each held-out task and repeat, start from the trained
  weights and learn the task alone for ``batches`` batches of ``batch_size`` trials
  (Adam, ``lr``); the accuracy of every batch is recorded *before* that batch's
  update, so batch 0 is the zero-shot score and the batches form the learning curve.
* :func:`zero_shot`: accuracy on ``repeats`` batches of fresh trials, no learning,
  optionally with other instructions (swapped, validation) or fixed task vectors.
* :func:`swapped_instructions`, :func:`combined_vectors`,
  :func:`validation_instructions`: the other tests, as thin layers over zero_shot.

Seeding: every (task, repeat) has its own streams derived from ``seed`` —
``seed_int(seed, "heldout", task, repeat)`` drives a numpy Generator (trial indices,
then instruction picks, per batch) and ``seed_int(seed, "heldout-noise", task, repeat)``
a torch.Generator on the device (input noise). Results therefore do not depend on the
order of ``tasks``, and zero_shot's repeat ``r`` sees exactly the trials, instructions
and noise of heldout_learning's batch 0 of repeat ``r`` (same seed), so the two scores
are equal. Noise drawn on CUDA differs from noise drawn on CPU.

The caller's model is never modified by heldout_learning (it works on a deep copy);
zero_shot and the tests built on it run the caller's model in eval mode under
``torch.no_grad`` (it is moved to ``device`` in place, and its train/eval mode is
restored afterwards).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..models.encoders import TASK_DIM, InstructionEncoder, TunedInstructionEncoder
from ..models.network import SensorimotorModel, masked_mse
from ..seeding import seed_int
from ..tasks.batches import draw_batch
from ..tasks.constants import TASK_INDEX, check_tasks, compositional_references
from ..tasks.holdouts import held_out, swapped_instruction_task
from ..tasks.rendering import SCORINGS, TrialBatch, correct_by_scoring
from ..training.loop import TrainingDiverged

TRAIN_MODES = ("default", "input")


@dataclass(frozen=True)
class EvalConfig:
    """Held-out test settings: ``batches`` learning batches of ``batch_size`` trials at
    learning rate ``lr``, averaged over ``repeats`` repeats (zero-shot tests: ``repeats``
    batches of ``batch_size`` trials)."""

    batches: int = 100
    batch_size: int = 256
    lr: float = 8e-4
    repeats: int = 5
    # accuracy rules (instructnet.tasks.rendering.is_correct): one row per rule and batch
    scoring: tuple[str, ...] = SCORINGS

    def __post_init__(self):
        scoring = (self.scoring,) if isinstance(self.scoring, str) else tuple(self.scoring)
        if not scoring or any(s not in SCORINGS for s in scoring) or len(set(scoring)) < len(scoring):
            raise ValueError(f"evaluation.scoring must be a non-empty list of distinct names "
                             f"from {', '.join(SCORINGS)}, got {self.scoring!r}")
        object.__setattr__(self, "scoring", scoring)
        for name in ("batches", "batch_size", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"evaluation.{name} must be a positive integer, got {value!r}")
        lr = self.lr
        if (isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer))
                or not (lr > 0 and math.isfinite(lr))):
            raise ValueError(f"evaluation.lr must be a positive number, got {lr!r}")

    @classmethod
    def from_mapping(cls, values: Mapping | None, **override) -> EvalConfig:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown evaluation settings: {', '.join(map(str, unknown))}")
        values.update(override)
        return cls(**values)


# --------------------------------------------------------------------------- helpers
def is_instructed(model: SensorimotorModel) -> bool:
    """Whether the model reads instruction sentences (rather than rule vectors)."""
    return isinstance(model.encoder, (InstructionEncoder, TunedInstructionEncoder))


def _instructed(model, instructed: bool | None) -> bool:
    return is_instructed(model) if instructed is None else bool(instructed)


def _streams(seed: int, task: str, repeat: int, device: torch.device):
    """Portable streams (see draw_batch): numpy for trial and sentence draws, a CPU
    generator for the noise, so that every device scores the same trials."""
    rng = np.random.default_rng(seed_int(seed, "heldout", task, repeat))
    noise = torch.Generator().manual_seed(seed_int(seed, "heldout-noise", task, repeat))
    return rng, noise


def _check_inputs(tasks, pools, sentences, instructed: bool, task_vectors=None) -> list[str]:
    tasks = check_tasks(tasks)
    missing = [t for t in tasks if t not in pools]
    if missing:
        raise ValueError(f"no trial pool for tasks: {', '.join(missing)}")
    if instructed and task_vectors is None:
        if sentences is None:
            raise ValueError("an instructed model needs instruction sentences for every task")
        missing = [t for t in tasks if len(sentences.get(t, ())) == 0]
        if missing:
            raise ValueError(f"no instructions for tasks: {', '.join(missing)}")
    if task_vectors is not None:
        missing = [t for t in tasks if t not in task_vectors]
        if missing:
            raise ValueError(f"no task vector for tasks: {', '.join(missing)}")
    return tasks


def _task_vec(model, task: str, sentence_idx, batch_size: int, device, fixed=None):
    if fixed is not None:
        vec = torch.as_tensor(fixed, dtype=torch.float32, device=device).reshape(1, TASK_DIM)
        return vec.expand(batch_size, TASK_DIM)
    task_idx = torch.full((batch_size,), TASK_INDEX[task], dtype=torch.long, device=device)
    return model.task_vectors(task_idx, sentence_idx)


def trained_parameters(model: SensorimotorModel, instructed: bool | None = None,
                       train: str = "default") -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) pairs that held-out learning updates.

    ``default``: instructed models the RNN, the readout and the encoder's trainable
    head (never the language model); rule models every parameter that requires a
    gradient. ``input``: only the RNN's input weights and biases.
    """
    if train not in TRAIN_MODES:
        raise ValueError(f"evaluation train mode must be one of {', '.join(TRAIN_MODES)}, got {train!r}")
    named = dict(model.named_parameters())
    if train == "input":
        names = ["rnn.weight_ih", "rnn.bias_ih"]
    elif _instructed(model, instructed):
        head = getattr(model.encoder, "head", None)
        heads = [] if head is None else [f"encoder.head.{n}" for n, _ in head.named_parameters()]
        names = [n for n in named if n.startswith(("rnn.", "readout."))] + heads
    else:
        names = [n for n, p in named.items() if p.requires_grad]
    return [(n, named[n]) for n in names]


def _frame(rows: list[dict], strings: Sequence[str], ints: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(strings) + list(ints) + ["accuracy"])
    return df.astype({**{c: "string" for c in strings}, **{c: "int32" for c in ints},
                      "accuracy": "float64"})


def _accuracies(outputs: torch.Tensor, trials, scorings: Sequence[str]):
    """(scoring, accuracy of the batch) for each rule, from the same outputs."""
    correct = correct_by_scoring(outputs, trials, scorings)
    values = torch.stack([correct[s].float().mean() for s in scorings])
    return zip(scorings, values.tolist())


class _EvalMode:
    """Model on ``device`` in eval mode under no_grad; restores the train flag."""

    def __init__(self, model: nn.Module, device):
        self.model, self.device = model, device

    def __enter__(self):
        self.was_training = self.model.training
        self.model.to(self.device).eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        return self.model

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)
        return False


# --------------------------------------------------------------------------- protocols
def heldout_learning(
    model: SensorimotorModel,
    tasks: Sequence[str],
    pools: Mapping[str, TrialBatch],
    sentences: Mapping[str, torch.Tensor] | None,
    config: EvalConfig,
    seed: int,
    device: str | torch.device = "cpu",
    train: str = "default",
    instructed: bool | None = None,
    on_trained: Callable[[str, int, SensorimotorModel], None] | None = None,
) -> pd.DataFrame:
    """Learning curves on held-out tasks: DataFrame(task, repeat, batch, accuracy).

    ``sentences`` maps each task to its instruction rows (instructed models; ignored for
    rule models); ``instructed`` defaults to the model's encoder type. Every (task,
    repeat) starts from the trained weights; ``on_trained(task, repeat, model)`` is
    called with the learned copy after its last batch (it must copy what it keeps).
    """
    device = torch.device(device)
    instructed = _instructed(model, instructed)
    tasks = _check_inputs(tasks, pools, sentences, instructed)
    work = copy.deepcopy(model).to(device).eval()
    params = trained_parameters(work, instructed, train)
    trained_ids = {id(p) for _, p in params}
    for p in work.parameters():
        p.requires_grad_(id(p) in trained_ids)
    start = [p.detach().clone() for _, p in params]
    pools = {t: pools[t].to(device) for t in tasks}
    choices = {t: sentences[t].to(device) for t in tasks} if instructed else {}
    rows = []
    for task in tasks:
        for repeat in range(config.repeats):
            with torch.no_grad():
                for (_, p), p0 in zip(params, start):
                    p.copy_(p0)
            optimizer = torch.optim.Adam([p for _, p in params], lr=config.lr)
            rng, noise = _streams(seed, task, repeat, device)
            for batch in range(config.batches):
                trials, sentence_idx, r = draw_batch(
                    rng, noise, pools[task], choices.get(task), config.batch_size)
                vec = _task_vec(work, task, sentence_idx, config.batch_size, device)
                outputs, _ = work(r.inputs, vec)
                for scoring, accuracy in _accuracies(outputs.detach(), trials, config.scoring):
                    rows.append({"task": task, "scoring": scoring, "repeat": repeat,
                                 "batch": batch, "accuracy": accuracy})
                loss = masked_mse(outputs, r.targets, r.mask)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"held-out learning of {task} (repeat {repeat}) diverged at batch "
                        f"{batch}: loss {loss.item()}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if on_trained is not None:
                on_trained(task, repeat, work)
    return _frame(rows, ["task", "scoring"], ["repeat", "batch"])


def zero_shot(
    model: SensorimotorModel,
    tasks: Sequence[str],
    pools: Mapping[str, TrialBatch],
    sentences: Mapping[str, torch.Tensor] | None,
    config: EvalConfig,
    seed: int,
    device: str | torch.device = "cpu",
    task_vectors: Mapping[str, torch.Tensor] | None = None,
    instructed: bool | None = None,
) -> pd.DataFrame:
    """Accuracy without learning: DataFrame(task, repeat, accuracy), one batch of
    ``batch_size`` trials per repeat. ``sentences[task]`` are the rows to draw the
    instructions from; ``task_vectors[task]`` (a 64-d vector) replaces the encoder."""
    device = torch.device(device)
    instructed = _instructed(model, instructed)
    tasks = _check_inputs(tasks, pools, sentences, instructed, task_vectors)
    rows = []
    with _EvalMode(model, device):
        for task in tasks:
            pool = pools[task].to(device)
            choices = sentences[task].to(device) if instructed and task_vectors is None else None
            fixed = None if task_vectors is None else task_vectors[task]
            for repeat in range(config.repeats):
                rng, noise = _streams(seed, task, repeat, device)
                trials, sentence_idx, r = draw_batch(rng, noise, pool, choices, config.batch_size)
                vec = _task_vec(model, task, sentence_idx, config.batch_size, device, fixed)
                outputs, _ = model(r.inputs, vec)
                for scoring, accuracy in _accuracies(outputs, trials, config.scoring):
                    rows.append({"task": task, "scoring": scoring, "repeat": repeat,
                                 "accuracy": accuracy})
    return _frame(rows, ["task", "scoring"], ["repeat"])


def validation_instructions(
    model: SensorimotorModel,
    tasks: Sequence[str],
    pools: Mapping[str, TrialBatch],
    sentences_validation: Mapping[str, torch.Tensor],
    config: EvalConfig,
    seed: int,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Zero-shot accuracy with each task's validation-split instructions."""
    if not is_instructed(model):
        raise ValueError("the validation-instructions test needs an instructed model")
    return zero_shot(model, tasks, pools, sentences_validation, config, seed, device,
                     instructed=True)


def swapped_instructions(
    model: SensorimotorModel,
    holdout: str,
    custom: Mapping[str, list[str]] | None,
    pools: Mapping[str, TrialBatch],
    sentences: Mapping[str, torch.Tensor],
    config: EvalConfig,
    seed: int,
    device: str | torch.device = "cpu",
    instructed: bool | None = None,
) -> pd.DataFrame:
    """Each held-out task of ``holdout`` performed with the training-split instructions
    (``sentences``) of the next task in its group: DataFrame(task, instructions_of,
    repeat, accuracy). Same trials and noise as zero_shot with the same seed."""
    if not _instructed(model, instructed):
        raise ValueError("the swapped-instructions test needs an instructed model")
    tasks = list(held_out(holdout, custom))
    if not tasks:
        raise ValueError(f"holdout {holdout!r} holds out no task")
    source = {t: swapped_instruction_task(t, holdout, custom) for t in tasks}
    missing = sorted({s for s in source.values() if len(sentences.get(s, ())) == 0})
    if missing:
        raise ValueError(f"no training instructions for tasks: {', '.join(missing)}")
    swapped = {t: sentences[source[t]] for t in tasks}
    df = zero_shot(model, tasks, pools, swapped, config, seed, device, instructed=True)
    df.insert(1, "instructions_of", pd.array([source[t] for t in df["task"]], dtype="string"))
    return df


def reference_task_vector(model: SensorimotorModel, task: str,
                          sentences: Mapping[str, torch.Tensor] | None = None,
                          instructed: bool | None = None) -> torch.Tensor:
    """The model's 64-d task vector of ``task``: the rule model's vector, or the mean over
    the task's (training) instructions ``sentences[task]`` of their task vectors."""
    device = next(model.parameters()).device
    if _instructed(model, instructed):
        if sentences is None or len(sentences.get(task, ())) == 0:
            raise ValueError(f"no instructions for task {task!r}")
        rows = sentences[task].to(device)
        task_idx = torch.full((len(rows),), TASK_INDEX[task], dtype=torch.long, device=device)
        return model.task_vectors(task_idx, rows).mean(0)
    task_idx = torch.tensor([TASK_INDEX[task]], device=device)
    return model.task_vectors(task_idx)[0]


def combined_task_vector(model: SensorimotorModel, task: str,
                         sentences: Mapping[str, torch.Tensor] | None = None,
                         instructed: bool | None = None, trained: Sequence[str] | None = None):
    """``(refs, v)`` with refs = (A, B, C) = compositional_references(task, trained) and
    v = tv(A) − tv(B) + tv(C). ``trained`` (the model's training tasks) restricts the
    references to tasks the model learnt (instructnet.tasks.study); ValueError if no
    triple of them exists."""
    refs = compositional_references(task, among=trained)
    a, b, c = (reference_task_vector(model, x, sentences, instructed) for x in refs)
    return refs, a - b + c


def combined_vectors(
    model: SensorimotorModel,
    tasks: Sequence[str],
    pools: Mapping[str, TrialBatch],
    sentences: Mapping[str, torch.Tensor] | None,
    config: EvalConfig,
    seed: int,
    device: str | torch.device = "cpu",
    instructed: bool | None = None,
    trained: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Zero-shot accuracy with the compositional task vector tv(A) − tv(B) + tv(C):
    DataFrame(task, ref_a, ref_b, ref_c, repeat, accuracy). ``sentences`` (instructed
    models) are the training-split rows of the reference tasks; ``trained`` (the
    model's training tasks) restricts A, B, C to them (see combined_task_vector)."""
    device = torch.device(device)
    instructed = _instructed(model, instructed)
    refs, vectors = {}, {}
    with _EvalMode(model, device):
        for task in tasks:
            refs[task], vectors[task] = combined_task_vector(model, task, sentences, instructed,
                                                             trained)
    df = zero_shot(model, tasks, pools, None, config, seed, device, task_vectors=vectors,
                   instructed=instructed)
    for i, col in enumerate(("ref_a", "ref_b", "ref_c")):
        df.insert(1 + i, col, pd.array([refs[t][i] for t in df["task"]], dtype="string"))
    return df
