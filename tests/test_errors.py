"""Bad input fails with one clear error that names the thing."""

import pytest

from instructnet.config import ConfigError, check_config
from instructnet.tasks import (
    ConThresholds,
    ThresholdTableError,
    TrialCountError,
    TrialTableError,
    UnknownHoldoutError,
    UnknownTaskError,
    generate_trials,
    held_out,
    read_trials,
    write_trials,
)


def test_unknown_task():
    with pytest.raises(UnknownTaskError, match="'AntiDMMod3'"):
        generate_trials("AntiDMMod3", 10, 0)


def test_unknown_holdout():
    with pytest.raises(UnknownHoldoutError, match="'swap10'"):
        held_out("swap10")


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_non_positive_trial_count(n):
    with pytest.raises(TrialCountError, match="DM"):
        generate_trials("DM", n, 0)


@pytest.mark.parametrize(
    "content, message",
    [
        ("task,noise\nConDM,0.1\n", "missing columns threshold"),
        ("task,noise,threshold\nConDM,abc,0.1\nConAntiDM,0.1,0.1\n", "non-numeric"),
        ("task,noise,threshold\nConDM,0.1,0.1\n", "no rows for task ConAntiDM"),
        ("task,noise,threshold\nConDM,0.1,9\nConAntiDM,0.1,0.1\n", "ConDM frontier"),
        ("task,noise,threshold\nConDM,-0.1,0.1\nConAntiDM,0.1,0.1\n", "positive"),
    ],
)
def test_malformed_threshold_table(tmp_path, content, message):
    path = tmp_path / "thr.csv"
    path.write_text(content)
    with pytest.raises(ThresholdTableError, match=message) as err:
        ConThresholds.read(path)
    assert str(path) in str(err.value)


def test_missing_threshold_table(tmp_path):
    with pytest.raises(ThresholdTableError, match="does not exist"):
        ConThresholds.read(tmp_path / "nope.csv")


def test_truncated_parquet(tmp_path):
    path = tmp_path / "DM.parquet"
    write_trials(generate_trials("DM", 100, 0), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(TrialTableError, match="DM.parquet"):
        read_trials(path)


def test_parquet_that_is_not_a_trial_table(tmp_path):
    import pandas as pd

    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(TrialTableError, match="lacks columns"):
        read_trials(path)


def base_config(**over):
    cfg = {
        "seed": 1,
        "trials": {"pools": {"train": 10, "eval": 5}, "con_thresholds": "x.csv"},
        "holdouts": ["swap9"],
        "custom_holdouts": {},
        "instructions": "instructions.yaml",
        "language_models": [],
        "figures": {"task_examples": ["Go"]},
    }
    cfg.update(over)
    return cfg


def test_config_checks_name_the_culprit():
    check_config(base_config())
    with pytest.raises(ConfigError, match="'swapp9'"):
        check_config(base_config(holdouts=["swapp9"]))
    with pytest.raises(ConfigError, match="'Gogo'"):
        check_config(base_config(figures={"task_examples": ["Gogo"]}))
    with pytest.raises(ConfigError, match="mine.*'Foo'"):
        check_config(base_config(custom_holdouts={"mine": ["Go", "Foo"]}, holdouts=["mine"]))
    with pytest.raises(ConfigError, match="trials.pools.eval"):
        check_config(base_config(trials={"pools": {"train": 10, "eval": 0}, "con_thresholds": "x.csv"}))
    with pytest.raises(ConfigError, match="shadow"):
        check_config(base_config(custom_holdouts={"swap1": ["Go"]}))
    # analysis trial counts: unset ones follow the eval pool, explicit ones must fit it
    assert check_config(base_config())["analysis"]["trials"] == 5
    with pytest.raises(ConfigError, match=r"analysis.trials \(250\)"):
        check_config(base_config(analysis={"trials": 250}))
    with pytest.raises(ConfigError, match=r"analysis.units.trials \(99\)"):
        check_config(base_config(analysis={"units": {"trials": 99}}))
    # ... but not when the stage is off
    check_config(base_config(analysis={"enabled": False, "trials": 250}))
