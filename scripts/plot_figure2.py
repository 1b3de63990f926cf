"""Rule figure2: draw one Figure 2 panel from the tables."""


import pandas as pd

from instructnet.analysis.stats import scored, zero_shot_table
from instructnet.figures import fig2
from instructnet.job import start_job

start_job(snakemake, torch=False)

name = snakemake.wildcards.figure
# figures draw the strict (per-trial) scoring; the tables also hold the paper's rule
tables = [scored(pd.read_parquet(p)) for p in snakemake.input]
out = snakemake.output.png


def zero_shot(table):
    return zero_shot_table(table) if len(table) else table


if name == "fig2a_learning_curves":
    fig2.fig2a_learning_curves(tables[0], out)
elif name == "fig2b_distribution":
    fig2.fig2b_distribution(tables[0], out)
elif name == "fig2c_swapped":
    fig2.fig2c_swapped(tables[0], tables[1], out)
elif name == "fig2d_family":
    fig2.fig2d_family(zero_shot(tables[0]), out)
elif name == "fig2e_tuned":
    fig2.fig2e_tuned(zero_shot(tables[0]), out)
elif name == "fig2f_clause":
    fig2.fig2f_clause(tables[0], tables[1], out)
elif name == "supp_training_curves":
    fig2.supp_training_curves(tables[0], out)
elif name == "supp_validation":
    fig2.supp_validation(tables[0], out)
elif name == "supp_welch_heatmaps":
    welch = tables[0]
    fig2.supp_welch_heatmaps(
        {c: t.drop(columns="condition") for c, t in welch.groupby("condition", sort=False)}
        if len(welch) else {}, out)
else:
    raise ValueError(f"unknown figure {name!r}")
