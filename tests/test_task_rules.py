"""The task rules of METHODS §2, checked on the latents of generated trials (hypothesis)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructnet.tasks import FAMILIES, N_STEPS, generate_trials
from instructnet.tasks.schema import SLOTS

PI = math.pi
seeds = st.integers(min_value=0, max_value=2**32 - 1)
N = 128
SETTINGS = settings(max_examples=15, deadline=None)


def latents(df):
    """dir, str, on, off as (n, modality, stimulus) arrays, NaN where absent."""
    out = {}
    for kind in ("dir", "str", "on", "off"):
        cols = [df[f"{s}_{kind}"].to_numpy(dtype=float, na_value=np.nan) for s in SLOTS]
        out[kind] = np.stack(cols, 1).reshape(len(df), 2, 2)
    return out


def circ(a, b):
    d = np.mod(a - b, 2 * PI)
    return np.minimum(d, 2 * PI - d)


def present_modality(lat):
    """Index of the single modality holding stimuli (single-modality tasks)."""
    shown = ~np.isnan(lat["str"][:, :, 0])
    assert (shown.sum(1) == 1).all()
    return shown.argmax(1)


def single(lat, kind):
    m = present_modality(lat)
    return lat[kind][np.arange(len(m)), m]  # (n, stimulus)


def durations(lat):
    return lat["off"] - lat["on"]


def target(df):
    return df["target_dir"].to_numpy(dtype=float, na_value=np.nan)


def resp(df):
    return df["response"].to_numpy()


@SETTINGS
@given(seeds)
def test_go_family(seed):
    for task in FAMILIES["Go"]:
        df = generate_trials(task, N, seed)
        lat = latents(df)
        anti = task.startswith("Anti")
        if "Mod" in task:
            m = int(task[-1]) - 1
            shown = lat["dir"][:, m, 0]
            sep = circ(lat["dir"][:, 0, 0], lat["dir"][:, 1, 0])
            assert (sep >= PI / 4 - 1e-9).all() and (sep <= 3 * PI / 4 + 1e-9).all()
        else:
            shown = single(lat, "dir")[:, 0]
        expected = shown + PI if anti else shown
        assert np.allclose(circ(target(df), expected), 0, atol=1e-9), task
        rt = "RT" in task
        on = np.nanmin(lat["on"].reshape(N, -1), 1)
        if rt:  # stimuli only in the go epoch, fixation never released
            assert (on == df["go_on"]).all() and (df["fix_off"] == N_STEPS).all()
        else:
            assert (on == df["stim1_on"]).all() and (df["fix_off"] == df["go_on"]).all()


@SETTINGS
@given(seeds)
def test_dm_targets_stronger_or_weaker(seed):
    for task, anti in (("DM", False), ("AntiDM", True)):
        df = generate_trials(task, N, seed)
        lat = latents(df)
        s, d = single(lat, "str"), single(lat, "dir")
        pick = s.argmin(1) if anti else s.argmax(1)
        assert np.allclose(circ(target(df), d[np.arange(N), pick]), 0)
        sep = circ(d[:, 0], d[:, 1])
        assert (sep > 0.4 * PI - 1e-9).all() and (sep < 0.8 * PI + 1e-9).all()
        assert set(np.round(np.abs(s[:, 0] - s[:, 1]) / 2, 6)) <= {0.1, 0.15, 0.175}


@SETTINGS
@given(seeds)
def test_mod_tasks_use_the_named_modality(seed):
    for task in ("DMMod1", "AntiDMMod1", "DMMod2", "AntiDMMod2"):
        df = generate_trials(task, N, seed)
        lat = latents(df)
        m = 1 if task.endswith("Mod1") else 2
        s = lat["str"][:, m - 1]
        pick = s.argmin(1) if task.startswith("Anti") else s.argmax(1)
        assert np.allclose(circ(target(df), lat["dir"][np.arange(N), m - 1, pick]), 0)
        # the other modality shows the same directions
        assert np.allclose(lat["dir"][:, 0], lat["dir"][:, 1])


@SETTINGS
@given(seeds)
def test_comp_response_rules(seed):
    for task in FAMILIES["COMP"]:
        df = generate_trials(task, N, seed)
        lat = latents(df)
        which = int(task[task.index("COMP") + 4]) - 1
        if "Mod" in task:
            s = lat["str"][:, int(task[-1]) - 1]
        else:
            s = np.nansum(lat["str"], axis=1)
        wins = s[:, which] < s[:, 1 - which] if task.startswith("Anti") else s[:, which] > s[:, 1 - which]
        np.testing.assert_array_equal(resp(df), wins, err_msg=task)
        r = resp(df)
        stim_dir = lat["dir"][:, :, which]
        stim_dir = np.nanmax(stim_dir, axis=1)  # same direction in every shown modality
        assert np.allclose(circ(target(df)[r], stim_dir[r]), 0)
        # sequential: stim1 ends before stim2 starts
        assert (np.nanmax(lat["off"][:, :, 0], 1) < np.nanmin(lat["on"][:, :, 1], 1)).all()


@SETTINGS
@given(seeds)
def test_dur_response_rules(seed):
    for task in FAMILIES["Dur"]:
        df = generate_trials(task, N, seed)
        lat = latents(df)
        which = int(task[task.index("Dur") + 3]) - 1
        d = durations(lat)
        dur = d[:, int(task[-1]) - 1] if "Mod" in task else np.nansum(d, axis=1)
        if task.startswith("Anti"):
            wins = dur[:, which] < dur[:, 1 - which]
        else:
            wins = dur[:, which] > dur[:, 1 - which]
        np.testing.assert_array_equal(resp(df), wins, err_msg=task)
        assert (lat["on"][~np.isnan(lat["on"])] >= 0).all()
        assert (lat["off"][:, :, 1][~np.isnan(lat["off"][:, :, 1])] <= np.repeat(
            df["go_on"].to_numpy()[:, None], 2, 1)[~np.isnan(lat["off"][:, :, 1])]).all()
        if "Multi" not in task and "Mod" not in task:
            long = np.nanmax(single(lat, "off") - single(lat, "on"), 1)
            short = np.nanmin(single(lat, "off") - single(lat, "on"), 1)
            assert (long >= 35).all() and (long <= 49).all()
            assert (short >= 25).all() and (short <= long - 8).all()


@SETTINGS
@given(seeds)
def test_matching_rules(seed):
    for task in FAMILIES["Matching"]:
        df = generate_trials(task, N, seed)
        lat = latents(df)
        d = single(lat, "dir")
        if task in ("DMS", "DNMS"):
            same = circ(d[:, 0], d[:, 1]) < 1e-9
            assert (circ(d[~same, 0], d[~same, 1]) >= PI / 2 - 1e-9).all()
        else:
            cat = d >= PI
            same = cat[:, 0] == cat[:, 1]
            inner = np.mod(d[~same, 1], PI)  # a non-match lies ≥ π/5 inside its half
            assert (inner >= PI / 5 - 1e-9).all() and (inner <= PI - PI / 5 + 1e-9).all()
        expected = same if task in ("DMS", "DMC") else ~same
        np.testing.assert_array_equal(resp(df), expected, err_msg=task)
        r = resp(df)
        first = task in ("DMS", "DMC")
        assert np.allclose(circ(target(df)[r], d[r, 0 if first else 1]), 0)


@pytest.mark.parametrize(
    "task", ["MultiDM", "AntiMultiDM", "MultiCOMP1", "AntiMultiCOMP2", "MultiDur1", "AntiMultiDur2"]
)
def test_multi_tasks_need_both_modalities(task):
    """Either modality alone gives the wrong answer on a substantial share of trials."""
    df = generate_trials(task, 2000, seed=1)
    lat = latents(df)
    evidence = durations(lat) if "Dur" in task else lat["str"]
    total = evidence.sum(1)
    truth = total[:, 0] > total[:, 1]
    for m in range(2):
        alone = evidence[:, m, 0] > evidence[:, m, 1]
        disagree = np.mean(alone != truth)
        assert 0.3 < disagree < 0.7, (task, m, disagree)


def test_epoch_ranges():
    for task in ("Go", "DM", "COMP1", "DMS"):
        df = generate_trials(task, 2000, seed=2)
        go = N_STEPS - df["go_on"]
        stim2 = df["go_on"] - df["stim2_on"]
        delay = df["stim2_on"] - df["stim1_off"]
        stim1 = df["stim1_off"] - df["stim1_on"]
        assert go.between(20, 24).all() and set(go) == set(range(20, 25))
        assert stim2.between(37, 49).all() and stim1.between(37, 49).all()
        assert delay.between(15, 24).all()
        assert (df["stim1_on"] >= 0).all()
        assert df["sigma"].between(0.1, 0.15).all()


def test_con_tasks_follow_the_threshold_table():
    from instructnet.tasks import ConThresholds

    table = ConThresholds.default().table
    for task, anti in (("ConDM", False), ("ConAntiDM", True)):
        df = generate_trials(task, 1000, seed=4)
        rows = table[table["task"] == task].set_index("noise")["threshold"]
        thr = rows.reindex(df["sigma"].round(6)).to_numpy()
        above = np.abs(df["contrast"].to_numpy()) >= thr
        np.testing.assert_array_equal(df["response"].to_numpy(), above)
        lat = latents(df)
        s, d = single(lat, "str"), single(lat, "dir")
        r = resp(df)
        pick = s.argmin(1) if anti else s.argmax(1)
        assert np.allclose(circ(target(df)[r], d[np.arange(len(df)), pick][r]), 0)
        assert (df["go_on"] == 130).all() and (df["stim1_on"] == 30).all()
