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


def _weak(out, trial, peak=0.5):
    """Scale trial ``trial``'s last-step ring output so that its peak is ``peak`` (the
    direction of its population vector is unchanged)."""
    ring = out[trial, -1, 1:]
    out[trial, -1, 1:] = ring * (peak / ring.max())
    return out


def test_paper_scoring_decides_the_response_per_batch():
    """`paper` (the reference's rule): a weak trial passes when a batch mate responds
    strongly; alone, or under `strict`, it fails. The score depends on the batch."""
    df = generate_trials("Go", 4, seed=3)
    r = render(df, noise=False)
    out = _weak(r.targets.clone(), 1)  # trial 1 points right but peaks at 0.5 < 0.6
    strict = is_correct(out, df, "strict").tolist()
    paper = is_correct(out, df, "paper").tolist()
    assert strict == [True, False, True, True] and paper == [True, True, True, True]
    # the same trial alone in its batch: both rules fail it
    alone = TrialBatch.from_frame(df)[torch.tensor([1])]
    assert not is_correct(out[1:2], alone, "paper").item()
    assert not is_correct(out[1:2], alone, "strict").item()
    # every trial weak: the rules agree (nobody responded)
    weak = out.clone()
    for i in range(4):
        _weak(weak, i)
    assert not is_correct(weak, df, "paper").any() and not is_correct(weak, df, "strict").any()
    # a strong trial in the WRONG direction still makes its weak mates "respond"
    wrong = _weak(r.targets.clone(), 1)
    wrong[0, :, 1:] = torch.roll(r.targets[0, :, 1:], shifts=8, dims=-1)  # 90° off
    assert is_correct(wrong, df, "paper").tolist() == [False, True, True, True]
    assert is_correct(wrong, df, "strict").tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="strict, paper"):
        is_correct(out, df, "lenient")


def test_paper_scoring_is_never_stricter_than_strict():
    """Per trial, the batch maximum is at least the trial's own peak and everything else is
    shared, so `paper` ⊇ `strict`; withhold trials are scored identically."""
    df = pd_concat_tasks(["Go", "AntiGoMod2", "DMMod1", "COMP1"], 16)
    r = render(df, noise=False)
    gen = torch.Generator().manual_seed(0)
    out = (r.targets + 0.3 * torch.randn(r.targets.shape, generator=gen)).clamp(0, 1)
    strict, paper = is_correct(out, df, "strict"), is_correct(out, df, "paper")
    assert bool((paper | ~strict).all())
    no_response = ~torch.as_tensor(df["response"].to_numpy())
    assert torch.equal(strict[no_response], paper[no_response])


def pd_concat_tasks(tasks, n):
    import pandas as pd

    return pd.concat([generate_trials(t, n, seed=i) for i, t in enumerate(tasks)], ignore_index=True)


def test_paper_scoring_of_several_batches_decides_per_batch():
    """Packed training scores N networks' batches at once: `batch=B` gives each batch of B
    its own decision, as if scored one by one."""
    df = generate_trials("Go", 8, seed=5)
    r = render(df, noise=False)
    out = r.targets.clone()
    for i in range(4, 8):  # the second batch responds weakly throughout
        _weak(out, i)
    _weak(out, 1)  # a weak trial in the first batch, whose mates respond
    together = is_correct(out, df, "paper", batch=4)
    b = TrialBatch.from_frame(df)
    first = is_correct(out[:4], b[torch.arange(4)], "paper")
    second = is_correct(out[4:], b[torch.arange(4, 8)], "paper")
    assert torch.equal(together, torch.cat([first, second]))
    assert together.tolist() == [True] * 4 + [False] * 4
    assert is_correct(out, df, "paper").all()  # one batch of 8: the strong mates carry all
