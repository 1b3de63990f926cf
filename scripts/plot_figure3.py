"""Rule figure3: draw one Figure 3 panel from the tables."""


import pandas as pd

from instructnet.analysis.stats import scored
from instructnet.figures import fig3
from instructnet.job import start_job

start_job(snakemake, torch=False)

name = snakemake.wildcards.figure
tables = [scored(pd.read_parquet(p)) for p in snakemake.input]  # strict scoring (zero-shot)
out = snakemake.output.png

if name == "fig3ad_pca":
    fig3.fig3ad_pca(tables[0], out, held=set(snakemake.params.held))
elif name == "fig3e_ccgp_zero_shot":
    fig3.fig3e_ccgp_zero_shot(tables[0], tables[1], out)
elif name == "fig3f_ccgp_layers":
    fig3.fig3f_ccgp_layers(tables[0], tables[1], out)
else:
    raise ValueError(f"unknown figure {name!r}")
