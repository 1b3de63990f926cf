# Shared definitions: the task list, config checks and helpers for the rules.

import instructnet
from instructnet.config import check_config
from instructnet.tasks import TASKS

check_config(config)

CON_TASKS = ("ConDM", "ConAntiDM")
POOLS = list(config["trials"]["pools"])


wildcard_constraints:
    task="|".join(TASKS),
    pool="|".join(POOLS),


def trial_pools():
    """Every trial pool of every task."""
    return expand("results/trials/{pool}/{task}.parquet", pool=POOLS, task=TASKS)


def con_thresholds(wildcards):
    """The threshold table is an input of the Con tasks' pools only."""
    return config["trials"]["con_thresholds"] if wildcards.task in CON_TASKS else []
