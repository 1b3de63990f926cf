"""Held-out evaluation protocols (METHODS §6) on tiny CPU models."""

import numpy as np
import pandas as pd
import pytest
import torch

from instructnet.embeddings import instruction_rows, language_models
from instructnet.evaluation import (
    EvalConfig,
    combined_task_vector,
    combined_vectors,
    heldout_learning,
    swapped_instructions,
    trained_parameters,
    validation_instructions,
    zero_shot,
)
from instructnet.models import build_model, masked_mse, model_spec
from instructnet.seeding import seed_int
from instructnet.tasks import (
    TrialBatch,
    compositional_references,
    generate_trials,
    held_out,
    is_correct,
    render,
)
from instructnet.tasks.constants import TASK_INDEX

LMS = language_models()
HOLDOUT = "swap8"  # ConAntiDM, COMP1, MultiDur2, COMP1Mod2, Go
GROUP = held_out(HOLDOUT)
EMB_DIM = 24
SMALL = EvalConfig(batches=3, batch_size=16, lr=1e-3, repeats=2)


def _task_set():
    tasks = set(GROUP) | {"AntiGo", "DM"}
    for t in GROUP:
        tasks |= set(compositional_references(t))
    return sorted(tasks, key=TASK_INDEX.get)


TASKS = _task_set()


@pytest.fixture(scope="module")
def pools():
    return {t: TrialBatch.from_frame(generate_trials(t, 64, seed=TASK_INDEX[t])) for t in TASKS}


@pytest.fixture(scope="module")
def corpus():
    """A fake instruction table (4 training + 2 validation rows per task) and random
    embeddings standing in for a language model's."""
    rows = pd.DataFrame(
        [{"task": t, "split": s} for t in TASKS for s in ["train"] * 4 + ["validation"] * 2]
    )
    emb = torch.randn(len(rows), EMB_DIM, generator=torch.Generator().manual_seed(5))
    return rows, emb, instruction_rows(rows, TASKS, "train"), instruction_rows(rows, TASKS, "validation")


def rule_model(name="simplenet", seed=0, hidden=16):
    return build_model(model_spec(name, LMS), seed, hidden=hidden)


def instructed_model(corpus, name="sbertnet_minilm", seed=0, hidden=16):
    return build_model(model_spec(name, LMS), seed, embeddings=corpus[1], hidden=hidden)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- config ---------------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("batches", 0), ("batch_size", -1), ("repeats", 1.5),
                                        ("batches", True), ("lr", 0.0), ("lr", float("nan"))])
def test_config_validation_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"evaluation.{key}"):
        EvalConfig(**{key: value})
    with pytest.raises(ValueError, match="unknown evaluation settings: bogus"):
        EvalConfig.from_mapping({"bogus": 1})
    assert EvalConfig() == EvalConfig(100, 256, 8e-4, 5, ("strict", "paper"))
    assert EvalConfig(scoring=["paper"]).scoring == ("paper",)
    for bad in ([], ["strict", "strict"], ["lenient"]):
        with pytest.raises(ValueError, match="evaluation.scoring"):
            EvalConfig(scoring=bad)


# --- held-out learning ----------------------------------------------------------------


def _batch0_by_hand(model, task, pool, choices, config, seed, repeat, scoring="strict"):
    """Batch 0 of (task, repeat) recomputed from the documented seed streams with the
    untouched model."""
    rng = np.random.default_rng(seed_int(seed, "heldout", task, repeat))
    noise = torch.Generator().manual_seed(seed_int(seed, "heldout-noise", task, repeat))
    trials = pool[torch.as_tensor(rng.integers(0, len(pool), config.batch_size))]
    sentence_idx = None
    if choices is not None:
        sentence_idx = choices[torch.as_tensor(rng.integers(0, len(choices), config.batch_size))]
    r = render(trials, noise=True, generator=noise)
    task_idx = torch.full((config.batch_size,), TASK_INDEX[task])
    with torch.no_grad():
        out, _ = model(r.inputs, model.task_vectors(task_idx, sentence_idx))
    return is_correct(out, trials, scoring).float().mean().item()


