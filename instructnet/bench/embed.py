"""Embedding throughput: the whole shipped corpus with the offline default model on CPU."""

from __future__ import annotations

import time

import torch

from ..embeddings import BUILTIN_MODELS, DEFAULT_MODEL, embed_corpus, load
from ..instructions import load_corpus

TARGET_SECONDS = 30.0


def run(batch_size: int = 64) -> dict:
    """Time embedding the 1000 shipped sentences with ``sbertnet_minilm`` on CPU,
    model loading excluded (reported separately)."""
    model = BUILTIN_MODELS[DEFAULT_MODEL]
    corpus = load_corpus()
    t0 = time.perf_counter()
    loaded = load(model, "cpu")
    load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    pooled, layers = embed_corpus(model, corpus, batch_size=batch_size, loaded=loaded)
    seconds = time.perf_counter() - t0
    return {
        "benchmark": "embed",
        "model": model.name,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "sentences": len(corpus),
        "dim": int(pooled.shape[1]),
        "layers": int(layers.shape[0]),
        "load_seconds": round(load_seconds, 3),
        "seconds": round(seconds, 3),
        "sentences_per_s": round(len(corpus) / seconds, 1),
        "target_seconds": TARGET_SECONDS,
        "meets_target": seconds <= TARGET_SECONDS,
    }
