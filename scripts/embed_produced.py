"""Rule embed_produced: re-embed the produced sentences with the corpus's LM pipeline."""

import logging
import sys

import torch

from instructnet.production.run import embed_produced_job

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
torch.set_num_threads(snakemake.threads)

embed_produced_job(
    produced_path=snakemake.input.produced,
    language_model=snakemake.params.language_model,
    corpus_path=snakemake.input.corpus,
    out=snakemake.output[0],
    batch_size=snakemake.params.batch_size,
    device="cpu",  # a few hundred produced sentences: no GPU requested (rule)
)
