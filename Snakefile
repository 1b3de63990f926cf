# instructnet: Riveland & Pouget (2024) as a Snakemake workflow.
#
#   snakemake --cores 2                                  # default CPU demo (config/config.yaml)
#   snakemake --cores 2 --configfile config/paper.yaml   # the full study
#   snakemake --cores 2 results/figures/task_examples.png   # one target
#
# All logic lives in the `instructnet` package; rules only wire files together.

import os

from snakemake.utils import min_version

from instructnet.config import DEFAULT_CONFIG, check_config, read_yaml

min_version("9.0")

# The default config's YAML errors with file and line (Snakemake's own message names
# neither; it parses --configfile files before this file runs: `python -m instructnet
# check-config FILE` shows where those fail).
if os.path.exists(DEFAULT_CONFIG):
    read_yaml(DEFAULT_CONFIG)


configfile: DEFAULT_CONFIG


# Before any job: unknown keys, the schema (workflow/schemas/config.schema.yaml, which
# fills in every default), names, cross-key checks and the files the config names.
check_config(config, os.getcwd(), workflow.basedir)


include: "workflow/rules/common.smk"
include: "workflow/rules/trials.smk"
include: "workflow/rules/embeddings.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/statistics.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/production.smk"
include: "workflow/rules/figures.smk"


rule all:
    """Every figure and table the config supports (instructnet.plan.Plan.all_targets)."""
    default_target: True
    input:
        PLAN.all_targets(),
