"""Embedding the instruction corpus with a frozen language model (METHODS §5).

The language model is frozen in the main experiments, so each sentence's embedding
is computed once per model and cached (see :mod:`.cache`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..instructions import vocabulary, words
from .lm import load
from .pooling import masked_mean, pool
from .registry import LanguageModel


def embed_corpus(
    model: LanguageModel,
    corpus_df: pd.DataFrame,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    loaded: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed every sentence (column ``text``) of ``corpus_df``.

    Returns ``(pooled, layers)`` in the row order of ``corpus_df``: ``pooled`` is a
    float32 array (N, d) pooled by ``model.pooling``; ``layers`` is a float32 array
    (L, N, d_layer) holding the mask-aware token mean of each kept hidden state
    (``model.layers``; 0 = embedding output). For ``kind: bow`` ``pooled`` is the
    binary bag of words over the vocabulary of ``corpus_df`` and L = 0.

    ``loaded`` is an already loaded ``(tokenizer, network)`` from :func:`.lm.load`
    (otherwise the model is loaded onto ``device``); inputs go to the network's device.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    texts = [str(t) for t in corpus_df["text"]]
    if model.kind == "bow":
        return bag_of_words(corpus_df), np.zeros((0, len(texts), 0), np.float32)
    if not texts:
        raise ValueError(f"no sentences to embed with language model {model.name!r}")
    tokenizer, network = loaded if loaded is not None else load(model, device)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    pooled = layers = None
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, return_tensors="pt"
            ).to(network.device)
            out = network(**batch, output_hidden_states=True)
            if model.pooling == "pooler" and getattr(out, "pooler_output", None) is None:
                raise ValueError(
                    f"language model {model.name!r}: {type(network).__name__} has no "
                    "pooler output; use pooling 'mean' or 'last'"
                )
            vectors = pool(
                out.last_hidden_state,
                batch["attention_mask"],
                model.pooling,
                getattr(out, "pooler_output", None),
            )
            if pooled is None:
                layer_ids = kept_layer_ids(model, network)
                if max(layer_ids) >= len(out.hidden_states):
                    raise ValueError(
                        f"language model {model.name!r} returned {len(out.hidden_states)} "
                        f"hidden states, fewer than its config's layers + 1"
                    )
                pooled = np.empty((len(texts), vectors.shape[-1]), np.float32)
                layers = np.empty(
                    (len(layer_ids), len(texts), out.hidden_states[0].shape[-1]), np.float32
                )
            pooled[rows] = vectors.float().cpu().numpy()
            for k, i in enumerate(layer_ids):
                means = masked_mean(out.hidden_states[i], batch["attention_mask"])
                layers[k, rows] = means.float().cpu().numpy()
    return pooled, layers


def kept_layer_ids(model: LanguageModel, network) -> list[int]:
    """Hidden-state indices whose sentence means :func:`embed_corpus` keeps (0 =
    embedding output, then one per transformer block)."""
    if model.kind == "bow":
        return []
    return model.layer_ids(network.config.num_hidden_layers + 1)


def bag_of_words(corpus_df: pd.DataFrame) -> np.ndarray:
    """Binary bag-of-words vectors (N, V) over the sorted vocabulary of ``corpus_df``:
    entry (n, v) is 1 when word v occurs in sentence n (BOWNET)."""
    vocab = {w: j for j, w in enumerate(vocabulary(corpus_df)["word"])}
    vectors = np.zeros((len(corpus_df), len(vocab)), np.float32)
    for n, text in enumerate(corpus_df["text"]):
        vectors[n, [vocab[w] for w in set(words(str(text)))]] = 1.0
    return vectors
