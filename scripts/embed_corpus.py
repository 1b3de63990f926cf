"""Rule embed: embed the corpus once with one language model (GPU when present)."""

import sys
import time

import pandas as pd

from instructnet.embeddings import (
    embed_corpus,
    kept_layer_ids,
    load,
    write_embeddings,
    write_layers,
)
from instructnet.job import start_job

device = start_job(snakemake)

model = snakemake.params.model
corpus = pd.read_parquet(snakemake.input[0])
start = time.perf_counter()
loaded = None if model.kind == "bow" else load(model, device)
pooled, layers = embed_corpus(model, corpus, snakemake.params.batch_size, device, loaded)
layer_ids = kept_layer_ids(model, loaded[1]) if loaded else []
write_embeddings(corpus, pooled, snakemake.output.pooled)
write_layers(corpus, layers, snakemake.output.layers, layer_ids)
print(
    f"{model.name}: {len(corpus)} sentences -> {pooled.shape[1]}-d, {len(layer_ids)} layers, "
    f"{time.perf_counter() - start:.1f} s on {device}",
    file=sys.stderr,
)
