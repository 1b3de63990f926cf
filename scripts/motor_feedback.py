"""Rule motor_feedback: infer task vectors of the production tasks by motor feedback."""

import logging
import sys

import torch

from instructnet.production.run import feedback_job
from instructnet.tasks import Stimulus

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
torch.set_num_threads(snakemake.threads)

w = snakemake.wildcards
feedback_job(
    instructor_path=snakemake.input.model,
    tasks=snakemake.params.tasks,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    settings=snakemake.params.settings,
    base_seed=snakemake.params.seed,
    holdout=w.holdout, model=w.model, seed=int(w.seed),
    out=snakemake.output.vectors, out_log=snakemake.output.log,
    device="cuda" if torch.cuda.is_available() else "cpu",
    stimulus=Stimulus(**snakemake.params.stimulus),
)
