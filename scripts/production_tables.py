"""Rule production_tables: stack produced sentences and partner results; confusion
matrices, fraction novel, partner summaries and Welch tests."""

from instructnet.job import start_job
from instructnet.production.run import production_tables

start_job(snakemake, torch=False)

production_tables(snakemake.input.produced, snakemake.input.partners, snakemake.output)
