"""Rule con_thresholds: sweep noise x contrast on DM/AntiDM with the reference SIMPLENET
and write the 95 %-correct frontier."""

import sys

import torch

from instructnet.tasks import Stimulus
from instructnet.training.con_thresholds import frontier, sweep
from instructnet.training.run import load_model

sys.stderr = open(snakemake.log[0], "w")
torch.set_num_threads(snakemake.threads)

settings = snakemake.params.sweep
device = "cuda" if torch.cuda.is_available() else "cpu"
model, meta = load_model(snakemake.input[0], device)
table = sweep(
    model,
    noise_levels=settings["noise"],
    contrasts=settings["contrast"],
    trials=settings["trials"],
    seed=snakemake.params.seed,
    device=device,
    stimulus=Stimulus(**snakemake.params.stimulus),
)
table.to_parquet(snakemake.output.sweep, index=False)
frontier(table).to_parquet(snakemake.output.table, index=False)
