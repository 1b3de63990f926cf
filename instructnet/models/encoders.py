"""Task-information encoders: what tells the sensorimotor RNN which task to perform.

Every encoder maps a batch of (task index, instruction row) pairs to a 64-d task
vector that is fed to the RNN at every step (METHODS §5):

* ``simplenet``: a fixed random orthonormal vector per task.
* ``structurenet``: the task's structure vector (§2) on ten fixed orthonormal axes.
* ``simplenetplus`` / ``structurenetplus``: the same, through a trainable ReLU MLP
  64 → 128 → 128 → 64.
* instructed models: the cached embedding of the instruction sentence (a frozen
  language model or a bag of words), through a trainable Linear(d → 64), or the MLP
  d → 256 → 256 → 64 for ``…_mlp`` variants.

The fixed random matrices derive from a torch.Generator, so they are reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..tasks.constants import STRUCTURE, TASKS
from .spec import EMBEDDING_NORMS

TASK_DIM = 64


def random_orthonormal(rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """``rows`` orthonormal vectors of length ``dim`` (rows ≤ dim), seeded."""
    if rows > dim:
        raise ValueError(f"cannot draw {rows} orthonormal vectors in {dim} dimensions")
    gauss = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)
    q = q * torch.sign(torch.diagonal(r))  # unique, uniformly distributed
    return q[:, :rows].T.contiguous().float()


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RuleEncoder(nn.Module):
    """SIMPLENET / STRUCTURENET (and their PLUS variants): rule vectors per task."""

    def __init__(self, kind: str, generator: torch.Generator, plus: bool = False):
        super().__init__()
        if kind == "simple":
            rules = random_orthonormal(len(TASKS), TASK_DIM, generator)
        elif kind == "structure":
            axes = random_orthonormal(10, TASK_DIM, generator)
            structure = torch.tensor([STRUCTURE[t] for t in TASKS], dtype=torch.float32)
            rules = structure @ axes
        else:
            raise ValueError(f"unknown rule encoder {kind!r}")
        self.register_buffer("rules", rules)  # (50, 64), fixed
        self.head = mlp([TASK_DIM, 128, 128, TASK_DIM]) if plus else None

    def rule_vectors(self, task_idx: torch.Tensor) -> torch.Tensor:
        return self.rules[task_idx]

    def forward(self, task_idx: torch.Tensor, sentence_idx: torch.Tensor | None = None):
        v = self.rules[task_idx]
        return v if self.head is None else self.head(v)


def whitening_matrix(rows: torch.Tensor) -> torch.Tensor:
    """The symmetric (ZCA) whitening matrix ``C^(-1/2)`` (float64, d × d) of ``rows``
    (N, d), with ``C`` their Ledoit–Wolf shrunk covariance (sklearn): well defined when
    there are fewer rows than dimensions (a corpus's training sentences), with no
    setting to choose. Centred rows times it have covariance close to the identity.
    Fewer than two rows: the identity."""
    d = rows.shape[1]
    if len(rows) < 2:
        return torch.eye(d, dtype=torch.float64)
    from sklearn.covariance import ledoit_wolf

    cov, _ = ledoit_wolf(rows.double().cpu().numpy())
    values, vectors = np.linalg.eigh(cov)
    return torch.from_numpy((vectors / np.sqrt(values)) @ vectors.T)


class InstructionEncoder(nn.Module):
    """Instructed models: cached sentence embeddings → trainable map to 64 dims.

    ``norm="zscore"`` standardises every embedding dimension with fixed statistics
    (mean and SD over ``norm_rows``, the training sentences of the training tasks)
    before the map. A fixed affine map followed by a Linear is still a Linear of the
    embedding, so the model class is the paper's; only the optimisation is better
    conditioned (frozen sentence embeddings share a large common component; see
    docs/design_experiments.md). ``norm="whiten"`` also decorrelates the dimensions:
    the centred embedding times the inverse square root of the Ledoit–Wolf shrunk
    covariance of the same rows (:func:`whitening_matrix`), again a fixed affine map.
    ``norm="none"`` is the paper's parameterisation.
    """

    def __init__(self, embeddings: torch.Tensor, head: str = "linear", norm: str = "none",
                 norm_rows: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("embeddings", embeddings.float())  # (sentences, d), frozen
        d = embeddings.shape[1]
        if head == "linear":
            self.head = nn.Linear(d, TASK_DIM)
        elif head == "mlp":
            self.head = mlp([d, 256, 256, TASK_DIM])
        else:
            raise ValueError(f"unknown instruction head {head!r}; expected linear or mlp")
        if norm not in EMBEDDING_NORMS:
            raise ValueError(f"unknown embedding norm {norm!r}; expected one of "
                             f"{', '.join(EMBEDDING_NORMS)}")
        self.norm = norm
        if norm != "none":
            ref = self.embeddings if norm_rows is None else self.embeddings[norm_rows]
            # statistics in float64; loading a saved model overwrites them with the saved ones
            mean = ref.double().mean(0)
            self.register_buffer("shift", mean.float())
            if norm == "zscore":
                sd = ref.double().std(0) if len(ref) > 1 else torch.ones_like(mean)
                self.register_buffer("scale", sd.clamp_min(1e-6).float())
            else:
                self.register_buffer("whitener", whitening_matrix(ref).float())

    def map(self, vectors: torch.Tensor) -> torch.Tensor:
        """The trainable map applied to sentence embeddings (N, d) → (N, 64), including
        the fixed standardisation when there is one (partners and tuned models use it)."""
        if self.norm == "zscore":
            vectors = (vectors - self.shift) / self.scale
        elif self.norm == "whiten":
            vectors = (vectors - self.shift) @ self.whitener
        return self.head(vectors)

    def forward(self, task_idx: torch.Tensor, sentence_idx: torch.Tensor):
        if sentence_idx is None:
            raise ValueError("an instructed model needs instruction sentences")
        return self.map(self.embeddings[sentence_idx])


def transformer_blocks(network: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of a Hugging Face model (BERT ``encoder.layer``,
    GPT-2 ``h``, CLIP ``text_model.encoder.layers``, ...): the ModuleList whose length
    is the config's number of hidden layers."""
    n = network.config.num_hidden_layers
    for _, module in network.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"cannot find the {n} transformer blocks of {type(network).__name__}")


