"""Instructions: the natural-language corpus of METHODS §4 and its text helpers."""

from .corpus import SPLITS, CorpusError, load_corpus, schema, shipped_path
from .text import is_conditional, normalise, vocabulary, words

__all__ = [
    "SPLITS", "CorpusError", "load_corpus", "schema", "shipped_path", "is_conditional",
    "normalise", "vocabulary", "words",
]
