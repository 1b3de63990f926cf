"""Semantic checks of a workflow config (after the JSON schema in workflow/schemas/).

The schema checks types and ranges; this module checks names against the task list,
the study's task set (``tasks``; :mod:`instructnet.tasks.study`) and the holdout
registry so that a typo fails at once with a message naming it.
"""

from __future__ import annotations

from collections.abc import Mapping

from .embeddings.registry import language_models
from .models.spec import model_spec
from .tasks import Study
from .tasks.stimulus import Stimulus
from .tasks.generate import TrialCountError


DEFAULT_CONFIG = "config/config.yaml"


def config_label(paths, workdir, repo) -> str:
    """How outputs name the config files of a run: each file once (Snakefile's
    ``configfile:`` and ``--configfile`` often name the same one), relative to the
    working directory, else to the repository, else absolute; so that the same config
    gives the same label, and so the same bytes, whatever the command line spelled."""
    from pathlib import Path

    workdir, repo = Path(workdir).resolve(), Path(repo).resolve()
    names: list[str] = []
    for p in paths:
        path = Path(workdir, p).resolve()
        for base in (workdir, repo):
            if path.is_relative_to(base):
                name = path.relative_to(base).as_posix()
                break
        else:
            name = path.as_posix()
        if name not in names:
            names.append(name)
    # the Snakefile's own configfile is the base every other file overlays: name it first,
    # whichever order Snakemake lists them in
    names.sort(key=lambda n: n != DEFAULT_CONFIG)
    return ", ".join(names) or DEFAULT_CONFIG


class ConfigError(ValueError):
    """A config value that names something that does not exist or is out of range."""


def check_config(config: Mapping) -> Mapping:
    """Raise ConfigError (naming the key) if ``config`` refers to unknown things."""
    try:
        study = Study.from_config(config)  # the task set and the custom holdout groups
        Stimulus.from_config(config["trials"])  # convention and tuning width
        for name in config.get("holdouts", []):
            study.held_out(name, "holdouts")
        for pool, n in config["trials"]["pools"].items():
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                raise TrialCountError(f"trials.pools.{pool} must be a positive integer, got {n!r}")
        if (config.get("figures") or {}).get("task_examples") is not None:
            study.task_examples(config["figures"]["task_examples"])
        if config["trials"].get("con_thresholds") == "derived" and study.con_tasks:
            study.check_con_derivation()
        registry = language_models(config.get("language_model_registry"))
        for name in config.get("language_models", []):
            if name not in registry:
                raise ValueError(
                    f"unknown language model {name!r} in language_models; known: "
                    f"{', '.join(sorted(registry))} (add others under language_model_registry)"
                )
        for name in config.get("models", []):
            spec = model_spec(name, registry, (config.get("training") or {}).get("embedding_norm", "none"))
            if spec.instructed and spec.lm not in config.get("language_models", []):
                raise ValueError(
                    f"model {name!r} needs language model {spec.lm!r} in language_models"
                )
        if "training" in config:
            from .training.loop import TrainConfig
            from .training.run import TuningConfig

            # training.packing groups jobs (instructnet.training.packed); not a setting
            TrainConfig.from_mapping({k: v for k, v in config["training"].items() if k != "packing"})
            TuningConfig(**(config.get("tuning") or {}))
        _check_analysis(config, study, registry)
    except ValueError as exc:
        raise ConfigError(f"invalid config: {exc}") from exc
    return config


def _check_analysis(config: Mapping, study: Study, registry) -> None:
    """The analysis section (Figures 3, 4): holdouts and model exist and fit the study,
    enough trials."""
    analysis = config.get("analysis") or {}
    # unset trial counts default to min(250 or 128, the eval pool): only explicit
    # values can exceed the pool
    n, pool = analysis.get("trials"), config["trials"]["pools"]["eval"]
    if n is not None and n > pool:
        raise ValueError(f"analysis.trials ({n}) exceeds trials.pools.eval ({pool})")
    units = analysis.get("units") or {}
    if units.get("trials") is not None and units["trials"] > pool:
        raise ValueError(f"analysis.units.trials ({units['trials']}) exceeds trials.pools.eval ({pool})")
    for key, name in (("analysis.pca_holdout", analysis.get("pca_holdout")),
                      ("analysis.units.holdout", units.get("holdout"))):
        if name is not None:
            study.held_out(name, key)
    if units.get("model") is not None:
        model_spec(units["model"], registry)
