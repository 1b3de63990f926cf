"""Representations of tasks at every level of a model, for CCGP and PCA (METHODS §7).

For one trained model (one holdout group and seed), :func:`model_representations`
returns a long table with one row per sample:

* ``rnn``: the sensorimotor hidden state at stimulus onset — the step at which the
  first stimulus of the trial appears (stim1 onset, or the go epoch for RT tasks) —
  for the first ``n_trials`` trials of each task's evaluation pool, with seeded input
  noise; instructed models get the task's training instructions in turn (trial i
  gets the (i mod 15)-th).
* ``embedding``: the 64-d task vector the RNN receives — one per training instruction
  (instructed models) or the single vector of a rule model.
* ``rule``: the raw rule vector of a rule model (before the PLUS MLP, if any).
* variant ``swapped`` (instructed models with held-out tasks): ``embedding`` and
  ``rnn`` of each held-out task driven by the training instructions of the next task of
  its group (the swapped-instructions test); the trials stay those of the task.

Language-model layers do not depend on the sensorimotor model: they are read from the
per-layer embedding cache (:func:`language_layers`) and scored once per language model.

Tables: ``variant``, ``layer``, ``task`` (strings), ``item`` (int32), ``vector``
(list<float32>; the length depends on the layer). :func:`write_representations` /
:func:`read_representations` store them as Parquet, byte-reproducibly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..tasks.constants import PCA_TASKS, TASK_INDEX, TASKS  # noqa: F401 (PCA_TASKS re-exported)

MODEL_LAYERS = ("rule", "embedding", "rnn")


def stimulus_onset(trials) -> torch.Tensor:
    """Per trial, the first step at which any stimulus is shown (a TrialBatch)."""
    present = trials.slot_off > trials.slot_on
    big = torch.full_like(trials.slot_on, 10**6)
    return torch.where(present, trials.slot_on, big).min(dim=1).values


def onset_states(model, trials, task_vec: torch.Tensor, generator: torch.Generator) -> np.ndarray:
    """Hidden states (B, H) at stimulus onset of ``trials`` (a TrialBatch, rendered with
    its own stimulus geometry) with noise from ``generator``. The RNN is causal, so it only runs up to the latest onset."""
    from ..tasks.rendering import render

    onset = stimulus_onset(trials)
    r = render(trials, noise=True, generator=generator)
    steps = int(onset.max()) + 1
    with torch.no_grad():
        hidden = model.rnn(r.inputs[:, :steps].contiguous(), const=task_vec)
    return hidden[torch.arange(len(onset)), onset].cpu().numpy()


def _rows(variant: str, layer: str, task: str, x: np.ndarray) -> dict:
    return {"variant": variant, "layer": layer, "task": task, "x": np.asarray(x, np.float32)}


def model_representations(
    model,
    pools: Mapping,
    sentences: Mapping[str, torch.Tensor] | None,
    n_trials: int,
    seed: int,
    swapped: Mapping[str, str] | None = None,
    tasks: Sequence[str] = TASKS,
) -> pd.DataFrame:
    """The representation table of one model (see the module docstring).

    ``pools`` maps tasks to TrialBatches (evaluation pools, with the run's stimulus
    geometry: :func:`instructnet.tasks.rendering.read_pools`), ``sentences`` tasks to
    training-instruction rows of the embedding table (instructed models), ``swapped``
    held-out tasks to the task whose instructions they get (instructed models only).
    ``seed`` seeds the input noise (one torch stream per task and variant).
    """
    from ..evaluation.protocols import is_instructed
    from ..seeding import seed_int

    instructed = is_instructed(model)
    if instructed and sentences is None:
        raise ValueError("an instructed model needs its training instructions")
    model = model.cpu().eval()
    blocks = []
    plans = [("standard", t, t) for t in tasks]
    if instructed and swapped:
        plans += [("swapped", t, swapped[t]) for t in tasks if t in swapped]
    with torch.no_grad():
        for variant, task, source in plans:
            pool = pools[task]
            n = min(n_trials, len(pool))
            if n < n_trials:
                raise ValueError(f"the evaluation pool of {task} has {len(pool)} trials; "
                                 f"representations need {n_trials}")
            trials = pool[torch.arange(n)]
            if instructed:
                rows = sentences[source]
                idx = torch.full((len(rows),), TASK_INDEX[source], dtype=torch.long)
                emb = model.task_vectors(idx, rows)
                vec = emb[torch.arange(n) % len(rows)]
            else:
                idx = torch.tensor([TASK_INDEX[task]])
                emb = model.task_vectors(idx)
                vec = emb.expand(n, -1)
                if variant == "standard":
                    blocks.append(_rows(variant, "rule", task, model.encoder.rule_vectors(idx).numpy()))
            blocks.append(_rows(variant, "embedding", task, emb.numpy()))
            gen = torch.Generator().manual_seed(seed_int(seed, "representations", variant, task))
            blocks.append(_rows(variant, "rnn", task, onset_states(model, trials, vec, gen)))
    return _frame(blocks)


def _frame(blocks: list[dict]) -> pd.DataFrame:
    parts = []
    for b in blocks:
        n = len(b["x"])
        parts.append(pd.DataFrame({
            "variant": [b["variant"]] * n, "layer": [b["layer"]] * n, "task": [b["task"]] * n,
            "item": np.arange(n, dtype=np.int32), "vector": list(b["x"])}))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["variant", "layer", "task", "item", "vector"])
    return df.astype({"variant": "string", "layer": "string", "task": "string", "item": "int32"})


def write_representations(df: pd.DataFrame, path: str | Path) -> None:
    vectors = [np.asarray(v, np.float32) for v in df["vector"]]
    lengths = np.array([len(v) for v in vectors], dtype=np.int64)
    offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int64), pa.int64())
    values = pa.array(np.concatenate(vectors) if vectors else np.zeros(0, np.float32), pa.float32())
    table = pa.table({
        "variant": pa.array(df["variant"].astype(str).tolist(), pa.string()),
        "layer": pa.array(df["layer"].astype(str).tolist(), pa.string()),
        "task": pa.array(df["task"].astype(str).tolist(), pa.string()),
        "item": pa.array(df["item"].to_numpy(np.int32), pa.int32()),
        "vector": pa.LargeListArray.from_arrays(offsets, values),
    })
    pq.write_table(table, str(path), compression="zstd")


def read_representations(path: str | Path) -> pd.DataFrame:
    df = pq.read_table(str(path)).to_pandas()
    return df.astype({"variant": "string", "layer": "string", "task": "string", "item": "int32"})


def layer_arrays(df: pd.DataFrame, variant: str, layer: str) -> dict[str, np.ndarray]:
    """task -> (samples, features) of one variant and layer of a representation table."""
    sel = df[(df["variant"] == variant) & (df["layer"] == layer)]
    return {str(t): np.stack(g["vector"].to_numpy()) for t, g in sel.groupby("task", sort=False)}


def language_layers(layers_path: str | Path | None, pooled_path: str | Path,
                    split: str = "train", tasks: Sequence[str] = TASKS
                    ) -> list[tuple[str, dict[str, np.ndarray]]]:
    """[(layer name, task -> (sentences, d))] of a language model over the ``split``
    instructions of ``tasks`` (a study's), from the per-layer cache (``lm{k}``, k =
    hidden-state index, 0 = the embedding output). A model without layers (bag of
    words) gives its pooled embedding as the single layer ``bow``."""
    from ..embeddings import read_embeddings, read_layers

    order = [t for t in TASKS if t in set(tasks)]

    out = []
    if layers_path is not None:
        rows, acts = read_layers(layers_path)
        if acts.shape[0] and len(rows):
            n = acts.shape[1]
            first = rows.iloc[:n]
            keep = (first["split"] == split).to_numpy()
            names = first["task"].to_numpy()
            for k, layer_id in enumerate(pd.unique(rows["layer"])):
                out.append((f"lm{int(layer_id)}",
                            {t: acts[k][keep & (names == t)] for t in order if (keep & (names == t)).any()}))
            return out
    rows, vectors = read_embeddings(pooled_path)
    keep = (rows["split"] == split).to_numpy()
    names = rows["task"].to_numpy()
    return [("bow", {t: vectors[keep & (names == t)] for t in order if (keep & (names == t)).any()})]


def pca_table(reps: Mapping[tuple[str, str, int], pd.DataFrame], tasks: Sequence[str],
              layers: Sequence[str] = ("embedding", "rnn"), n_components: int = 3) -> pd.DataFrame:
    """First principal components (sklearn PCA) of each model's ``layers`` over the
    samples of ``tasks`` (standard variant). ``reps`` maps (holdout, model, seed) to a
    representation table. Returns DataFrame(holdout, model, seed, layer, task, item,
    pc1.., explained1..)."""
    from sklearn.decomposition import PCA

    frames = []
    for (holdout, model, seed), df in reps.items():
        for layer in layers:
            arrays = layer_arrays(df, "standard", layer)
            if not all(t in arrays for t in tasks):
                continue
            x = np.concatenate([arrays[t] for t in tasks]).astype(np.float64)
            k = min(n_components, x.shape[0], x.shape[1])
            pca = PCA(n_components=k, random_state=0)
            z = pca.fit_transform(x)
            if k < n_components:
                z = np.pad(z, ((0, 0), (0, n_components - k)))
            explained = np.r_[pca.explained_variance_ratio_, np.zeros(n_components - k)]
            f = pd.DataFrame({
                "holdout": holdout, "model": model, "seed": np.int32(seed), "layer": layer,
                "task": np.repeat(list(tasks), [len(arrays[t]) for t in tasks]),
                "item": np.concatenate([np.arange(len(arrays[t])) for t in tasks]).astype(np.int32),
            })
            for c in range(n_components):
                f[f"pc{c + 1}"] = z[:, c]
                f[f"explained{c + 1}"] = float(explained[c])
            frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["holdout", "model", "seed", "layer", "task", "item"]
                            + [f"pc{c + 1}" for c in range(n_components)]
                            + [f"explained{c + 1}" for c in range(n_components)])
    return pd.concat(frames, ignore_index=True).astype(
        {"holdout": "string", "model": "string", "layer": "string", "task": "string"})
