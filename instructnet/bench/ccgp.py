"""Benchmark: CCGP of one model and seed over its whole hierarchy (METHODS §7).

An untrained instructed model (256 GRU units, 64-d task vectors) on 250 freshly drawn
trials per task, with random sentence embeddings the size of a language model's
(``lm_layers`` layers of ``lm_dim`` units, 15 training sentences per task). Times,
separately: extracting the representations (the forward passes up to stimulus onset)
and the CCGP of every layer (language-model layers, task embedding, RNN, and the
swapped-instruction variant of five held-out tasks). The SVM fits are the same
computation as on a trained model.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def run(trials: int = 250, lm_layers: int = 7, lm_dim: int = 384, hidden: int = 256,
        threads: int | None = None) -> dict:
    from ..analysis.ccgp import layer_ccgp, model_ccgp
    from ..analysis.representations import MODEL_LAYERS, layer_arrays, model_representations
    from ..embeddings import BUILTIN_MODELS
    from ..models.network import build_model
    from ..models.spec import model_spec
    from ..tasks import TASKS, TrialBatch, generate_trials
    from ..tasks.holdouts import held_out, swapped_instruction_task

    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    n_sent = 15
    emb = torch.tensor(rng.normal(size=(n_sent * len(TASKS), lm_dim)), dtype=torch.float32)
    model = build_model(model_spec("sbertnet_minilm", BUILTIN_MODELS), 0, emb, hidden)
    sentences = {t: torch.arange(n_sent * i, n_sent * (i + 1)) for i, t in enumerate(TASKS)}
    pools = {t: TrialBatch.from_frame(generate_trials(t, trials, seed=i)) for i, t in enumerate(TASKS)}
    swapped = {t: swapped_instruction_task(t, "swap9") for t in held_out("swap9")}

    start, cpu = time.perf_counter(), time.process_time()
    reps = model_representations(model, pools, sentences, trials, seed=0, swapped=swapped)
    t_reps, c_reps = time.perf_counter() - start, time.process_time() - cpu

    layers = [(f"lm{k}", {t: rng.normal(size=(n_sent, lm_dim)) for t in TASKS})
              for k in range(lm_layers)]
    start, cpu = time.perf_counter(), time.process_time()
    language = layer_ccgp(layers)
    model_layers = {v: {name: layer_arrays(reps, v, name) for name in MODEL_LAYERS
                        if ((reps["variant"] == v) & (reps["layer"] == name)).any()}
                    for v in ("standard", "swapped")}
    table = model_ccgp(model_layers, language)
    t_ccgp, c_ccgp = time.perf_counter() - start, time.process_time() - cpu
    return {
        "trials_per_task": trials, "lm_layers": lm_layers, "lm_dim": lm_dim, "hidden": hidden,
        "threads": torch.get_num_threads(),
        "representations_s": round(t_reps, 2),
        "ccgp_all_layers_s": round(t_ccgp, 2),
        "total_s": round(t_reps + t_ccgp, 2),
        # CPU seconds of this process (all threads): robust to other load on the machine
        "representations_cpu_s": round(c_reps, 2),
        "ccgp_all_layers_cpu_s": round(c_ccgp, 2),
        "target_s": 60,
        "scores": len(table),
    }
