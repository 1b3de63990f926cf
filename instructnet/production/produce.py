"""Producing instructions from inferred task vectors, labelling them, and
re-embedding them for partner models (METHODS §7).

* :func:`produce_instructions`: the instructor performs trials of a task driven by
  its motor-feedback vectors; the Production-RNN decodes one instruction (greedy) from
  each trial's hidden states.
* :func:`label_sentences`: each produced sentence is either an exact training
  sentence (which task, which sentence) or novel; a novel sentence that happens to be
  a validation sentence is marked as such too.
* :func:`confusion_matrix`: produced task × (the training-sentence set it came from |
  novel), as fractions of each task's sentences.
* :func:`embed_sentences`: a produced sentence goes through the very pipeline the
  corpus went through (:func:`instructnet.embeddings.embed_corpus`: same tokenizer,
  network and pooling; bag of words over the corpus vocabulary), so a partner model
  hears it as it would hear a corpus sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..embeddings import LanguageModel, embed_corpus
from ..instructions import normalise, vocabulary, words
from ..models.network import SensorimotorModel
from ..tasks import TASKS, TrialBatch
from ..tasks.batches import draw_batch
from ..tasks.constants import check_tasks
from .decoder import ProductionRNN
from .vocab import Vocabulary

NOVEL = "novel"


def produce_instructions(
    instructor: SensorimotorModel,
    decoder: ProductionRNN,
    vocab: Vocabulary,
    task: str,
    vectors: torch.Tensor,
    pool: TrialBatch,
    n: int,
    seed: int,
    noise_seed: int,
    max_length: int,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """``n`` instructions for ``task``: sentence i is decoded from the instructor's
    hidden states on one trial (drawn from ``pool``, fresh noise) driven by vector
    ``i mod len(vectors)``. Returns task, index, vector, text, tokens."""
    (task,) = check_tasks([task])
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    noise = torch.Generator(device=device).manual_seed(noise_seed)
    owner = torch.arange(n) % len(vectors)
    instructor.to(device).eval()
    decoder.to(device).eval()
    with torch.no_grad():
        _, _, r = draw_batch(rng, noise, pool.to(device), None, n)
        _, hidden = instructor(r.inputs, vectors.to(device)[owner.to(device)])
        ids = decoder.greedy(hidden, max_length).cpu()
    tokens = [vocab.tokens(row) for row in ids]
    return pd.DataFrame({
        "task": pd.array([task] * n, dtype="string"),
        "index": np.arange(n, dtype=np.int32),
        "vector": owner.numpy().astype(np.int32),
        "text": pd.array([vocab.decode(row) for row in ids], dtype="string"),
        "n_tokens": np.array([len(t) for t in tokens], np.int32),
    })


def label_sentences(produced: pd.DataFrame, corpus: pd.DataFrame) -> pd.DataFrame:
    """Add ``match_task``, ``match_sentence_id`` (the training sentence a produced
    sentence equals, compared after :func:`normalise`; null if none), ``novel`` (no
    training sentence matches) and ``validation_match`` (a novel sentence that equals a
    validation sentence)."""
    key = {split: {normalise(str(t)): (str(task), int(i))
                   for task, i, t in zip(rows["task"], rows["sentence_id"], rows["text"])}
           for split, rows in corpus.groupby("split")}
    train = key.get("train", {})
    validation = key.get("validation", {})
    norm = [normalise(str(t)) for t in produced["text"]]
    hits = [train.get(s) for s in norm]
    out = produced.copy()
    out["match_task"] = pd.array([h[0] if h else None for h in hits], dtype="string")
    out["match_sentence_id"] = pd.array([h[1] if h else None for h in hits], dtype="Int32")
    out["novel"] = np.array([h is None for h in hits])
    out["validation_match"] = np.array([h is None and s in validation for h, s in zip(hits, norm)])
    return out


def confusion_matrix(labelled: pd.DataFrame, columns: Sequence[str] = TASKS) -> pd.DataFrame:
    """Fraction of each produced task's sentences (rows) that are training sentences of
    each task (columns, in ``columns`` order) or novel (last column)."""
    source = labelled["match_task"].astype(object).where(~labelled["novel"], NOVEL)
    counts = pd.crosstab(labelled["task"].astype(str), source.astype(str))
    counts = counts.reindex(columns=[*columns, NOVEL], fill_value=0)
    order = [t for t in TASKS if t in counts.index]
    return counts.loc[order].div(counts.loc[order].sum(axis=1), axis=0)


def bag_of_words_vectors(texts: Sequence[str], corpus: pd.DataFrame) -> np.ndarray:
    """Binary bag of words of ``texts`` over the vocabulary of ``corpus`` — the same
    vocabulary and word split as the cached BOWNET embeddings (unknown words drop out)."""
    vocab = {w: j for j, w in enumerate(vocabulary(corpus)["word"])}
    out = np.zeros((len(texts), len(vocab)), np.float32)
    for n, text in enumerate(texts):
        out[n, [vocab[w] for w in set(words(str(text))) if w in vocab]] = 1.0
    return out


def embed_sentences(model: LanguageModel, texts: Sequence[str], corpus: pd.DataFrame,
                    batch_size: int = 64, device: str | torch.device = "cpu",
                    loaded: tuple | None = None) -> np.ndarray:
    """Pooled embeddings (N, d) of ``texts`` by the corpus's own pipeline."""
    texts = [str(t) for t in texts]
    if model.kind == "bow":
        return bag_of_words_vectors(texts, corpus)
    if not texts:
        raise ValueError("no sentences to embed")
    pooled, _ = embed_corpus(model, pd.DataFrame({"text": texts}), batch_size, device, loaded)
    return pooled


def write_vectors(frame: pd.DataFrame, column: str, path) -> None:
    """Write ``frame`` to Parquet with ``column`` (one numpy vector per cell) as
    list<float32>."""
    table = pa.Table.from_pandas(frame.drop(columns=[column]), preserve_index=False)
    matrix = np.stack(frame[column].to_numpy()).astype(np.float32) if len(frame) else \
        np.zeros((0, 0), np.float32)
    n, d = matrix.shape
    values = pa.array(matrix.reshape(-1), pa.float32())
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d, pa.int32())
    table = table.append_column(column, pa.ListArray.from_arrays(offsets, values))
    pq.write_table(table, str(path), compression="zstd")


def read_vectors(path, column: str = "embedding") -> tuple[pd.DataFrame, np.ndarray]:
    """(rows without ``column``, matrix (N, d) float32) of a table from write_vectors."""
    df = pd.read_parquet(path)
    matrix = (np.stack(df[column].to_numpy()).astype(np.float32) if len(df)
              else np.zeros((0, 0), np.float32))
    return df.drop(columns=[column]), matrix
