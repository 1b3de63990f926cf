"""Embedding tables: Parquet files of per-sentence (and per-layer) embeddings.

``write_embeddings`` stores one row per sentence: ``task``, ``split``,
``sentence_id``, ``text`` and ``embedding`` (list<float32>; pandas readers get one
numpy array per cell). ``write_layers`` stores one row per (layer, sentence), layer
by layer in corpus order: ``layer``, ``task``, ``split``, ``sentence_id``,
``embedding``. Writing is byte-for-byte reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

KEYS: tuple[str, ...] = ("task", "split", "sentence_id")
_KEY_TYPES = {"task": pa.string(), "split": pa.string(), "sentence_id": pa.int64()}
_PANDAS_TYPES = {"task": "string", "split": "string", "sentence_id": "int64"}


class EmbeddingCacheError(ValueError):
    """An embedding table that cannot be written or read back as such."""


def write_embeddings(corpus_df: pd.DataFrame, pooled: np.ndarray, path: str | Path) -> None:
    """Write one pooled embedding per corpus row (``pooled``: (N, d)) to Parquet."""
    pooled = _as_matrix(pooled, len(corpus_df), "pooled embeddings")
    columns = _key_columns(corpus_df, extra=("text",))
    columns["text"] = pa.array(corpus_df["text"].astype(str).tolist(), pa.string())
    columns["embedding"] = _list_column(pooled)
    _write(columns, path)


def read_embeddings(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a table written by :func:`write_embeddings` as (rows without the
    embedding column, embeddings (N, d) float32)."""
    table = _read(path, ("task", "split", "sentence_id", "text", "embedding"))
    vectors = _matrix(table, path)
    rows = table.drop_columns(["embedding"]).to_pandas()
    return rows.astype({**_PANDAS_TYPES, "text": "string"}), vectors


def write_layers(
    corpus_df: pd.DataFrame,
    layers: np.ndarray,
    path: str | Path,
    layer_ids: Sequence[int] | None = None,
) -> None:
    """Write per-layer sentence embeddings (``layers``: (L, N, d)) to Parquet.

    ``layer_ids`` are the hidden-state indices of the L slices (default 0..L-1).
    """
    layers = np.asarray(layers)
    if layers.ndim != 3 or layers.shape[1] != len(corpus_df):
        raise EmbeddingCacheError(
            f"layer embeddings must have shape (L, {len(corpus_df)}, d), got {layers.shape}"
        )
    n_layers, n_rows, dim = layers.shape
    ids = list(range(n_layers)) if layer_ids is None else [int(i) for i in layer_ids]
    if len(ids) != n_layers:
        raise EmbeddingCacheError(f"{len(ids)} layer ids given for {n_layers} layers")
    keys = _key_columns(corpus_df)
    columns = {"layer": pa.array(np.repeat(np.asarray(ids, np.int32), n_rows), pa.int32())}
    columns.update(
        {k: pa.concat_arrays([v] * n_layers) if n_layers else v[:0] for k, v in keys.items()}
    )
    columns["embedding"] = _list_column(layers.reshape(n_layers * n_rows, dim))
    _write(columns, path)


def read_layers(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a table written by :func:`write_layers` as (rows without the embedding
    column, one per (layer, sentence); activations (L, N, d) float32)."""
    table = _read(path, ("layer", "task", "split", "sentence_id", "embedding"))
    vectors = _matrix(table, path)
    rows = table.drop_columns(["embedding"]).to_pandas().astype(
        {"layer": "int32", **_PANDAS_TYPES}
    )
    layer = rows["layer"].to_numpy()
    ids = pd.unique(layer)
    n_layers = len(ids)
    n_rows = len(rows) // n_layers if n_layers else 0
    grid = n_layers * n_rows == len(rows) and bool(
        (layer.reshape(n_layers, n_rows) == ids[:, None]).all()
    )
    if grid:
        first = rows[list(KEYS)].iloc[:n_rows].reset_index(drop=True)
        grid = all(
            rows[list(KEYS)].iloc[k * n_rows : (k + 1) * n_rows].reset_index(drop=True)
            .equals(first)
            for k in range(1, n_layers)
        )
    if not grid:
        raise EmbeddingCacheError(
            f"layer embedding table {path} is not a full (layer, sentence) grid"
        )
    return rows, vectors.reshape(n_layers, n_rows, vectors.shape[-1])


def _as_matrix(values: np.ndarray, n_rows: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] != n_rows:
        raise EmbeddingCacheError(f"{what} must have shape ({n_rows}, d), got {values.shape}")
    return values


def _key_columns(corpus_df: pd.DataFrame, extra: tuple[str, ...] = ()) -> dict[str, pa.Array]:
    """Arrow arrays of the key columns of a corpus table (checking ``extra`` exist too)."""
    missing = [k for k in (*KEYS, *extra) if k not in corpus_df.columns]
    if missing:
        raise EmbeddingCacheError(f"corpus table lacks columns: {', '.join(missing)}")
    return {
        k: pa.array(corpus_df[k].astype(_PANDAS_TYPES[k]).tolist(), _KEY_TYPES[k])
        for k in KEYS
    }


def _list_column(matrix: np.ndarray) -> pa.Array:
    """A list<float32> column with one row of ``matrix`` (N, d) per list."""
    n, d = matrix.shape
    values = pa.array(np.ascontiguousarray(matrix, np.float32).reshape(-1), pa.float32())
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d, pa.int32())
    return pa.ListArray.from_arrays(offsets, values)


def _write(columns: dict[str, pa.Array], path: str | Path) -> None:
    pq.write_table(pa.table(columns), str(path), compression="zstd")


def _read(path: str | Path, required: tuple[str, ...]) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise EmbeddingCacheError(f"embedding table {path} does not exist")
    try:
        table = pq.read_table(str(path))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise EmbeddingCacheError(
            f"cannot read embedding table {path}: {exc} (truncated or not a Parquet "
            "file? delete it and let the workflow rebuild it)"
        ) from exc
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise EmbeddingCacheError(
            f"embedding table {path} lacks columns: {', '.join(missing)} "
            "(not an embedding table of this kind?)"
        )
    return table


def _matrix(table: pa.Table, path) -> np.ndarray:
    """The ``embedding`` column as a float32 (rows, d) array; all rows equally long."""
    column = table.column("embedding").combine_chunks()
    if not pa.types.is_list(column.type) or column.null_count:
        raise EmbeddingCacheError(
            f"embedding table {path}: column 'embedding' is not a list of floats without "
            "nulls"
        )
    lengths = pc.list_value_length(column).to_numpy()
    if len(lengths) and (lengths != lengths[0]).any():
        raise EmbeddingCacheError(f"embedding table {path}: embeddings differ in length")
    dim = int(lengths[0]) if len(lengths) else 0
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(column), dim)


def instruction_rows(rows: pd.DataFrame, tasks: Sequence[str], split: str = "train"):
    """Embedding-table row indices (torch long tensors) of each task's ``split``
    sentences: what an instructed model draws its instructions from."""
    import torch

    out = {}
    for task in tasks:
        sel = np.flatnonzero((rows["task"] == task).to_numpy() & (rows["split"] == split).to_numpy())
        out[task] = torch.as_tensor(sel, dtype=torch.long)
    return out
