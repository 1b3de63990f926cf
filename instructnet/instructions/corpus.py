"""Loading and checking an instruction corpus (METHODS §4).

A corpus is a YAML file (format: ``instructnet/data/instructions.schema.json``)::

    version: 1
    tasks:
      Go:
        train: [sentence, ...]
        validation: [sentence, ...]
      ...

The shipped corpus has 15 train and 5 validation sentences for each of the 50 tasks;
a user corpus needs every task with at least one sentence in each split. Sentences
must be unique across the whole corpus after :func:`normalise` (which also keeps any
sentence out of both splits).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from ..tasks import TASKS
from .text import normalise, words

SPLITS: tuple[str, ...] = ("train", "validation")
COLUMNS: dict[str, str] = {
    "task": "string",
    "split": "string",
    "sentence_id": "int64",
    "text": "string",
}
_MAX_SCHEMA_ERRORS = 5


class CorpusError(ValueError):
    """An instruction corpus file that is unreadable, malformed or breaks a rule."""


def shipped_path() -> Path:
    """Path of the instruction corpus shipped with the package."""
    return Path(str(resources.files("instructnet") / "data" / "instructions.yaml"))


def schema() -> dict:
    """The JSON schema of the corpus format."""
    ref = resources.files("instructnet") / "data" / "instructions.schema.json"
    return json.loads(ref.read_text(encoding="utf-8"))


def load_corpus(path: str | Path | None = None) -> pd.DataFrame:
    """Read and check an instruction corpus; ``path=None`` reads the shipped one.

    Returns one row per sentence with columns ``task``, ``split`` ('train' or
    'validation'), ``sentence_id`` (0-based within task and split) and ``text``, in
    canonical task order (``instructnet.tasks.TASKS``), train before validation.
    Raises :class:`CorpusError` naming the file (and task and sentence where there
    is one) for any problem.
    """
    path = shipped_path() if path is None else Path(path)
    data = _read_yaml(path)
    _check_schema(data, path)
    tasks = data["tasks"]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise CorpusError(
            f"instruction corpus {path} names unknown tasks: {', '.join(unknown)} "
            "(expected the 50 task names of instructnet.tasks.TASKS)"
        )
    missing = [t for t in TASKS if t not in tasks]
    if missing:
        raise CorpusError(
            f"instruction corpus {path} lacks tasks: {', '.join(missing)} "
            "(every one of the 50 tasks needs train and validation sentences)"
        )
    rows = [
        (task, split, i, text)
        for task in TASKS
        for split in SPLITS
        for i, text in enumerate(tasks[task][split])
    ]
    _check_sentences(rows, path)
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)


def _read_yaml(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"instruction corpus {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read instruction corpus {path}: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CorpusError(f"instruction corpus {path} is not valid YAML: {exc}") from exc


def _check_schema(data, path: Path) -> None:
    # imported here: importing the package (e.g. for training or evaluation, which never
    # load the corpus) must not need jsonschema
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
    if errors:
        details = "; ".join(
            f"at {_location(e.path)}: {e.message}" for e in errors[:_MAX_SCHEMA_ERRORS]
        )
        more = len(errors) - _MAX_SCHEMA_ERRORS
        suffix = f" (and {more} more)" if more > 0 else ""
        raise CorpusError(
            f"instruction corpus {path} does not match the format of "
            f"instructions.schema.json: {details}{suffix}"
        )


def _location(parts) -> str:
    """``tasks.Go.train[3]`` style location of a schema error."""
    out = "(top level)" if not parts else ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _check_sentences(rows, path: Path) -> None:
    seen: dict[str, tuple[str, str, str]] = {}
    for task, split, i, text in rows:
        where = f"instruction corpus {path}, task {task} ({split} sentence {i})"
        if not words(text):
            raise CorpusError(f"{where}: sentence {text!r} has no words")
        key = normalise(text)
        if key in seen:
            other_task, other_split, other_text = seen[key]
            if other_task == task and other_split != split:
                raise CorpusError(
                    f"{where}: sentence {text!r} is in both the train and validation "
                    f"splits of task {task}"
                )
            raise CorpusError(
                f"{where}: sentence {text!r} duplicates {other_text!r} of task "
                f"{other_task} ({other_split}); sentences must be unique across the "
                "corpus (ignoring case, punctuation and spacing)"
            )
        seen[key] = (task, split, text)
