# Shared definitions: the task list, config checks and helpers for the rules.

import os

from instructnet.config import check_config
from instructnet.embeddings import language_models
from instructnet.tasks import TASKS

check_config(config)

# name -> LanguageModel: the built-in registry plus config["language_model_registry"].
LANGUAGE_MODELS = language_models(config.get("language_model_registry"))

CON_TASKS = ("ConDM", "ConAntiDM")
POOLS = list(config["trials"]["pools"])


wildcard_constraints:
    task="|".join(TASKS),
    pool="|".join(POOLS),
    lm="|".join(LANGUAGE_MODELS),


def trial_pools():
    """Every trial pool of every task."""
    return expand("results/trials/{pool}/{task}.parquet", pool=POOLS, task=TASKS)


def repo_path(path):
    """A path from the config: relative to the working directory if it exists there,
    else relative to the repository (so shipped data files work with --directory)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(workflow.basedir, path)


def con_thresholds(wildcards):
    """The threshold table is an input of the Con tasks' pools only."""
    return repo_path(config["trials"]["con_thresholds"]) if wildcards.task in CON_TASKS else []


def embeddings():
    """The embedding tables of every configured language model."""
    return expand(
        "results/embeddings/{lm}{suffix}.parquet",
        lm=config["language_models"],
        suffix=["", "_layers"],
    )
