"""Rule figure: draw one panel of Figures 2-5 from its tables (instructnet.figures.panels)."""

from instructnet.figures.panels import draw_panel
from instructnet.job import start_job

start_job(snakemake, torch=False)
draw_panel(snakemake.wildcards.figure, list(snakemake.input), snakemake.output.png,
           **snakemake.params.settings)
