"""Rule ccgp_tables: stack every model's CCGP, summarise per condition, Welch tests."""

import re

import pandas as pd

from instructnet.analysis.ccgp import ccgp_summary, neighbour_welch, stack_ccgp
from instructnet.job import start_job

start_job(snakemake, torch=False)
held = snakemake.params.held
files = {}
for path in snakemake.input:
    holdout, model, seed = re.search(r"ccgp/([^/]+)/([^/]+)/seed(\d+)\.parquet$", path).groups()
    files[(holdout, model, int(seed))] = pd.read_parquet(path)
table = stack_ccgp(files, held)
summary = ccgp_summary(table, held)
table.to_parquet(snakemake.output.table, index=False)
summary.to_parquet(snakemake.output.summary, index=False)
neighbour_welch(summary).to_parquet(snakemake.output.welch, index=False)
