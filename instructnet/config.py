"""Checks of a workflow config, run by the Snakefile before any job (and by
``python -m instructnet check-config``).

:func:`check_config` applies the JSON schema in workflow/schemas/ (unknown keys fail
with the closest valid key; the schema's defaults fill in what a config leaves out and
are the only home of those defaults), then checks names against the task list, the
study's task set (``tasks``; :mod:`instructnet.tasks.study`) and the holdout registry,
and that the files the config names exist. Each failure is one short
:class:`ConfigError` naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import os
import reprlib
from collections.abc import Mapping
from pathlib import Path

import yaml

from .embeddings.registry import language_models
from .models.spec import UnknownModelError, model_spec
from .tasks import Study
from .tasks.stimulus import Stimulus

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "workflow/schemas/config.schema.yaml"
DEFAULT_CONFIG = "config/config.yaml"


def config_label(paths, workdir, repo) -> str:
    """How outputs name the config files of a run: each file once (Snakefile's
    ``configfile:`` and ``--configfile`` often name the same one), relative to the
    working directory, else to the repository, else absolute; so that the same config
    gives the same label, and so the same bytes, whatever the command line spelled."""
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


def config_path(path, repo=REPO, workdir=".") -> str:
    """A path from the config: relative to the working directory if it exists there,
    else relative to the repository (so shipped data files work with --directory)."""
    if os.path.isabs(path) or os.path.exists(os.path.join(workdir, path)):
        return path
    return os.path.join(repo, path)


class ConfigError(ValueError):
    """A config value that names something that does not exist or is out of range."""


def read_yaml(path) -> dict:
    """A config file's mapping; ConfigError with file:line:column for a YAML error."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark:
            problem += f" ({context} at line {cmark.line + 1})"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, got "
                          f"{_short(data)}")
    return data


def merge(config: dict, overlay: Mapping) -> dict:
    """``overlay`` on ``config`` in place, as Snakemake merges config files: mappings
    key by key, everything else replaced."""
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            merge(config[key], value)
        else:
            config[key] = copy.deepcopy(value)
    return config


def check_config(config: dict, workdir=None, repo=REPO) -> dict:
    """Check ``config`` and fill in its defaults, in place; raise one ConfigError naming
    the key if something is wrong. The files it names are checked when ``workdir`` (the
    run's working directory) is given: relative paths there, else under ``repo``."""
    try:
        schema = _schema(repo)
        given = copy.deepcopy(config)
        _unknown_keys(config, schema)
        _validate(config, schema)
        _derived_defaults(config)
        _check_names(config, given)
        if workdir is not None:
            _check_files(config, workdir, repo)
    except ValueError as exc:
        error = ConfigError(f"invalid config: {exc}")
    else:
        return config
    raise error  # outside the except: no chained traceback, Snakemake prints a short one


def _schema(repo) -> dict:
    with open(Path(repo, SCHEMA), encoding="utf-8") as f:
        return yaml.safe_load(f)


