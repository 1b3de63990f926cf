"""Rendering of trial tables into tensors."""

import math

import numpy as np
import pytest
import torch

from instructnet.tasks import TrialBatch, generate_trials, render
from instructnet.tasks.constants import N_INPUTS, N_OUTPUTS, N_STEPS


@pytest.fixture(scope="module")
def dm():
    return generate_trials("DM", 64, seed=0)


def test_shapes_and_dtypes(dm):
    r = render(dm, noise=True, generator=torch.Generator().manual_seed(0))
    assert r.inputs.shape == (64, N_STEPS, N_INPUTS)
    assert r.targets.shape == r.mask.shape == (64, N_STEPS, N_OUTPUTS)
    assert r.inputs.dtype == r.targets.dtype == r.mask.dtype == torch.float32


def test_noise_level_and_fixation(dm):
    clean = render(dm, noise=False)
    noisy = render(dm, noise=True, generator=torch.Generator().manual_seed(0))
    diff = noisy.inputs - clean.inputs
    assert torch.equal(diff[:, :, 0], torch.zeros_like(diff[:, :, 0]))  # no noise on fixation
    sd = diff[:, :, 1:].flatten(1).std(dim=1).numpy()
    np.testing.assert_allclose(sd, dm["sigma"].to_numpy(), rtol=0.03)


def test_seeded_noise_is_reproducible(dm):
    a = render(dm, generator=torch.Generator().manual_seed(5)).inputs
    b = render(dm, generator=torch.Generator().manual_seed(5)).inputs
    c = render(dm, generator=torch.Generator().manual_seed(6)).inputs
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stimulus_encoding_matches_formula():
    df = generate_trials("Go", 8, seed=1)
    r = render(df, noise=False)
    row = df.iloc[0]
    m = 0 if not np.isnan(row["m1_s1_str"]) else 1
    slot = f"m{m + 1}_s1"
    theta, s = row[f"{slot}_dir"], row[f"{slot}_str"]
    t = int(row["stim1_on"]) + 1
    pref = 2 * np.pi * np.arange(32) / 32
    d = np.abs(theta - pref) % (2 * np.pi)
    d = np.minimum(d, 2 * np.pi - d)
    expected = s * 0.8 * np.exp(-0.5 * (8 * d / np.pi) ** 2)
    ring = r.inputs[0, t, 1 + 32 * m : 1 + 32 * (m + 1)].numpy()
    np.testing.assert_allclose(ring, expected, rtol=1e-5, atol=1e-6)
    assert r.inputs[0, t, 1 + 32 * (1 - m) :].abs().max() < 1e-6  # other modality empty
    assert r.inputs[0, int(row["stim1_on"]) - 1, 1:].abs().max() < 1e-6  # nothing before onset
    # tuning width is a parameter
    wide = render(df, noise=False, tuning=4.0).inputs[0, t, 1 + 32 * m : 1 + 32 * (m + 1)]
    assert (wide > torch.as_tensor(ring) - 1e-6).all() and wide.sum() > ring.sum()


def test_targets_and_mask_layout(dm):
    r = render(dm, noise=False)
    go = int(dm["go_on"].iloc[0])
    assert torch.allclose(r.targets[0, :go, 0], torch.tensor(0.85))
    assert torch.allclose(r.targets[0, go:, 0], torch.tensor(0.05))
    assert torch.allclose(r.targets[0, :go, 1:], torch.tensor(0.05))
    peak = r.targets[0, go:, 1:].max(dim=-1).values
    assert (peak > 0.8).all()
    assert torch.all(r.mask[0, :go] == 1)
    assert torch.all(r.mask[0, go : go + 5] == 0)
    assert torch.all(r.mask[0, go + 5 :, 0] == 10) and torch.all(r.mask[0, go + 5 :, 1:] == 5)


def test_rt_fixation_never_released():
    df = generate_trials("RTGo", 16, seed=0)
    r = render(df, noise=False)
    assert torch.all(r.inputs[:, :, 0] == 1)
    go = int(df["go_on"].iloc[0])
    assert r.inputs[0, go - 1, 1:].abs().max() < 1e-6 and r.inputs[0, go, 1:].max() > 0.5


def test_batch_slicing_equals_rendering_the_subset(dm):
    batch = TrialBatch.from_frame(dm)
    idx = torch.tensor([5, 2, 40])
    a = render(batch[idx], noise=False)
    b = render(dm.iloc[[5, 2, 40]], noise=False)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


def test_each_trial_renders_independently_of_its_batch(dm):
    full = render(dm, noise=False)
    alone = render(dm.iloc[[7]], noise=False)
    assert torch.equal(full.inputs[7], alone.inputs[0])
    assert math.isclose(float(full.mask[7].sum()), float(alone.mask[0].sum()))


def test_predrawn_noise_and_concatenated_batches_render_as_separate_ones():
    """What the packed trainer does (one render of several networks' batches, each with
    noise from its own generator) equals rendering each batch on its own."""
    from instructnet.tasks import draw_noise

    go, dm = generate_trials("AntiGo", 16, seed=1), generate_trials("DMMod1", 16, seed=2)
    a, b = TrialBatch.from_frame(go), TrialBatch.from_frame(dm)
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)
    alone = [render(a, generator=ga), render(b, generator=gb)]
    ga.manual_seed(5), gb.manual_seed(6)
    noise = torch.cat([draw_noise(16, ga), draw_noise(16, gb)])
    together = render(TrialBatch.cat([a, b]), noise=noise)
    for field in ("inputs", "targets", "mask"):
        assert torch.equal(getattr(together, field),
                           torch.cat([getattr(r, field) for r in alone])), field
    with pytest.raises(ValueError, match="noise must be"):
        render(a, noise=noise)


def test_mask_values():
    r = render(generate_trials("Go", 4, seed=0), noise=False)
    assert set(torch.unique(r.mask).tolist()) == {0.0, 1.0, 5.0, 10.0}
    assert torch.all(r.mask[..., 0][r.mask[..., 0] > 1] == 10.0)
