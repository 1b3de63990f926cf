"""The sensorimotor network: task encoder → ReLU GRU (256) → sigmoid readout (33)."""

from __future__ import annotations

import torch
from torch import nn

from ..tasks.constants import N_INPUTS, N_OUTPUTS
from .encoders import TASK_DIM, InstructionEncoder, RuleEncoder
from .gru import ReluGRU
from .spec import ModelSpec


class SensorimotorModel(nn.Module):
    """Inputs (B, T, 65) plus a 64-d task vector per trial → outputs (B, T, 33).

    The task vector is concatenated to the sensory input at every step (the RNN
    projects it once per trial); the readout is ``sigmoid(Linear(hidden → 33))``.
    """

    def __init__(self, encoder: nn.Module, hidden: int = 256):
        super().__init__()
        self.encoder = encoder
        self.rnn = ReluGRU(N_INPUTS, hidden, const_size=TASK_DIM)
        self.readout = nn.Linear(hidden, N_OUTPUTS)

    def task_vectors(self, task_idx: torch.Tensor, sentence_idx: torch.Tensor | None = None):
        """64-d task vectors for tasks (rule models) or instruction sentences."""
        return self.encoder(task_idx, sentence_idx)

    def forward(self, inputs: torch.Tensor, task_vec: torch.Tensor):
        hidden = self.rnn(inputs, const=task_vec)
        return torch.sigmoid(self.readout(hidden)), hidden

    def sensorimotor_parameters(self):
        """RNN and readout parameters (what held-out learning of instructed models updates,
        together with the encoder's trainable map)."""
        return list(self.rnn.parameters()) + list(self.readout.parameters())


def build_model(
    spec: ModelSpec, seed: int, embeddings: torch.Tensor | None = None, hidden: int = 256,
    norm_rows=None,
) -> SensorimotorModel:
    """A freshly initialised model; every random draw (fixed rule matrices, weights)
    comes from ``seed``, so the same seed builds the same bytes. ``norm_rows``: the
    embedding rows whose statistics standardise an instructed model's input when
    ``spec.embedding_norm == "zscore"`` (its training sentences; default all rows)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.instructed:
            if embeddings is None:
                raise ValueError(f"model {spec.name!r} needs the {spec.lm} embeddings")
            if norm_rows is not None and not isinstance(norm_rows, torch.Tensor):
                norm_rows = torch.as_tensor(sorted({int(i) for rows in norm_rows for i in rows}))
            encoder = InstructionEncoder(embeddings, spec.head, spec.embedding_norm, norm_rows)
        else:
            gen = torch.Generator().manual_seed(seed)
            encoder = RuleEncoder(spec.rule, gen, plus=spec.plus)
        model = SensorimotorModel(encoder, hidden)
        model.rnn.reset_parameters()
    return model


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of mask · (outputs − targets)² over trials, steps and units (METHODS §6)."""
    return (mask * (outputs - targets).square()).mean()
