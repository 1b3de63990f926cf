"""Rule train: one (holdout, model, seed) training job."""

import logging
import sys

import torch

from instructnet.tasks import Stimulus
from instructnet.training import TrainConfig
from instructnet.training.run import TuningConfig, train_job

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
torch.set_num_threads(snakemake.threads)

w = snakemake.wildcards
tasks = snakemake.params.tasks
train_job(
    spec=snakemake.params.spec,
    holdout=w.holdout,
    seed=int(w.seed),
    tasks=tasks,
    pool_paths=dict(zip(tasks, snakemake.input.pools)),
    config=TrainConfig.from_mapping(snakemake.params.training),
    base_seed=snakemake.params.seed,
    model_out=snakemake.output.model,
    log_out=snakemake.output.log,
    embeddings_path=snakemake.input.get("embeddings"),
    hidden=snakemake.params.hidden,
    device="cuda" if torch.cuda.is_available() else "cpu",
    checkpoint=snakemake.params.checkpoint,
    language_model=snakemake.params.language_model,
    tuning=TuningConfig(**snakemake.params.tuning),
    stimulus=Stimulus(**snakemake.params.stimulus),
)
