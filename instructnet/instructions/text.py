"""Text helpers shared by the corpus checks and the bag-of-words model.

``words`` is the one tokenisation used everywhere a sentence is split into words
(vocabulary counts, BOWNET vectors), so the two always agree.
"""

from __future__ import annotations

import re

import pandas as pd

_PUNCTUATION = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]+")

# A conditional instruction has a condition clause and says what to do when the
# condition fails.
_CONDITION = re.compile(r"\b(?:if|when|whenever|in case)\b")
_ALTERNATIVE = re.compile(
    r"\b(?:otherwise|else|if not|in (?:any|every|all) other cases?)\b"
)


def normalise(text: str) -> str:
    """Lowercase ``text``, turn punctuation into spaces and collapse whitespace.

    Two sentences that differ only in case, punctuation or spacing normalise to the
    same string; the corpus checks use this to find duplicates.
    """
    return _SPACE.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def words(text: str) -> list[str]:
    """The lowercase alphabetic tokens of ``text`` in order (digits and punctuation
    separate tokens and are dropped)."""
    return _WORD.findall(text.lower())


def is_conditional(text: str) -> bool:
    """Whether ``text`` has an "if/when/whenever/in case" clause together with an
    alternative ("otherwise", "else", "if not", "in any other case", ...)."""
    norm = normalise(text)
    return bool(_CONDITION.search(norm) and _ALTERNATIVE.search(norm))


def vocabulary(corpus: pd.DataFrame) -> pd.DataFrame:
    """Word statistics of a corpus table (as returned by ``load_corpus``).

    Columns: ``word``; ``count`` (occurrences over all sentences); ``n_tasks``
    (tasks with at least one sentence containing the word); ``n_sentences``
    (sentences containing it). Rows are sorted by word.
    """
    rows = [
        (word, task, sentence)
        for sentence, (task, text) in enumerate(zip(corpus["task"], corpus["text"]))
        for word in words(text)
    ]
    tokens = pd.DataFrame(rows, columns=["word", "task", "sentence"])
    table = tokens.groupby("word", sort=True).agg(
        count=("sentence", "size"),
        n_tasks=("task", "nunique"),
        n_sentences=("sentence", "nunique"),
    )
    return table.reset_index().astype(
        {"word": "string", "count": "int64", "n_tasks": "int64", "n_sentences": "int64"}
    )
