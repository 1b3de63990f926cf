"""Where a model's errors go (instructnet.bench.errors): the other answer of a trial, and
the split of outputs into correct / the other answer / other errors."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from instructnet.bench.errors import alternative_dirs, error_fractions, run, summary
from instructnet.tasks import generate_trials
from instructnet.tasks.rendering import TrialBatch, circular_distance, render


def _batch(task, n=64):
    return TrialBatch.from_frame(generate_trials(task, n, seed=3))


@pytest.mark.parametrize("task", ["DM", "AntiDM", "MultiDM", "AntiDMMod1", "DMMod2"])
def test_the_other_answer_of_a_choice_trial_is_the_other_stimulus(task):
    b = _batch(task)
    alt = alternative_dirs(b, task)
    shown = b.slot_on < b.slot_off
    # a shown direction, and not the target's
    assert (shown & (circular_distance(b.slot_dir, alt[:, None]) < 1e-5)).any(dim=1).all()
    assert (circular_distance(alt, b.target_dir) > 0.6).all()


def test_the_pro_and_anti_tasks_answer_each_others_other_answer():
    # same latents, the Anti task's target is the Pro task's other answer
    frame = generate_trials("DM", 64, seed=3)
    pro = TrialBatch.from_frame(frame)
    anti = replace(pro, target_dir=alternative_dirs(pro, "DM"))
    assert torch.allclose(circular_distance(alternative_dirs(anti, "AntiDM"), pro.target_dir),
                          torch.zeros(64), atol=1e-5)


@pytest.mark.parametrize("task", ["Go", "AntiGo", "RTGoMod1", "AntiRTGoMod2"])
def test_the_other_answer_in_the_go_family_is_the_opposite(task):
    # also where a second direction is shown (the Mod tasks' other modality)
    b = _batch(task)
    alt = alternative_dirs(b, task)
    assert torch.allclose(circular_distance(alt, b.target_dir), torch.full_like(alt, math.pi),
                          atol=1e-5)


def test_no_response_trials_have_no_other_answer():
    b = _batch("ConDM", 128)
    alt = alternative_dirs(b, "ConDM")
    assert (~b.response).any() and b.response.any()
    assert torch.isnan(alt[~b.response]).all() and not torch.isnan(alt[b.response]).any()


@pytest.mark.parametrize("task", ["AntiDM", "AntiGo", "MultiDM"])
def test_outputs_are_split_into_correct_the_other_answer_and_other(task):
    b = _batch(task)
    def split(outputs):
        f = error_fractions(outputs, b, task)
        assert f["correct"] + f["alternative"] + f["weak"] + f["other"] == pytest.approx(1.0)
        return tuple(round(f[k], 3) for k in ("correct", "alternative", "weak", "other")), f

    r = render(b, noise=False)
    fractions, f = split(r.targets)
    assert fractions == (1.0, 0.0, 0.0, 0.0)
    # the target bump peaks at the target's unit (0.8 + baseline), not at the other answer's
    assert f["at_target"] > 0.8 and f["at_alternative"] < 0.1
    # the output a model gives when it follows the counterpart's rule
    other_rule = render(replace(b, target_dir=alternative_dirs(b, task)), noise=False).targets
    fractions, f = split(other_rule)
    assert fractions == (0.0, 1.0, 0.0, 0.0)
    assert f["at_alternative"] > 0.8 and f["at_target"] < 0.1
    # hedging: half of each bump, no unit above the response threshold
    hedge = r.targets.clone()
    hedge[:, :, 1:] = 0.5 * (r.targets[:, :, 1:] + other_rule[:, :, 1:])
    fractions, f = split(hedge)
    assert fractions == (0.0, 0.0, 1.0, 0.0)
    assert 0.4 < f["at_target"] < 0.5 and 0.4 < f["at_alternative"] < 0.5
    # breaking fixation is neither weak nor an answer
    broken = r.targets.clone()
    broken[:, :10, 0] = 0.0
    assert split(broken)[0] == (0.0, 0.0, 0.0, 1.0)
    # half and half
    mixed = torch.cat([r.targets[:32], other_rule[32:]])
    assert split(mixed)[0] == (0.5, 0.5, 0.0, 0.0)


def test_run_scores_every_pool_task_of_a_saved_model(tmp_path):
    from instructnet.models.io import save_model
    from instructnet.models.network import build_model
    from instructnet.models.spec import model_spec
    from instructnet.tasks import generate_pool

    pools = tmp_path / "pools"
    pools.mkdir()
    for task in ("Go", "AntiDM"):
        generate_pool(task, 16, 2024, "eval").to_parquet(pools / f"{task}.parquet")
    spec = model_spec("simplenet", {})
    path = tmp_path / "model.pt"
    save_model(build_model(spec, seed=0, hidden=32), spec, path, seed=4, training_tasks=["Go"])
    table = run([path], pools)
    assert list(table["task"]) == ["Go", "AntiDM"]
    assert list(table["trained"]) == [True, False]
    assert (table["seed"] == 4).all() and (table["trials"] == 16).all()
    parts = table[["correct", "alternative", "weak", "other"]].sum(axis=1)
    np.testing.assert_allclose(parts, 1.0)
    s = summary(table)
    assert set(s["family"]) == {"Go", "DM"}
