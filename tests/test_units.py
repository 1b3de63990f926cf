"""Single-unit analyses (Figure 4) on a tiny model, and their figures."""

import math

import numpy as np
import pytest
import torch

from instructnet.analysis.units import (
    SELECTION,
    circular_difference,
    direction_tuning,
    rotate_to_stim1,
    task_variance_clusters,
    unit_analyses,
)
from instructnet.tasks import TASKS, TrialBatch, generate_trials


def test_direction_tuning_finds_the_preferred_direction():
    rng = np.random.default_rng(0)
    dirs = rng.uniform(0, 2 * math.pi, 400)
    pref = np.array([0.5, 3.0, 5.5])
    resp = np.exp(np.cos(dirs[:, None] - pref[None, :]))  # von Mises-like units
    curve, centres, found, strength, depth = direction_tuning(resp, dirs, n_bins=16)
    assert curve.shape == (16, 3) and len(centres) == 16
    assert np.abs(circular_difference(found, pref)).max() < 0.1
    assert (strength > 0.2).all() and (depth > 1.5).all()
    flat = direction_tuning(np.ones((400, 1)), dirs, 16)
    assert flat[3][0] < 1e-6 and flat[4][0] == 0


def test_circular_difference_wraps():
    assert circular_difference(0.1, 2 * math.pi - 0.1) == pytest.approx(0.2)
    assert abs(circular_difference(math.pi, 0.0)) == pytest.approx(math.pi)


def test_rotation_puts_stimulus_one_at_zero_and_keeps_the_answer():
    frame = generate_trials("DM", 20, seed=0)
    trials = TrialBatch.from_frame(frame)
    rot = rotate_to_stim1(trials)
    present = (rot.slot_off > rot.slot_on)
    first = torch.argmax(present.int(), dim=1)
    assert torch.allclose(rot.slot_dir[torch.arange(20), first], torch.zeros(20), atol=1e-6)
    # the target stays on the same stimulus: its offset from stimulus 1 is unchanged
    before = torch.remainder(trials.target_dir - trials.slot_dir[torch.arange(20), first], 2 * math.pi)
    assert torch.allclose(before, rot.target_dir, atol=1e-5)


def test_task_variance_clusters_recover_planted_groups():
    rng = np.random.default_rng(0)
    tasks = [f"T{i}" for i in range(6)]
    # units 0-9 vary in the first three tasks, 10-19 in the last three; 20 is silent
    tv = {t: np.r_[np.full(10, 1.0 if i < 3 else 0.05), np.full(10, 0.05 if i < 3 else 1.0), 0.0]
          + 0.01 * rng.random(21) * (np.arange(21) < 20) for i, t in enumerate(tasks)}
    out = task_variance_clusters(tv, max_clusters=5)
    assert set(out["unit"]) == set(range(20))  # the silent unit is left out
    per_unit = out.groupby("unit")["cluster"].first()
    assert per_unit.iloc[:10].nunique() == 1 and per_unit.iloc[10:].nunique() == 1
    assert per_unit.iloc[0] != per_unit.iloc[10]
    assert out["normalised"].max() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def analysed():
    from instructnet.embeddings import BUILTIN_MODELS
    from instructnet.models.network import build_model
    from instructnet.models.spec import model_spec

    model = build_model(model_spec("structurenet", BUILTIN_MODELS), seed=1, hidden=24)
    frames = {t: generate_trials(t, 24, seed=i) for i, t in enumerate(TASKS)}
    return unit_analyses(model, frames, None, n_trials=24, seed=3, n_bins=6, max_clusters=4)


