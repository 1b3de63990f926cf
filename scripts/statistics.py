"""Rule statistics: zero-shot tables, summaries, Welch tests, clause analysis, fidelity."""

from pathlib import Path

import pandas as pd

from instructnet.analysis.tables import statistics
from instructnet.job import start_job

start_job(snakemake, torch=False)

heldout = pd.read_parquet(snakemake.input.heldout)
extra = {Path(p).stem: pd.read_parquet(p) for p in snakemake.input.extra}
out = statistics(heldout, extra, snakemake.params.config_name, seed=snakemake.params.seed)
for key, path in snakemake.output.items():
    if key == "fidelity_md":
        Path(path).write_text(out[key])
    else:
        out[key].to_parquet(path, index=False)