class TunedInstructionEncoder(nn.Module):
    """An instructed model's encoder with its language model in the loop: the last
    ``blocks`` transformer blocks are trainable, the rest stays frozen; sentences are
    tokenised once and pooled as in the embedding cache (METHODS §6, tuned variant)."""

    def __init__(self, tokenizer, network: nn.Module, pooling: str, texts: list[str],
                 cached: InstructionEncoder, blocks: int = 3):
        super().__init__()
        self.network = network
        self.pooling = pooling
        self.head = cached.head
        self.norm = cached.norm
        for name in ("shift", "scale", "whitener"):  # the fixed standardisation, if any
            if hasattr(cached, name):
                self.register_buffer(name, getattr(cached, name).clone())
        network.requires_grad_(False)
        stack = transformer_blocks(network)
        if not 0 < blocks <= len(stack):
            raise ValueError(f"cannot tune {blocks} of {len(stack)} transformer blocks")
        self.tuned_blocks = stack[-blocks:]
        self.tuned_blocks.requires_grad_(True)
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        self.register_buffer("input_ids", batch["input_ids"], persistent=False)
        self.register_buffer("attention_mask", batch["attention_mask"], persistent=False)

    def language_parameters(self):
        return list(self.tuned_blocks.parameters())

    def train(self, mode: bool = True):
        """The language model stays in eval mode (no dropout) while the rest trains."""
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, task_idx: torch.Tensor, sentence_idx: torch.Tensor):
        from ..embeddings.pooling import pool

        if sentence_idx is None:
            raise ValueError("an instructed model needs instruction sentences")
        mask = self.attention_mask[sentence_idx]
        length = int(mask.sum(1).max())  # right padding: drop columns nobody uses
        mask = mask[:, :length]
        out = self.network(input_ids=self.input_ids[sentence_idx, :length], attention_mask=mask)
        vec = pool(out.last_hidden_state, mask, self.pooling, getattr(out, "pooler_output", None))
        return self.map(vec)

    map = InstructionEncoder.map