def _key(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60


def _short(value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return _repr.repr(value)


def _unknown_keys(value, schema, path=()) -> None:
    """ConfigError for the first key of ``value`` that ``schema`` does not allow."""
    if not isinstance(value, Mapping) or not isinstance(schema, Mapping):
        return
    known = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in known:
            _unknown_keys(item, known[key], (*path, key))
        elif extra is False:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean {_key((*path, close[0]))}?" if close else ""
            raise ConfigError(f"{_key((*path, key))}: unknown key{hint} "
                              f"({_key(path) or 'the top level'} takes: {', '.join(known)})")
        else:
            _unknown_keys(item, extra, (*path, key))


def _validate(config: dict, schema: dict) -> None:
    """The schema's checks, filling in its defaults (as snakemake.utils.validate does);
    ConfigError for the most relevant failure."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import relevance

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties(validator, props, instance, subschema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, subschema)

    filling = validators.extend(Draft202012Validator, {"properties": properties})
    errors = list(filling(schema).iter_errors(config))
    if errors:
        raise ConfigError(_schema_message(max(errors, key=relevance)))


_TYPES = {"integer": "an integer", "number": "a number", "string": "a string",
          "boolean": "true or false", "null": "null", "array": "a list", "object": "a mapping"}


def _schema_message(error) -> str:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"{_key([*path, missing])}: required key is missing"
    where = _key(path) or "the config"
    if error.validator == "contains":
        return f"{where}: {_short(error.instance)} must include {_expected(error.validator_value)}"
    if error.validator not in ("type", "enum", "const", "oneOf", "anyOf"):
        return f"{where}: {error.message}"
    message = f"{where}: {_short(error.instance)} is not allowed; expected {_expected(error.schema)}"
    if error.instance is None and "enabled" in error.schema.get("properties", {}):
        message += f" (to switch the stage off: {where}: {{enabled: false}})"
    return message


def _expected(schema: Mapping) -> str:
    """What a schema allows, in words."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_expected(s) for s in schema[key])
    types = schema.get("type", [])
    words = []
    for t in [types] if isinstance(types, str) else types:
        word = _TYPES.get(t, t)
        if t == "array" and "items" in schema:
            word += f" (each {_expected(schema['items'])})"
        if t in ("integer", "number"):
            for bound, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<=")):
                if bound in schema:
                    word += f" {sign} {schema[bound]}"
        words.append(word)
    return " or ".join(words) or "something else"


def _derived_defaults(config: dict) -> None:
    """Defaults that depend on other keys, which the schema cannot state: unset analysis
    trial counts follow the eval pool."""
    pool, analysis = config["trials"]["pools"]["eval"], config["analysis"]
    if analysis["trials"] is None:
        analysis["trials"] = min(250, pool)
    if analysis["units"]["trials"] is None:
        analysis["units"]["trials"] = min(128, pool)


def _given(config: Mapping, *keys) -> bool:
    """Whether the config as written sets ``keys`` (not a schema default)."""
    for key in keys:
        if not isinstance(config, Mapping) or key not in config:
            return False
        config = config[key]
    return True


def _check_names(config: Mapping, given: Mapping) -> None:
    """Names against the task list, the study and the registries; cross-key checks."""
    from .production.run import check_production_config
    from .training.loop import TrainConfig
    from .training.run import TuningConfig

    study = Study.from_config(config)  # the task set and the custom holdout groups
    Stimulus.from_config(config["trials"])  # trials.convention and trials.tuning
    for name in config["holdouts"]:
        study.held_out(name, "holdouts")
    if config["figures"]["task_examples"] is not None:
        study.task_examples(config["figures"]["task_examples"])
    if config["trials"]["con_thresholds"] == "derived" and study.con_tasks:
        study.check_con_derivation()
    registry = language_models(config["language_model_registry"])
    for name in config["language_models"]:
        if name not in registry:
            raise ValueError(
                f"unknown language model {name!r} in language_models; known: "
                f"{', '.join(sorted(registry))} (add others under language_model_registry)"
            )
    for name in config["models"]:
        spec = _model(name, "models", registry, config["training"]["embedding_norm"])
        if spec.instructed and spec.lm not in config["language_models"]:
            raise ValueError(
                f"model {name!r} needs language model {spec.lm!r} in language_models"
            )
    # training.packing groups jobs (instructnet.training.packed); not a setting
    TrainConfig.from_mapping({k: v for k, v in config["training"].items() if k != "packing"})
    TuningConfig(**config["tuning"])
    if config["analysis"]["enabled"]:
        _check_analysis(config, given, study, registry)
    check_production_config(config, registry)


def _check_analysis(config: Mapping, given: Mapping, study: Study, registry) -> None:
    """The analysis section (Figures 3, 4): holdouts and model exist and fit the study,
    enough trials."""
    analysis, pool = config["analysis"], config["trials"]["pools"]["eval"]
    units = analysis["units"]
    for key, n in (("analysis.trials", analysis["trials"]),
                   ("analysis.units.trials", units["trials"])):
        if n > pool:
            raise ValueError(f"{key} ({n}) exceeds trials.pools.eval ({pool})")
    # a default group outside the study is no mistake: its panels are left out
    for keys, name in ((("analysis", "pca_holdout"), analysis["pca_holdout"]),
                       (("analysis", "units", "holdout"), units["holdout"])):
        if _given(given, *keys):
            study.held_out(name, ".".join(keys))
    if units["model"] is not None:
        _model(units["model"], "analysis.units.model", registry)


def _model(name, key, *args):
    try:
        return model_spec(name, *args)
    except UnknownModelError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _check_files(config: Mapping, workdir, repo) -> None:
    """The files and folders the config names exist."""
    from .embeddings.lm import LanguageModelUnavailable, resolve_source

    files = [("instructions", config["instructions"])]
    if config["trials"]["con_thresholds"] != "derived":
        files.append(("trials.con_thresholds", config["trials"]["con_thresholds"]))
    for key, path in files:
        if not os.path.isfile(os.path.join(workdir, config_path(path, repo, workdir))):
            where = "" if os.path.isabs(path) else f" (looked in {workdir} and {repo})"
            raise ValueError(f"{key}: file {path!r} does not exist{where}")
    registry = language_models(config["language_model_registry"])
    for name in config["language_model_registry"]:
        model = registry[name]
        if model.kind == "bow" or model.source is None:
            continue
        try:
            resolve_source(model)  # a local folder must exist; a hub id is not fetched here
        except LanguageModelUnavailable:
            raise ValueError(
                f"language_model_registry.{name}.source: {model.source!r} is neither an "
                "existing folder (relative paths: from the working directory) nor an "
                "installed package"
            ) from None
