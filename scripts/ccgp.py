"""Rules ccgp_language (one language model's layers) and ccgp (one model's hierarchy)."""

import logging
import time

import pandas as pd

from instructnet.analysis.ccgp import layer_ccgp, model_ccgp
from instructnet.analysis.representations import (
    MODEL_LAYERS,
    language_layers,
    layer_arrays,
    read_representations,
)
from instructnet.job import start_job

start_job(snakemake, torch=False)
start = time.perf_counter()
C = snakemake.params.C
dichotomies = snakemake.params.dichotomies  # the study's (instructnet.tasks.study)

if snakemake.rule == "ccgp_language":
    layers = language_layers(snakemake.input.layers, snakemake.input.pooled,
                             tasks=snakemake.params.tasks)
    table = layer_ccgp(layers, C=C, dichotomies=dichotomies)
else:
    reps = read_representations(snakemake.input.reps)
    model_layers = {
        variant: {layer: layer_arrays(reps, variant, layer) for layer in MODEL_LAYERS
                  if ((reps["variant"] == variant) & (reps["layer"] == layer)).any()}
        for variant in ("standard", "swapped")
    }
    language = pd.read_parquet(snakemake.input.language) if "language" in snakemake.input.keys() else None
    table = model_ccgp(model_layers, language, C=C, dichotomies=dichotomies)
table.to_parquet(snakemake.output[0], index=False)
logging.info("%d scores in %.1f s", len(table), time.perf_counter() - start)