def test_unit_analyses_on_a_tiny_model(analysed):
    stats, curves, variance = analysed
    assert set(stats["analysis"]) == {"go", "matching", "dm", "comp"}
    go = stats[(stats["analysis"] == "go") & (stats["task"] == "Go")]
    assert set(go["statistic"]) == {"preferred", "vector_strength", "depth", "mean"}
    assert len(go[go["statistic"] == "depth"]) == 24  # every unit
    # the illustrated units follow their stated criteria
    go_stats = stats[stats["analysis"] == "go"]

    def value(task, statistic):
        return go_stats[(go_stats["task"] == task) & (go_stats["statistic"] == statistic)]["value"].to_numpy()

    tuned = np.minimum(*(value(t, "depth") * value(t, "vector_strength") for t in ("Go", "AntiGo")))
    crit = tuned * (1 - np.cos(value("AntiGo-Go", "preferred_shift"))) / 2
    go_unit = int(curves.loc[curves["analysis"] == "go", "unit"].iat[0])
    assert go_unit == int(np.argmax(crit))
    r = stats[(stats["analysis"] == "dm") & (stats["statistic"] == "pearson_r")]
    crit = np.nanmean([np.abs(r[r["task"] == t]["value"].to_numpy()) for t in ("DM", "AntiDM")], 0)
    assert int(curves.loc[curves["analysis"] == "dm", "unit"].iat[0]) == int(np.nanargmax(crit))
    for analysis in ("go", "matching", "dm", "comp"):
        c = curves[curves["analysis"] == analysis]
        assert c["unit"].nunique() == 1 and set(c["selection"]) == {SELECTION[analysis]}
    assert set(curves.loc[curves["analysis"] == "matching", "condition"]) == {"match", "non-match"}
    assert len(curves[(curves["analysis"] == "go") & (curves["task"] == "AntiGo")]) == 6  # bins
    shift = stats[stats["task"] == "AntiGo-Go"]["value"]
    assert len(shift) == 24 and (shift.abs() <= math.pi + 1e-9).all()
    assert set(variance["task"]) == set(TASKS)
    assert variance.groupby("unit")["normalised"].max().round(9).eq(1.0).all()


def test_figure_4_panels_draw_from_the_tables(analysed, tmp_path):
    from instructnet.figures import fig4

    stats, curves, variance = analysed
    outs = [
        fig4.fig4a_go_tuning(curves, stats, tmp_path / "a.png", "structurenet", {"AntiGo"}),
        fig4.fig4b_matching(curves, tmp_path / "b.png", "structurenet"),
        fig4.fig4c_dm_contrast(curves, tmp_path / "c.png", "structurenet"),
        fig4.fig4d_comp(curves, tmp_path / "d.png", "structurenet"),
        fig4.supp_task_variance(variance, tmp_path / "tv.png", "structurenet"),
        fig4.fig4b_matching(curves.iloc[:0], tmp_path / "empty.png"),
    ]
    for png in outs:
        assert png.read_bytes()[:4] == b"\x89PNG" and png.with_suffix(".pdf").exists()


def test_go_example_is_a_tuned_unit_whose_preference_flips():
    from instructnet.analysis.units import go_example_unit

    # unit 0: deep, unimodal, same preference in Go and AntiGo (codes the stimulus)
    # unit 1: deep but bimodal (low vector strength), flips
    # unit 2: unimodal, flips by π (codes the response): the paper's Figure 4a unit
    # unit 3: flips by π but barely tuned in AntiGo
    go = {"preferred": np.array([1.0, 1.0, 1.0, 1.0]), "depth": np.array([9.0, 9.0, 4.0, 4.0]),
          "vector_strength": np.array([0.8, 0.05, 0.6, 0.6])}
    anti = {"preferred": np.array([1.0, 1.0 + np.pi, 1.0 + np.pi, 1.0 + np.pi]),
            "depth": np.array([9.0, 9.0, 4.0, 0.2]),
            "vector_strength": np.array([0.8, 0.05, 0.6, 0.6])}
    unit, shift = go_example_unit({"Go": go, "AntiGo": anti})
    assert unit == 2
    np.testing.assert_allclose(np.abs(shift), [0, np.pi, np.pi, np.pi], atol=1e-12)
