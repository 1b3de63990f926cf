"""Rule prefetch_models: download the configured language models into the Hugging Face
cache (on a machine with internet, e.g. a cluster login node)."""

import logging

from instructnet.embeddings import prefetch
from instructnet.job import start_job

start_job(snakemake, torch=False)
for model in snakemake.params.models:
    line = f"prefetching {model.name} ({model.source or 'bag of words'})"
    print(line)
    logging.info(line)
    prefetch(model)
