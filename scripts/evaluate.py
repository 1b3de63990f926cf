"""Rule evaluate: one test (heldout, swapped, combined, input_only, validation) of one model."""

import logging
import sys

import torch

from instructnet.evaluation.run import evaluate
from instructnet.tasks import Stimulus

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
torch.set_num_threads(snakemake.threads)

w = snakemake.wildcards
table = evaluate(
    test=w.test,
    model_path=snakemake.input.model,
    holdout=w.holdout,
    custom_holdouts=snakemake.params.custom,
    tasks=snakemake.params.tasks,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    embeddings_path=snakemake.input.get("embeddings"),
    settings=snakemake.params.settings,
    seed=snakemake.params.seed,
    device="cuda" if torch.cuda.is_available() else "cpu",
    stimulus=Stimulus(**snakemake.params.stimulus),
)
table.to_parquet(snakemake.output[0], index=False)
