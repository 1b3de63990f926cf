"""Rule collect: stack per-model Parquet files into one table."""

import pandas as pd

from instructnet.job import start_job

start_job(snakemake, torch=False)

frames = [pd.read_parquet(path) for path in snakemake.input]
table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
table.to_parquet(snakemake.output[0], index=False)
