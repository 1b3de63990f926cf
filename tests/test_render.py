"""Rendering of trial tables into tensors."""

import math

import numpy as np
import pytest
import torch

from instructnet.tasks import ConThresholds, Stimulus, TrialBatch, generate_trials, render
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
    wide = render(TrialBatch.from_frame(df, stimulus=Stimulus(tuning=4.0)),
                  noise=False).inputs[0, t, 1 + 32 * m : 1 + 32 * (m + 1)]
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


# ----------------------------------------------------------- stimulus conventions
REFERENCE = Stimulus("reference")


def _ring(rendered, i, t, m):
    return rendered.inputs[i, t, 1 + 32 * m : 1 + 32 * (m + 1)].numpy()


def test_conventions_resolve_their_settings():
    assert Stimulus() == Stimulus("paper", 8.0)
    assert REFERENCE.tuning == 12.0 and REFERENCE.snapped and REFERENCE.sigma_per_batch
    assert Stimulus("reference", 9).tuning == 9.0  # an explicit width overrides
    assert Stimulus(**REFERENCE.settings()) == REFERENCE
    for bad in ({"convention": "ref"}, {"tuning": 0}, {"tuning": "8"}, {"tuning": float("nan")}):
        with pytest.raises(ValueError, match="trials\\."):
            Stimulus(**bad)


def test_reference_convention_snaps_bumps_down_to_the_grid_at_width_12():
    df = generate_trials("Go", 32, seed=3)
    grid = 2 * np.pi / 32
    r = render(TrialBatch.from_frame(df, stimulus=REFERENCE), noise=False)
    pref = grid * np.arange(32)
    for i, row in df.iterrows():
        m = 0 if not np.isnan(row["m1_s1_str"]) else 1
        slot = f"m{m + 1}_s1"
        snapped = np.floor(row[f"{slot}_dir"] / grid) * grid
        d = np.abs(snapped - pref) % (2 * np.pi)
        d = np.minimum(d, 2 * np.pi - d)
        expected = row[f"{slot}_str"] * 0.8 * np.exp(-0.5 * (12 * d / np.pi) ** 2)
        np.testing.assert_allclose(_ring(r, i, int(row["stim1_on"]), m), expected, rtol=1e-5, atol=1e-6)
        # the target bump sits on the same grid; its peak unit is the snapped direction's
        if row["response"]:
            peak = int(np.argmax(r.targets[i, -1, 1:].numpy()))
            assert peak == int(np.floor(row["target_dir"] / grid)) % 32
    # the paper's bump of an off-grid direction is not the snapped one
    paper = render(df, noise=False)
    assert not torch.allclose(paper.inputs, r.inputs)


def test_reference_convention_shares_one_sigma_per_batch():
    dm = generate_trials("DM", 64, seed=0)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    ref = TrialBatch.from_frame(dm, stimulus=REFERENCE)
    clean = {id(ref): render(ref, noise=False).inputs, id(dm): render(dm, noise=False).inputs}
    sd = lambda t, **kw: (render(t, **kw).inputs - clean[id(t)])[:, :, 1:].flatten(1).std(dim=1).numpy()  # noqa: E731
    # the same standard-normal draws; one σ (the first trial's) scales a whole batch
    noise = torch.randn(64, N_STEPS, 64, generator=gen())
    shared = sd(ref, noise=noise)
    np.testing.assert_allclose(shared, dm["sigma"].iloc[0], rtol=0.03)
    own = sd(dm, noise=noise)
    np.testing.assert_allclose(own, dm["sigma"].to_numpy(), rtol=0.03)
    # `batch`: consecutive blocks of 16 (several networks' batches) each take their first
    blocks = sd(ref, noise=noise, batch=16)
    np.testing.assert_allclose(blocks, np.repeat(dm["sigma"].to_numpy()[::16], 16), rtol=0.03)
    with pytest.raises(ValueError, match="batches of 24"):
        render(ref, noise=noise, batch=24)


def test_con_tasks_keep_their_own_sigma_in_every_convention():
    con = generate_trials("ConDM", 32, seed=2, thresholds=ConThresholds.default())
    assert con["sigma"].nunique() > 1
    batch = TrialBatch.from_frame(con, stimulus=REFERENCE)
    assert bool(batch.own_sigma.all())
    np.testing.assert_allclose(REFERENCE.sigma(batch).numpy(), con["sigma"].to_numpy(), rtol=1e-6)


def test_trials_keep_their_stimulus_through_slicing_moving_and_joining():
    ref = TrialBatch.from_frame(generate_trials("Go", 8, seed=0), stimulus=REFERENCE)
    assert ref[torch.arange(3)].stimulus == ref.to("cpu").stimulus == REFERENCE
    assert TrialBatch.cat([ref[:4], ref[4:]]).stimulus == REFERENCE
    with pytest.raises(ValueError, match="different stimuli"):
        TrialBatch.cat([ref, TrialBatch.from_frame(generate_trials("Go", 8, seed=0))])


def test_every_script_renders_with_the_configured_stimulus():
    """Each call a workflow script makes to a package function that takes a ``stimulus``
    passes the rule's (params.stimulus, i.e. trials.convention): no script renders with
    the default geometry behind the config's back."""
    import ast
    import importlib
    import inspect
    from pathlib import Path

    scripts = sorted((Path(__file__).parents[1] / "scripts").glob("*.py"))
    checked = 0
    for script in scripts:
        tree = ast.parse(script.read_text())
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("instructnet"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    obj = getattr(module, alias.name, None)
                    if callable(obj):
                        imported[alias.asname or alias.name] = obj
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in imported):
                continue
            try:
                params = list(inspect.signature(imported[node.func.id]).parameters)
            except (TypeError, ValueError):
                continue
            if "stimulus" not in params:
                continue
            checked += 1
            by_position = len(node.args) > params.index("stimulus")
            assert by_position or any(k.arg == "stimulus" for k in node.keywords), (
                f"{script.name}: {node.func.id}(...) without stimulus")
    assert checked >= 10  # train, packed, evaluate, production (4), sweep, units, ...
