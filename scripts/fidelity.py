"""Rule fidelity: results/tables/fidelity.md from the fidelity table and, where the run
has them, the CCGP/zero-shot and partner tables."""

from pathlib import Path

import pandas as pd

from instructnet.analysis import paper
from instructnet.job import start_job

start_job(snakemake, torch=False)

read = {k: pd.read_parquet(v) for k, v in snakemake.input.items()}
extra = paper.headline_lines(read.get("ccgp"), read.get("zero_shot"), read.get("partners"))
Path(snakemake.output[0]).write_text(
    paper.fidelity_markdown(read["table"], snakemake.params.config_name, extra,
                            stimulus=snakemake.params.stimulus))
