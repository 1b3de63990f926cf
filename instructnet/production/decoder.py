"""The Production-RNN (METHODS §7): sensorimotor hidden states → an instruction.

* Input: the hidden states (B, T, H_sm) of a trained instructed sensorimotor model on
  a batch of trials. Their time-mean and time-max, concatenated, pass through a linear
  map to the decoder's initial state.
* A one-layer GRU (``hidden`` units) with a ReLU candidate activation (same gate
  equations as the sensorimotor RNN, :mod:`instructnet.models.gru`), fed a learned
  word embedding of the previous token (dropout ``dropout``), read out by a linear
  layer and a softmax over the vocabulary (training words + <pad>, <sos>, <eos>).
* Training: cross-entropy on the instruction that drove the states, padding ignored;
  teacher forcing with probability 0.5·(E − epoch)/E per batch (else the decoder's own
  greedy tokens are fed back); Adam, lr × ``lr_decay`` per ``lr_decay_batches`` batches.
* Decoding: greedy, until ``<eos>`` or ``max_length`` tokens.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..models.io import load_file
from ..models.network import SensorimotorModel
from ..tasks import TrialBatch
from ..tasks.batches import draw_batch
from ..tasks.constants import TASK_INDEX
from ..training.loop import epoch_lr_factor, is_positive_int
from .vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecoderConfig:
    """Production-RNN size and training protocol (paper: 80 epochs × 2400 batches of
    64, lr 1e-4 × 0.99 per epoch, dropout 0.05, teacher forcing from 0.5). The rate
    falls by ``lr_decay`` per ``lr_decay_batches`` batches (the paper's epoch), applied
    after each epoch as ``lr_decay ** (batches_per_epoch / lr_decay_batches)``, so the
    rate after a given number of batches does not depend on the epoch size."""

    hidden: int = 256
    epochs: int = 80
    batches_per_epoch: int = 2400
    batch_size: int = 64
    lr: float = 1e-4
    lr_decay: float = 0.99
    lr_decay_batches: int = 2400
    dropout: float = 0.05
    teacher_forcing: float = 0.5
    max_length: int = 40

    def __post_init__(self):
        for name in ("hidden", "epochs", "batches_per_epoch", "batch_size", "max_length",
                     "lr_decay_batches"):
            if not is_positive_int(getattr(self, name)):
                raise ValueError(f"production.decoder.{name} must be a positive integer, "
                                 f"got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"production.decoder.lr must be positive, got {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"production.decoder.lr_decay must be in (0, 1], got {self.lr_decay!r}")
        for name in ("dropout", "teacher_forcing"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"production.decoder.{name} must be in [0, 1], "
                                 f"got {getattr(self, name)!r}")

    @property
    def epoch_lr_factor(self) -> float:
        """The learning-rate factor applied after each epoch."""
        return epoch_lr_factor(self.lr_decay, self.batches_per_epoch, self.lr_decay_batches)

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> DecoderConfig:
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown production.decoder settings: {', '.join(unknown)}")
        return cls(**values)


def teacher_forcing_ratio(epoch: int, epochs: int, start: float = 0.5) -> float:
    """Probability of teacher forcing in ``epoch`` (0-based) of ``epochs``:
    start·(E − epoch)/E — 0.5 in the first epoch, falling linearly to 0.5/E."""
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} outside 0..{epochs - 1}")
    return start * (epochs - epoch) / epochs


class ReluGRUCell(nn.Module):
    """One step of a GRU whose candidate activation is ReLU (PyTorch gate order r, z, n)."""

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.hidden_size = hidden
        self.ih = nn.Linear(input_size, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xr, xz, xn = self.ih(x).chunk(3, dim=-1)
        hr, hz, hn = self.hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.relu(xn + r * hn)
        return (1 - z) * n + z * h


def state_features(hidden: torch.Tensor) -> torch.Tensor:
    """(B, T, H) sensorimotor states → (B, 2H): time-mean and time-max, concatenated."""
    return torch.cat([hidden.mean(1), hidden.amax(1)], dim=-1)


class ProductionRNN(nn.Module):
    def __init__(self, vocab_size: int, sm_hidden: int = 256, hidden: int = 256,
                 dropout: float = 0.05):
        super().__init__()
        self.vocab_size = vocab_size
        self.init_map = nn.Linear(2 * sm_hidden, hidden)
        self.embedding = nn.Embedding(vocab_size, hidden, padding_idx=Vocabulary.pad)
        self.dropout = nn.Dropout(dropout)
        self.cell = ReluGRUCell(hidden, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def initial_state(self, sm_hidden: torch.Tensor) -> torch.Tensor:
        return self.init_map(state_features(sm_hidden))

    def step(self, token: torch.Tensor, h: torch.Tensor):
        """One step: previous tokens (B,) and state → (logits (B, V), new state)."""
        h = self.cell(self.dropout(self.embedding(token)), h)
        return self.out(h), h

    def forward(self, sm_hidden: torch.Tensor, targets: torch.Tensor,
                teacher_forcing: bool = True) -> torch.Tensor:
        """Logits (B, L, V) for target sequences (B, L) (ids then <eos>, <pad>-padded).
        Step 0 reads <sos>; step t > 0 reads target t − 1 (teacher forcing) or the
        decoder's own greedy token of step t − 1."""
        h = self.initial_state(sm_hidden)
        token = torch.full((len(targets),), Vocabulary.sos, dtype=torch.long, device=h.device)
        logits = []
        for t in range(targets.shape[1]):
            step_logits, h = self.step(token, h)
            logits.append(step_logits)
            token = targets[:, t] if teacher_forcing else step_logits.argmax(-1).detach()
        return torch.stack(logits, 1)

    @torch.no_grad()
    def greedy(self, sm_hidden: torch.Tensor, max_length: int) -> torch.Tensor:
        """Greedy decoding: (B, ≤ max_length) token ids; each row ends at its first
        <eos> (included) and is <pad>-filled after it; decoding stops as soon as every
        row has ended or after ``max_length`` tokens."""
        h = self.initial_state(sm_hidden)
        batch = len(h)
        token = torch.full((batch,), Vocabulary.sos, dtype=torch.long, device=h.device)
        done = torch.zeros(batch, dtype=torch.bool, device=h.device)
        out = []
        for _ in range(max_length):
            logits, h = self.step(token, h)
            token = logits.argmax(-1)
            out.append(torch.where(done, torch.full_like(token, Vocabulary.pad), token))
            done = done | (token == Vocabulary.eos)
            if bool(done.all()):
                break
        return torch.stack(out, 1)


def _pad(ids: Sequence[Sequence[int]]) -> torch.Tensor:
    out = torch.full((len(ids), max(map(len, ids))), Vocabulary.pad, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.as_tensor(row)
    return out


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the non-padding target tokens (padding ignored)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=Vocabulary.pad)


@dataclass
class DecoderData:
    """What decoder training reads: the instructor's training tasks, their trial pools,
    each task's instruction rows (embedding-table indices) and all sentence texts."""

    tasks: Sequence[str]
    pools: Mapping[str, TrialBatch]
    sentences: Mapping[str, torch.Tensor]
    texts: Sequence[str]


def decoder_vocabulary(texts: Sequence[str], sentences: Mapping[str, torch.Tensor]) -> Vocabulary:
    """The vocabulary of the training instructions the decoder learns from."""
    return Vocabulary.from_sentences(texts[int(i)] for rows in sentences.values() for i in rows)


def train_decoder(
    instructor: SensorimotorModel,
    data: DecoderData,
    config: DecoderConfig,
    seed: int,
    noise_seed: int,
    device: str | torch.device = "cpu",
    progress=None,
) -> tuple[ProductionRNN, Vocabulary, pd.DataFrame]:
    """Train a Production-RNN on the frozen ``instructor``'s hidden states.

    Each batch holds ``batch_size`` trials of one training task (tasks interleaved at
    random), each with one of the task's training instructions; the instructor
    performs them with those instructions and the decoder learns to emit the
    instruction from the states. Returns (decoder, vocabulary, log with one row per
    epoch: epoch, teacher_forcing, lr, loss, token_accuracy, seconds).
    """
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    noise = torch.Generator(device=device).manual_seed(noise_seed)
    vocab = decoder_vocabulary(data.texts, data.sentences)
    encoded = {int(i): vocab.encode(data.texts[int(i)])
               for rows in data.sentences.values() for i in rows}
    instructor = instructor.to(device).eval()
    for p in instructor.parameters():
        p.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed % 2**63)
        decoder = ProductionRNN(len(vocab), instructor.rnn.hidden_size, config.hidden,
                                config.dropout).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.epoch_lr_factor)
    pools = {t: data.pools[t].to(device) for t in data.tasks}
    choices = {t: data.sentences[t].to(device) for t in data.tasks}
    rows = []
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator
        torch.manual_seed(seed % 2**63 + 1)
        for epoch in range(config.epochs):
            ratio = teacher_forcing_ratio(epoch, config.epochs, config.teacher_forcing)
            schedule = rng.integers(0, len(data.tasks), config.batches_per_epoch)
            decoder.train()
            start, losses, hits, counts = time.perf_counter(), [], 0, 0
            for b, k in enumerate(schedule):
                task = data.tasks[int(k)]
                _, sentence_idx, r = draw_batch(rng, noise, pools[task], choices[task],
                                                config.batch_size)
                forcing = bool(rng.random() < ratio)
                with torch.no_grad():
                    task_idx = torch.full((config.batch_size,), TASK_INDEX[task], device=device)
                    _, hidden = instructor(r.inputs, instructor.task_vectors(task_idx, sentence_idx))
                targets = _pad([encoded[int(i)] for i in sentence_idx.cpu()]).to(device)
                logits = decoder(hidden, targets, teacher_forcing=forcing)
                loss = sequence_loss(logits, targets)
                if not torch.isfinite(loss):
                    raise RuntimeError(f"decoder training diverged at epoch {epoch + 1}, batch {b}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                real = targets != vocab.pad
                hits += int(((logits.argmax(-1) == targets) & real).sum())
                counts += int(real.sum())
                if progress is not None:
                    progress(epoch, b, loss.item())
            rows.append({"epoch": epoch + 1, "teacher_forcing": ratio,
                         "lr": optimizer.param_groups[0]["lr"], "loss": float(np.mean(losses)),
                         "token_accuracy": hits / max(counts, 1),
                         "seconds": time.perf_counter() - start})
            log.info("decoder epoch %d/%d: loss %.4f, token accuracy %.3f, teacher forcing %.3f",
                     epoch + 1, config.epochs, rows[-1]["loss"], rows[-1]["token_accuracy"], ratio)
            scheduler.step()
    table = pd.DataFrame(rows).astype({"epoch": "int32"})
    return decoder.cpu().eval(), vocab, table


def save_decoder(decoder: ProductionRNN, vocab: Vocabulary, config: DecoderConfig, path, **meta):
    torch.save({"state_dict": decoder.state_dict(), "vocabulary": vocab.itos,
                "config": asdict(config), "sm_hidden": decoder.init_map.in_features // 2,
                **meta}, path)


def load_decoder(path, device="cpu") -> tuple[ProductionRNN, Vocabulary, dict]:
    saved = load_file(path)  # weights_only: reading a decoder file runs no code
    vocab = Vocabulary([])
    vocab.itos = list(saved["vocabulary"])
    vocab.stoi = {t: i for i, t in enumerate(vocab.itos)}
    config = DecoderConfig(**saved["config"])
    decoder = ProductionRNN(len(vocab), saved["sm_hidden"], config.hidden, config.dropout)
    decoder.load_state_dict(saved["state_dict"])
    return decoder.to(device).eval(), vocab, saved
