"""The Production-RNN's vocabulary: tokens of the training instructions plus the
special tokens ``<pad>``, ``<sos>`` (start) and ``<eos>`` (end) (METHODS §7).

Tokens are the lowercase words of :func:`instructnet.instructions.words` and the
punctuation marks between them, so that :meth:`Vocabulary.detokenise` turns a token
sequence back into the sentence it came from (capitals at the start and after a full
stop or question mark, no space before punctuation): a produced sentence that equals a
corpus sentence is then that sentence's exact text, and re-embedding it with the
corpus pipeline gives the cached embedding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

PAD, SOS, EOS = "<pad>", "<sos>", "<eos>"
SPECIALS = (PAD, SOS, EOS)
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")
_SENTENCE_END = {".", "?", "!"}


def tokenise(text: str) -> list[str]:
    """Lowercase words (and numbers) and single punctuation marks of ``text``, in order."""
    return _TOKEN.findall(str(text).lower())


def detokenise(tokens: Sequence[str]) -> str:
    """Tokens → a sentence: punctuation attaches to the preceding word, the first word
    and every word after a full stop or question mark is capitalised."""
    out: list[str] = []
    capital = True
    for token in tokens:
        if token in SPECIALS:
            continue
        if token.isalnum():
            word = token[:1].upper() + token[1:] if capital else token
            out.append((" " if out else "") + word)
            capital = False
        else:
            out.append(token)
            capital = token in _SENTENCE_END
    return "".join(out)


class Vocabulary:
    """Token ↔ index. Index 0 is ``<pad>``, 1 ``<sos>``, 2 ``<eos>``, then the sorted
    tokens of the sentences the vocabulary was built from."""

    def __init__(self, tokens: Iterable[str]):
        words = sorted(set(tokens) - set(SPECIALS))
        self.itos: list[str] = [*SPECIALS, *words]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    pad, sos, eos = 0, 1, 2

    @classmethod
    def from_sentences(cls, texts: Iterable[str]) -> Vocabulary:
        return cls(t for text in texts for t in tokenise(text))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` followed by ``<eos>``; unknown tokens are an error."""
        tokens = tokenise(text)
        unknown = [t for t in tokens if t not in self.stoi]
        if unknown:
            raise KeyError(f"tokens not in the vocabulary: {', '.join(sorted(set(unknown)))} "
                           f"(sentence {text!r})")
        return [self.stoi[t] for t in tokens] + [self.eos]

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, L) long tensor: each sentence's ids and ``<eos>``, right-padded with
        ``<pad>`` to the longest."""
        ids = [self.encode(t) for t in texts]
        out = torch.full((len(ids), max(map(len, ids), default=1)), self.pad, dtype=torch.long)
        for i, row in enumerate(ids):
            out[i, : len(row)] = torch.tensor(row)
        return out

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` up to (not including) the first ``<eos>``; pads dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i not in (self.pad, self.sos):
                out.append(self.itos[i])
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return detokenise(self.tokens(ids))
