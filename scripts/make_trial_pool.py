"""Rule trial_pool: draw one pool of trials of one task and write it as Parquet."""

import logging
import sys

from instructnet.tasks import ConThresholds, generate_pool, write_trials

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(message)s")
sys.stderr = open(snakemake.log[0], "a")

task, pool = snakemake.wildcards.task, snakemake.wildcards.pool
thresholds = ConThresholds.read(snakemake.input.thresholds) if snakemake.input.thresholds else None
df = generate_pool(task, snakemake.params.n, snakemake.params.seed, pool, thresholds)
write_trials(df, snakemake.output[0])
logging.info("%s/%s: %d trials, %.0f%% require a response", pool, task, len(df),
             100 * df["response"].mean())
