"""Rule partner_eval: one partner model performs the produced tasks from each source."""

import logging
import sys

import torch

from instructnet.production.run import partner_job
from instructnet.tasks import Stimulus

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
torch.set_num_threads(snakemake.threads)

w = snakemake.wildcards
partner_job(
    partner_path=snakemake.input.partner,
    embedded_path=snakemake.input.embedded,
    feedback_path=snakemake.input.vectors,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    instructor_holdout=w.holdout, partner_holdout=w.pholdout, partner_seed=int(w.pseed),
    model=w.model, settings=snakemake.params.settings, base_seed=snakemake.params.seed,
    out=snakemake.output[0], custom=snakemake.params.custom,
    device="cuda" if torch.cuda.is_available() else "cpu",
    stimulus=Stimulus(**snakemake.params.stimulus),
)