@pytest.mark.parametrize("kind", ["simplenet", "sbertnet_minilm"])
def test_zero_shot_is_batch_zero_and_caller_model_untouched(kind, pools, corpus):
    model = rule_model(kind) if kind == "simplenet" else instructed_model(corpus)
    sentences = corpus[2] if kind != "simplenet" else None
    model.train()
    before = state(model)
    tasks = ["Go", "DM"]
    curve = heldout_learning(model, tasks, pools, sentences, SMALL, seed=11)
    assert same_state(before, state(model)) and model.training  # caller's model untouched
    zs = zero_shot(model, tasks, pools, sentences, SMALL, seed=11)
    assert same_state(before, state(model)) and model.training  # mode restored
    first = curve[curve["batch"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[["task", "scoring", "repeat", "accuracy"]], zs)
    for task in tasks:
        for repeat in range(SMALL.repeats):
            choices = None if sentences is None else sentences[task]
            for scoring in ("strict", "paper"):  # both rules scored from the same outputs
                expected = _batch0_by_hand(model, task, pools[task], choices, SMALL, 11, repeat,
                                           scoring)
                got = first.query("task == @task and repeat == @repeat and scoring == @scoring")
                assert got["accuracy"].item() == expected


def test_learning_curve_shape_types_and_determinism(pools):
    model = rule_model("simplenet")
    curve = heldout_learning(model, ["Go", "DM"], pools, None, SMALL, seed=3)
    assert list(curve.columns) == ["task", "scoring", "repeat", "batch", "accuracy"]
    assert dict(curve.dtypes.astype(str)) == {"task": "string", "scoring": "string",
                                              "repeat": "int32", "batch": "int32",
                                              "accuracy": "float64"}
    assert len(curve) == 2 * 2 * SMALL.repeats * SMALL.batches  # tasks x scorings x ...
    counts = curve.groupby(["task", "scoring", "repeat"]).size()
    assert (counts == SMALL.batches).all() and len(counts) == 2 * 2 * SMALL.repeats
    go = curve.query("task == 'Go' and repeat == 1 and scoring == 'strict'")
    assert sorted(go["batch"]) == list(range(SMALL.batches))
    assert curve["accuracy"].between(0, 1).all()
    # same seed, same frames; task order does not matter
    again = heldout_learning(model, ["DM", "Go"], pools, None, SMALL, seed=3)
    key = ["task", "scoring", "repeat", "batch"]
    pd.testing.assert_frame_equal(curve.sort_values(key).reset_index(drop=True),
                                  again.sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(
        curve, heldout_learning(model, ["Go", "DM"], pools, None, SMALL, seed=3))
    z1 = zero_shot(model, ["Go"], pools, None, EvalConfig(repeats=3, batch_size=32), seed=4)
    z2 = zero_shot(model, ["Go"], pools, None, EvalConfig(repeats=3, batch_size=32), seed=4)
    pd.testing.assert_frame_equal(z1, z2)


def _learned_states(model, sentences, pools, train, config=SMALL, task="Go"):
    out = {}
    heldout_learning(model, [task], pools, sentences, config, seed=1, train=train,
                     on_trained=lambda t, r, m: out.__setitem__((t, r), state(m)))
    assert set(out) == {(task, r) for r in range(config.repeats)}
    return out


def test_instructed_default_freezes_embeddings(pools, corpus):
    model = instructed_model(corpus)
    before = state(model)
    learned = _learned_states(model, corpus[2], pools, "default")[("Go", 0)]
    assert torch.equal(learned["encoder.embeddings"], before["encoder.embeddings"])
    for name in ("rnn.weight_hh", "rnn.weight_ih", "readout.weight", "encoder.head.weight"):
        assert not torch.equal(learned[name], before[name]), name
    names = {n for n, _ in trained_parameters(model)}
    assert names == {"rnn.weight_ih", "rnn.weight_hh", "rnn.bias_ih", "rnn.bias_hh",
                     "readout.weight", "readout.bias", "encoder.head.weight", "encoder.head.bias"}


@pytest.mark.parametrize("kind", ["simplenetplus", "sbertnet_minilm_mlp"])
def test_input_training_changes_only_input_weights(kind, pools, corpus):
    model = rule_model(kind) if kind.startswith("simple") else instructed_model(corpus, kind)
    sentences = None if kind.startswith("simple") else corpus[2]
    before = state(model)
    learned = _learned_states(model, sentences, pools, "input")
    for trained in learned.values():
        changed = {k for k in before if not torch.equal(before[k], trained[k])}
        assert changed == {"rnn.weight_ih", "rnn.bias_ih"}


def test_rule_plus_default_trains_everything_but_rules(pools):
    model = rule_model("simplenetplus")
    before = state(model)
    learned = _learned_states(model, None, pools, "default")[("Go", 1)]
    changed = {k for k in before if not torch.equal(before[k], learned[k])}
    assert "encoder.rules" not in changed
    assert changed == {k for k in before if k != "encoder.rules"}


def test_each_repeat_starts_from_the_trained_weights(pools):
    model = rule_model("simplenet")
    one = _learned_states(model, None, pools, "default", EvalConfig(3, 16, 1e-3, 1))
    two = _learned_states(model, None, pools, "default", EvalConfig(3, 16, 1e-3, 2))
    assert same_state(one[("Go", 0)], two[("Go", 0)])
    assert not same_state(two[("Go", 0)], two[("Go", 1)])  # other draws, same start


def test_learning_an_easy_task_lowers_the_loss(pools):
    model = rule_model("simplenet", seed=2, hidden=32)
    config = EvalConfig(batches=20, batch_size=32, lr=1e-2, repeats=1)
    learned = _learned_states(model, None, pools, "default", config)[("Go", 0)]
    trials = pools["Go"]
    r = render(trials, noise=False)
    vec = model.task_vectors(torch.full((len(trials),), TASK_INDEX["Go"]))

    def loss(m):
        with torch.no_grad():
            return masked_mse(m(r.inputs, vec)[0], r.targets, r.mask).item()

    after = rule_model("simplenet", seed=2, hidden=32)
    after.load_state_dict(learned)
    # (accuracy of an untrained network can dip first: it learns the baseline output)
    assert loss(after) < 0.7 * loss(model)


def test_unknown_train_mode_and_missing_inputs(pools, corpus):
    model = rule_model()
    with pytest.raises(ValueError, match="train mode"):
        heldout_learning(model, ["Go"], pools, None, SMALL, seed=0, train="all")
    with pytest.raises(ValueError, match="no trial pool"):
        zero_shot(model, ["RTGoMod1"], pools, None, SMALL, seed=0)
    with pytest.raises(ValueError, match="instruction"):
        zero_shot(instructed_model(corpus), ["Go"], pools, None, SMALL, seed=0)


# --- other tests ----------------------------------------------------------------------


def test_swapped_instructions_use_the_next_group_member(pools, corpus):
    model = instructed_model(corpus)
    train = corpus[2]
    df = swapped_instructions(model, HOLDOUT, None, pools, train, SMALL, seed=7)
    assert list(df.columns) == ["task", "instructions_of", "scoring", "repeat", "accuracy"]
    assert df["instructions_of"].dtype == "string" and df["repeat"].dtype == "int32"
    mapping = dict(zip(df["task"], df["instructions_of"]))
    assert mapping == {GROUP[i]: GROUP[(i + 1) % len(GROUP)] for i in range(len(GROUP))}
    assert mapping["Go"] == "ConAntiDM"
    # same as zero-shot with the next task's training instructions given by hand
    by_hand = zero_shot(model, GROUP, pools, {t: train[mapping[t]] for t in GROUP}, SMALL, seed=7)
    pd.testing.assert_frame_equal(df.drop(columns="instructions_of"), by_hand)
    with pytest.raises(ValueError, match="instructed"):
        swapped_instructions(rule_model(), HOLDOUT, None, pools, train, SMALL, seed=7)


def test_validation_instructions_are_zero_shot_with_validation_rows(pools, corpus):
    model = instructed_model(corpus)
    val = corpus[3]
    df = validation_instructions(model, ["Go", "DM"], pools, val, SMALL, seed=2)
    pd.testing.assert_frame_equal(df, zero_shot(model, ["Go", "DM"], pools, val, SMALL, seed=2))
    assert set(df["task"]) == {"Go", "DM"} and len(df) == 2 * 2 * SMALL.repeats


class _Capture:
    def __init__(self, model):
        self.vecs = []
        self.handle = model.register_forward_pre_hook(lambda m, args: self.vecs.append(args[1].clone()))


@pytest.mark.parametrize("name", ["simplenet", "structurenet"])
def test_combined_vectors_feed_a_minus_b_plus_c(name, pools):
    model = rule_model(name)
    tasks = ["Go", "COMP1"]
    cap = _Capture(model)
    df = combined_vectors(model, tasks, pools, None, SMALL, seed=9)
    cap.handle.remove()
    assert list(df.columns) == ["task", "ref_a", "ref_b", "ref_c", "scoring", "repeat", "accuracy"]
    rules = model.encoder.rules
    for i, task in enumerate(tasks):
        a, b, c = compositional_references(task)
        row = df[df["task"] == task].iloc[0]
        assert (row["ref_a"], row["ref_b"], row["ref_c"]) == (a, b, c)
        expected = rules[TASK_INDEX[a]] - rules[TASK_INDEX[b]] + rules[TASK_INDEX[c]]
        for vec in cap.vecs[i * SMALL.repeats:(i + 1) * SMALL.repeats]:
            assert vec.shape == (SMALL.batch_size, 64)
            assert torch.equal(vec, expected.expand_as(vec))
    if name == "structurenet":  # the structure table composes exactly
        assert torch.allclose(expected, rules[TASK_INDEX[task]], atol=1e-5)


def test_combined_vectors_use_references_the_model_trained_on(pools):
    from instructnet.tasks import training_tasks

    # swap8 holds out COMP1, a task of COMP1Mod2's canonical triple
    assert "COMP1" in compositional_references("COMP1Mod2") and "COMP1" in GROUP
    model = rule_model("structurenet")
    trained = training_tasks(HOLDOUT)
    cap = _Capture(model)
    df = combined_vectors(model, ["COMP1Mod2", "Go"], pools, None, SMALL, seed=3, trained=trained)
    cap.handle.remove()
    refs = {t: tuple(r[["ref_a", "ref_b", "ref_c"]]) for t, r in df.groupby("task").first().iterrows()}
    assert refs["COMP1Mod2"] == ("MultiCOMP1", "MultiCOMP2", "COMP2Mod2")
    assert refs["Go"] == compositional_references("Go")  # its canonical triple was trained
    rules = model.encoder.rules
    a, b, c = refs["COMP1Mod2"]
    expected = rules[TASK_INDEX[a]] - rules[TASK_INDEX[b]] + rules[TASK_INDEX[c]]
    assert torch.equal(cap.vecs[0], expected.expand_as(cap.vecs[0]))
    with pytest.raises(ValueError, match="no compositional triple exists for task 'Go' among"):
        combined_vectors(model, ["Go"], pools, None, SMALL, seed=3, trained=["Go", "DM"])


def test_combined_vectors_of_instructed_models_average_training_instructions(pools, corpus):
    model = instructed_model(corpus)
    train = corpus[2]
    refs, vec = combined_task_vector(model, "Go", train)
    assert refs == compositional_references("Go")

    def tv(task):
        with torch.no_grad():
            return model.encoder.head(corpus[1][train[task]]).mean(0)

    a, b, c = refs
    assert torch.allclose(vec, tv(a) - tv(b) + tv(c), atol=1e-6)
    df = combined_vectors(model, ["Go"], pools, train, SMALL, seed=1)
    by_hand = zero_shot(model, ["Go"], pools, None, SMALL, seed=1, task_vectors={"Go": vec.detach()})
    pd.testing.assert_frame_equal(df.drop(columns=["ref_a", "ref_b", "ref_c"]), by_hand)
