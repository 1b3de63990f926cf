"""Rule production_decoder: train the Production-RNN of one instructing model."""

import logging
import sys

import torch

from instructnet.production.run import decoder_job
from instructnet.tasks import Stimulus

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
torch.set_num_threads(snakemake.threads)

w = snakemake.wildcards
decoder_job(
    instructor_path=snakemake.input.model,
    embeddings_path=snakemake.input.embeddings,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    settings=snakemake.params.settings,
    base_seed=snakemake.params.seed,
    holdout=w.holdout, model=w.model, seed=int(w.seed),
    out_model=snakemake.output.decoder, out_log=snakemake.output.log,
    device="cuda" if torch.cuda.is_available() else "cpu",
    stimulus=Stimulus(**snakemake.params.stimulus),
)
