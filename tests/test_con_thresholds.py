"""The ConDM/ConAntiDM threshold stage: probe trials, sweep and frontier."""

import numpy as np
import pandas as pd
import pytest

from instructnet.embeddings import language_models
from instructnet.models import build_model, model_spec
from instructnet.tasks import ConThresholds, generate_trials
from instructnet.tasks.generate import decision_probe_trials
from instructnet.training.con_thresholds import frontier, sweep


def test_probe_trials_have_the_asked_noise_and_contrast():
    df = decision_probe_trials("AntiDM", 0.4, 0.1, 64, seed=0)
    assert df["response"].all() and np.allclose(df["sigma"], 0.4)
    assert np.allclose(df["contrast"].abs(), 0.1)
    assert (df["go_on"] == 130).all()
    s1 = df[["m1_s1_str", "m2_s1_str"]].max(axis=1).to_numpy()
    s2 = df[["m1_s2_str", "m2_s2_str"]].max(axis=1).to_numpy()
    d1 = df[["m1_s1_dir", "m2_s1_dir"]].max(axis=1).to_numpy()
    d2 = df[["m1_s2_dir", "m2_s2_dir"]].max(axis=1).to_numpy()
    np.testing.assert_allclose(df["target_dir"], np.where(s1 < s2, d1, d2))  # Anti: weaker


def synthetic_sweep(thresholds):
    rows = []
    for task, thr in thresholds.items():
        for noise, t in thr.items():
            for c in (0.02, 0.05, 0.1, 0.15, 0.2, 0.25):
                rows.append({"task": task, "noise": noise, "contrast": c,
                             "accuracy": 0.99 if c >= t else 0.6})
    return pd.DataFrame(rows)


def test_frontier_is_the_smallest_contrast_from_which_all_pass():
    table = synthetic_sweep({"ConDM": {0.1: 0.05, 0.5: 0.15}, "ConAntiDM": {0.1: 0.1, 0.5: 9}})
    # a dip above the frontier moves it up: 0.1 fails at noise 0.1 for ConDM
    dip = (table.task == "ConDM") & (table.noise == 0.1) & (table.contrast == 0.1)
    table.loc[dip, "accuracy"] = 0.9
    out = frontier(table).set_index(["task", "noise"])["threshold"]
    assert out[("ConDM", 0.1)] == 0.15 and out[("ConDM", 0.5)] == 0.15
    assert out[("ConAntiDM", 0.1)] == 0.1 and np.isinf(out[("ConAntiDM", 0.5)])
    # the derived table drives trial generation
    thresholds = ConThresholds(frontier(table).reset_index(drop=True))
    df = generate_trials("ConAntiDM", 200, 0, thresholds)
    assert np.allclose(df.loc[df["response"], "sigma"], 0.1)  # only noise 0.1 has a frontier


def test_untrained_model_gives_a_clear_error():
    table = synthetic_sweep({"ConDM": {0.1: 9, 0.5: 9}, "ConAntiDM": {0.1: 0.1}})
    with pytest.raises(ValueError, match="never 95% correct on DM"):
        frontier(table)


def test_sweep_runs_the_model_on_every_cell():
    model = build_model(model_spec("simplenet", language_models()), 0, hidden=8)
    table = sweep(model, [0.1, 0.3], [0.05, 0.2], trials=16, seed=0)
    assert len(table) == 2 * 2 * 2
    assert set(table["probe"]) == {"DM", "AntiDM"}
    assert table["accuracy"].between(0, 1).all()
    again = sweep(model, [0.1, 0.3], [0.05, 0.2], trials=16, seed=0)
    pd.testing.assert_frame_equal(table, again)
