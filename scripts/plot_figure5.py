"""Rule figure5: draw one Figure 5 panel from the production tables."""


import pandas as pd

from instructnet.analysis.stats import scored
from instructnet.figures import fig5
from instructnet.job import start_job

start_job(snakemake, torch=False)

name = snakemake.wildcards.figure
tables = [scored(pd.read_parquet(p)) for p in snakemake.input]  # strict scoring
out = snakemake.output.png

if name == "fig5d_examples":
    fig5.fig5d_examples(tables[0], out, task=snakemake.params.example_task)
elif name == "fig5e_confusion":
    fig5.fig5e_confusion(tables[0], out, tasks=snakemake.params.tasks)
elif name == "fig5f_partners":
    fig5.fig5f_partners(tables[0], tables[1], out)
else:
    raise ValueError(f"unknown figure {name!r}")
