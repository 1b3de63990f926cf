# Shared definitions: the study's task set, config checks and helpers for the rules.

import os

from instructnet.config import config_label, config_path
from instructnet.embeddings import language_models
from instructnet.models.spec import RULE_MODELS, model_spec
from instructnet.tasks import Study, held_out, holdout_registry
from instructnet.tasks.constants import CON_TASKS
from instructnet.tasks.stimulus import Stimulus

# The config is checked and has the schema's defaults (Snakefile: check_config).
# The study's task set (config key `tasks`, default all 50) and every decision of what
# applies to it: instructnet.tasks.study. Rules take task lists from STUDY only.
STUDY = Study.from_config(config)

# name -> LanguageModel: the built-in registry plus config["language_model_registry"].
LANGUAGE_MODELS = language_models(config["language_model_registry"])
CUSTOM_HOLDOUTS = config["custom_holdouts"]
HOLDOUT_NAMES = list(holdout_registry(CUSTOM_HOLDOUTS))
MODELS = list(config["models"])
# Every model name a target may ask for: rule models and, per language model, the
# linear, MLP and tuned variants (so that e.g. a tuned-model figure can be requested
# explicitly even when config["models"] lists no tuned model).
MODEL_SPECS = {
    name: model_spec(name, LANGUAGE_MODELS, config["training"]["embedding_norm"])
    for name in [*RULE_MODELS, *MODELS]
    + [f"{lm}{suffix}" for lm, entry in LANGUAGE_MODELS.items() for suffix in ("", "_mlp")]
    + [f"{lm}_tuned" for lm, entry in LANGUAGE_MODELS.items() if entry.kind != "bow"]
}
SEEDS = config["training"]["seeds"]

POOLS = list(config["trials"]["pools"])
# The stimulus geometry (trials.convention, trials.tuning) as plain settings: a param of
# every rule that renders trials, so that changing it reruns exactly those.
STIMULUS = Stimulus.from_config(config["trials"]).settings()


def training_tasks(holdout):
    """Tasks a model of ``holdout`` trains on: the study's minus the held-out ones."""
    return STUDY.training_tasks(holdout)


wildcard_constraints:
    task="|".join(STUDY.tasks),  # only the study's pools are made
    pool="|".join(POOLS),
    lm="|".join(LANGUAGE_MODELS),
    holdout="|".join(HOLDOUT_NAMES),
    model="|".join(MODEL_SPECS) or "(?!)",
    seed=r"\d+",


def trial_pools():
    """Every trial pool of every task of the study."""
    return expand("results/trials/{pool}/{task}.parquet", pool=POOLS, task=STUDY.tasks)


def repo_path(path):
    """A path from the config: the working directory's, else the repository's
    (instructnet.config.config_path, which check_config uses too)."""
    return config_path(path, workflow.basedir)


DERIVED_THRESHOLDS = config["trials"]["con_thresholds"] == "derived"


def con_thresholds(wildcards):
    """The threshold table is an input of the Con tasks' pools only: the shipped or a
    user's table, or ('derived') the one the con_thresholds rule derives."""
    if wildcards.task not in CON_TASKS:
        return []
    if DERIVED_THRESHOLDS:
        return "results/tasks/con_thresholds.parquet"
    return repo_path(config["trials"]["con_thresholds"])


def embeddings():
    """The embedding tables of every configured language model."""
    return expand(
        "results/embeddings/{lm}{suffix}.parquet",
        lm=config["language_models"],
        suffix=["", "_layers"],
    )


def train_settings(spec):
    """The training settings of a model (GPT language models: their own criterion)."""
    settings = dict(config["training"])
    settings.pop("packing", None)  # how jobs are grouped, not a training setting
    settings.pop("embedding_norm", None)  # part of the model spec
    gpt_threshold = settings.pop("threshold_gpt", None)
    if spec.gpt and gpt_threshold is not None:
        settings["threshold"] = gpt_threshold
    return settings


def trained_models():
    """model.pt of every configured holdout × model × seed."""
    return expand(
        "results/models/{holdout}/{model}/seed{seed}/model.pt",
        holdout=config["holdouts"],
        model=MODELS,
        seed=SEEDS,
    )


# Cluster resources (read by the SLURM profile, profiles/slurm; local runs ignore
# mem_mb and runtime). Memory in MB and wall time in minutes per job, scaled by what the
# job holds: a model's training data and network are small (a paper-sized CPU job peaks
# at ~0.7 GB), so only jobs that load a language model grow with it: `embed`, and
# training/evaluation of `_tuned` models (the LM sits in the training loop). "Large"
# LMs are those whose source names xl/large (GPT-2 XL 1.5 B, BERT-large 340 M
# parameters). Each retry (`attempt` 2, 3, …) asks for proportionally more, so a job
# killed for time or memory gets more on its next try.
JOB_MEM_MB = {"base": 4000, "tuned": 12000, "tuned_large": 32000,
              "embed": 8000, "embed_large": 24000, "embed_bow": 2000}
JOB_RUNTIME_MIN = {"train": 480, "train_tuned": 720, "train_tuned_large": 1440,
                   "evaluate": 60, "evaluate_tuned": 120, "evaluate_tuned_large": 240,
                   "embed": 30, "embed_large": 60, "con_thresholds": 60,
                   # analyses and language production (paper scale, one GPU)
                   "representations": 60, "units": 60, "decoder": 720,
                   "motor_feedback": 720, "partner_eval": 60}


def stage_resources(stage):
    """mem_mb / runtime callables for a compute rule of the analysis and production
    stages (base memory; runtime from JOB_RUNTIME_MIN; both grow with each retry)."""
    return {
        "mem_mb": lambda wildcards, attempt: JOB_MEM_MB["base"] * attempt,
        "runtime": lambda wildcards, attempt: JOB_RUNTIME_MIN[stage] * attempt,
    }


def lm_is_large(lm):
    """Whether a language model is one of the big ones (GPT-2 XL, *-large)."""
    source = (LANGUAGE_MODELS[lm].source or "").lower()
    return "xl" in source or "large" in source or lm.endswith("_l")


def _model_class(wildcards):
    """"" for models that never load their language model, else "tuned"/"tuned_large"."""
    spec = MODEL_SPECS[wildcards.model]
    if not spec.tuned:
        return ""
    return "tuned_large" if lm_is_large(spec.lm) else "tuned"


def job_mem_mb(wildcards, attempt):
    """Memory of a train/evaluate job (model from the wildcards)."""
    return JOB_MEM_MB[_model_class(wildcards) or "base"] * attempt


def train_runtime(wildcards, attempt):
    cls = _model_class(wildcards)
    return JOB_RUNTIME_MIN["train" + (f"_{cls}" if cls else "")] * attempt


def evaluate_runtime(wildcards, attempt):
    cls = _model_class(wildcards)
    return JOB_RUNTIME_MIN["evaluate" + (f"_{cls}" if cls else "")] * attempt


def embed_mem_mb(wildcards, attempt):
    if LANGUAGE_MODELS[wildcards.lm].kind == "bow":
        return JOB_MEM_MB["embed_bow"] * attempt
    return JOB_MEM_MB["embed_large" if lm_is_large(wildcards.lm) else "embed"] * attempt


def embed_runtime(wildcards, attempt):
    return JOB_RUNTIME_MIN["embed_large" if lm_is_large(wildcards.lm) else "embed"] * attempt
