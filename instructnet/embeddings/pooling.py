"""Pooling a sequence of token states into one vector per sentence.

All functions are differentiable, so the tuned models (METHODS §6) reuse them with
gradients. Padding never enters a result: a sentence's vector does not depend on
the other sentences of its batch.
"""

from __future__ import annotations

import torch

from .registry import POOLINGS


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (batch, tokens, d) over the tokens where ``attention_mask``
    (batch, tokens) is 1."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The state of each sentence's last non-padding token (works for left or right
    padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (positions * (attention_mask > 0)).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    method: str,
    pooler_output: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pool token states (batch, tokens, d) to (batch, d) by ``method``.

    ``mean``: mask-aware mean; ``last``: last non-padding token; ``pooler``: the
    model's own ``pooler_output`` (batch, d), which must be given.
    """
    if method == "mean":
        return masked_mean(hidden, attention_mask)
    if method == "last":
        return last_token(hidden, attention_mask)
    if method == "pooler":
        if pooler_output is None:
            raise ValueError("pooling 'pooler' needs the model's pooler_output")
        return pooler_output
    raise ValueError(f"unknown pooling {method!r}; expected one of {', '.join(POOLINGS)}")
