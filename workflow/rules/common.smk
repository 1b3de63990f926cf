# Shared definitions. What runs is decided by the study's plan (instructnet.plan.Plan,
# unit-tested without Snakemake: tests/test_plan.py), built once from the checked config
# (Snakefile: check_config fills in the schema's defaults); rules ask it for file lists,
# inputs, params and resources.

import os

from instructnet.config import config_label
from instructnet.plan import Plan

PLAN = Plan(config, workflow.basedir)
STUDY = PLAN.study
SEEDS = PLAN.seeds
STIMULUS = PLAN.stimulus
# how outputs name the config files (relative, each once): same config, same bytes
CONFIG_NAME = config_label(workflow.configfiles, os.getcwd(), workflow.basedir)


wildcard_constraints:
    **PLAN.wildcard_constraints(),
