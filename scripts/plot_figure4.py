"""Rule figure4: draw one Figure 4 panel (or the task-variance heatmap) from the unit tables."""


import pandas as pd

from instructnet.figures import fig4
from instructnet.job import start_job

start_job(snakemake, torch=False)

name = snakemake.wildcards.figure
stats = pd.read_parquet(snakemake.input.stats)
curves = pd.read_parquet(snakemake.input.curves)
variance = pd.read_parquet(snakemake.input.variance)
out = snakemake.output.png
model, held = snakemake.params.model, set(snakemake.params.held)

if name == "fig4a_go_tuning":
    fig4.fig4a_go_tuning(curves, stats, out, model, held)
elif name == "fig4b_matching":
    fig4.fig4b_matching(curves, out, model, held)
elif name == "fig4c_dm_contrast":
    fig4.fig4c_dm_contrast(curves, out, model, held)
elif name == "fig4d_comp":
    fig4.fig4d_comp(curves, out, model, held)
elif name == "supp_task_variance":
    fig4.supp_task_variance(variance, out, model)
else:
    raise ValueError(f"unknown figure {name!r}")
