"""Embeddings: frozen language-model (and bag-of-words) embeddings of the instructions."""

from .cache import (
    EmbeddingCacheError,
    instruction_rows,
    read_embeddings,
    read_layers,
    write_embeddings,
    write_layers,
)
from .embed import bag_of_words, embed_corpus, kept_layer_ids
from .lm import LanguageModelUnavailable, load, prefetch, resolve_source
from .pooling import last_token, masked_mean, pool
from .registry import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    KINDS,
    PAPER_MODELS,
    POOLINGS,
    LanguageModel,
    ModelConfigError,
    language_models,
)

__all__ = [
    "EmbeddingCacheError", "instruction_rows", "read_embeddings", "read_layers", "write_embeddings",
    "write_layers", "bag_of_words", "embed_corpus", "kept_layer_ids", "LanguageModelUnavailable", "load",
    "prefetch", "resolve_source", "last_token", "masked_mean", "pool", "BUILTIN_MODELS",
    "DEFAULT_MODEL", "KINDS", "PAPER_MODELS", "POOLINGS", "LanguageModel",
    "ModelConfigError", "language_models",
]
