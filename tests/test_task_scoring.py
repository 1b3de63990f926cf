"""Per-task scoring: perfect outputs pass, withholding and rotated outputs fail where they should."""

import math

import numpy as np
import pytest
import torch

from instructnet.tasks import FAMILY_OF, TASKS, TrialBatch, generate_trials, is_correct, render
from instructnet.tasks.rendering import BASELINE, FIX_TARGET_ON

N = 200
ALWAYS_RESPOND = {t for t in TASKS if FAMILY_OF[t] in ("Go", "DM")} - {"ConDM", "ConAntiDM"}


@pytest.fixture(scope="module", params=TASKS)
def task_trials(request):
    task = request.param
    df = generate_trials(task, N, seed=11)
    return task, df, render(df, noise=False)


def withhold_output(r):
    """Fixate until go, then release fixation and stay silent on the ring."""
    out = torch.full_like(r.targets, BASELINE)
    go_started = r.targets[:, :, 0] < 0.5
    out[:, :, 0] = torch.where(go_started, BASELINE, FIX_TARGET_ON)
    return out


def test_target_output_is_correct(task_trials):
    _, df, r = task_trials
    assert is_correct(r.targets, df).all()


def test_withholding_is_correct_exactly_on_no_response_trials(task_trials):
    _, df, r = task_trials
    correct = is_correct(withhold_output(r), df).numpy()
    np.testing.assert_array_equal(correct, ~df["response"].to_numpy())


def test_rotated_output_is_wrong_on_response_trials(task_trials):
    _, df, r = task_trials
    rotated = r.targets.clone()
    rotated[:, :, 1:] = torch.roll(rotated[:, :, 1:], shifts=8, dims=2)  # 8 units = 90°
    correct = is_correct(rotated, df).numpy()
    response = df["response"].to_numpy()
    assert not correct[response].any()
    assert correct[~response].all()  # a flat ring rotated is still flat


def test_breaking_fixation_is_wrong(task_trials):
    _, df, r = task_trials
    broken = r.targets.clone()
    go_on = df["go_on"].to_numpy()
    for i, g in enumerate(go_on):
        broken[i, g - 10, 0] = 0.3  # one step of released fixation before go
    assert not is_correct(broken, df).any()


def test_response_balance(task_trials):
    task, df, _ = task_trials
    share = df["response"].mean()
    if task in ALWAYS_RESPOND:
        assert share == 1.0
    else:
        assert share == 0.5


def test_angles_are_wrapped(task_trials):
    _, df, _ = task_trials
    angles = df.filter(like="_dir").to_numpy(dtype=float, na_value=np.nan)
    angles = angles[~np.isnan(angles)]
    assert (angles >= 0).all() and (angles < 2 * math.pi).all()


def test_scoring_is_per_trial_and_wraps_angles():
    """The reference judged 'responded' over the whole batch and compared unwrapped angles."""
    df = generate_trials("GoMod2", 64, seed=3)
    r = render(df, noise=False)
    out = r.targets.clone()
    out[1:, :, 1:] = BASELINE  # every trial but the first withholds
    correct = is_correct(out, df).numpy()
    assert correct[0] and not correct[1:].any()
    # A target just below 2π scored against a population vector just above 0.
    df = df.iloc[[0]].copy()
    df["target_dir"] = 2 * math.pi - 0.05
    r = render(df, noise=False)
    ring = r.targets.clone()
    ring[:, :, 1:] = torch.roll(r.targets[:, :, 1:], shifts=1, dims=2)  # +11.25°, wraps past 0
    assert is_correct(ring, df).all()


def test_permutation_equivariance():
    df = generate_trials("COMP1", 64, seed=5)
    r = render(df, noise=False)
    out = withhold_output(r)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    base = is_correct(out, df)
    permuted = is_correct(out[perm], TrialBatch.from_frame(df)[perm])
    assert torch.equal(base[perm], permuted)


def test_noisy_rendering_of_perfect_targets_still_scores_targets_correct():
    df = generate_trials("DM", 64, seed=5)
    noisy = render(df, noise=True, generator=torch.Generator().manual_seed(1))
    assert is_correct(noisy.targets, df).all()  # targets do not depend on noise
