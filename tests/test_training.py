"""Encoders, model construction and the training protocol (short real runs on CPU)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from instructnet.embeddings import BUILTIN_MODELS, language_models
from instructnet.models import (
    RuleEncoder,
    UnknownModelError,
    build_model,
    model_spec,
)
from instructnet.models.encoders import whitening_matrix
from instructnet.models.io import load_model
from instructnet.tasks import TASKS, generate_pool, write_trials
from instructnet.tasks.constants import TASK_INDEX
from instructnet.training import TrainConfig, TrainingConfigError, TrainingDiverged
from instructnet.training.run import train_job

LMS = language_models()
TIMING = ["seconds", "trials_per_s"]


def rule_model(name="simplenet", seed=0, hidden=32):
    return build_model(model_spec(name, LMS), seed, hidden=hidden)


# --- encoders -------------------------------------------------------------------------


def test_simplenet_rules_are_orthonormal_and_seeded():
    enc = RuleEncoder("simple", torch.Generator().manual_seed(1))
    gram = enc.rules @ enc.rules.T
    assert torch.allclose(gram, torch.eye(len(TASKS)), atol=1e-5)
    same = RuleEncoder("simple", torch.Generator().manual_seed(1))
    other = RuleEncoder("simple", torch.Generator().manual_seed(2))
    assert torch.equal(enc.rules, same.rules) and not torch.equal(enc.rules, other.rules)


def test_structurenet_rules_compose():
    enc = RuleEncoder("structure", torch.Generator().manual_seed(0))
    v = {t: enc.rules[TASK_INDEX[t]] for t in TASKS}
    assert torch.allclose(v["Go"], v["RTGo"] - v["AntiRTGo"] + v["AntiGo"], atol=1e-5)
    assert torch.allclose(v["DMS"] - v["DNMS"], v["DMC"] - v["DNMC"], atol=1e-5)
    assert not torch.allclose(v["Go"], v["AntiGo"])


@pytest.mark.parametrize("name, trainable", [("simplenet", False), ("structurenet", False),
                                             ("simplenetplus", True), ("structurenetplus", True)])
def test_rule_encoders(name, trainable):
    model = rule_model(name)
    task_idx = torch.tensor([0, 5, 49])
    out = model.task_vectors(task_idx)
    assert out.shape == (3, 64)
    assert any(p.requires_grad for p in model.encoder.parameters()) == trainable
    assert torch.equal(out, rule_model(name).task_vectors(task_idx))  # seeded


@pytest.mark.parametrize("head, n_params", [("linear", 384 * 64 + 64),
                                            ("mlp", 384 * 256 + 256 + 256 * 256 + 256 + 256 * 64 + 64)])
def test_instruction_encoder_maps_cached_embeddings(head, n_params):
    name = "sbertnet_minilm" if head == "linear" else "sbertnet_minilm_mlp"
    spec = model_spec(name, LMS)
    emb = torch.randn(20, 384)
    model = build_model(spec, 3, embeddings=emb, hidden=16)
    assert sum(p.numel() for p in model.encoder.parameters()) == n_params
    out = model.task_vectors(torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 1, 19]))
    assert out.shape == (4, 64) and torch.equal(out[1], out[2]) and not torch.equal(out[0], out[1])


def test_zscore_encoder_is_a_linear_map_with_fixed_training_statistics():
    spec = model_spec("sbertnet_minilm", LMS, "zscore")
    assert spec.embedding_norm == "zscore"
    assert model_spec("simplenet", LMS, "zscore").embedding_norm == "none"  # rule models: no embedding
    with pytest.raises(ValueError, match="none, zscore, whiten"):
        model_spec("sbertnet_minilm", LMS, "sphere")
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(30, 384, generator=gen) * 0.2 + torch.randn(384, generator=gen) * 3
    train_rows = {"Go": torch.arange(0, 10), "DM": torch.arange(10, 20)}  # rows 20..29 unseen
    model = build_model(spec, 3, embeddings=emb, hidden=16, norm_rows=train_rows.values())
    enc = model.encoder
    ref = emb[:20].double()
    assert torch.allclose(enc.shift, ref.mean(0).float()) and torch.allclose(enc.scale, ref.std(0).float())
    # the same seed's plain model has the same head: standardising is a fixed affine input
    plain = build_model(model_spec("sbertnet_minilm", LMS), 3, embeddings=emb, hidden=16)
    assert torch.equal(plain.encoder.head.weight, enc.head.weight)
    idx = torch.tensor([0, 12, 25])
    out = model.task_vectors(torch.zeros(3, dtype=torch.long), idx)
    expected = enc.head((emb[idx] - enc.shift) / enc.scale)
    assert torch.allclose(out, expected)
    # ... so it equals one Linear(d -> 64) of the raw embedding (the paper's model class)
    w = enc.head.weight / enc.scale
    b = enc.head.bias - w @ enc.shift
    assert torch.allclose(out, emb[idx] @ w.T + b, atol=1e-4)
    assert torch.allclose(enc.map(emb[idx]), out)  # what partners apply to new sentences
    # the standardised vectors of the training rows are centred with unit SD
    z = (emb[:20] - enc.shift) / enc.scale
    assert z.mean(0).abs().max() < 1e-4 and (z.std(0) - 1).abs().max() < 1e-4


def test_whitening_matrix_decorrelates_and_is_defined_with_few_rows():
    gen = torch.Generator().manual_seed(1)
    mix = torch.randn(6, 6, generator=gen)
    rows = torch.randn(4000, 6, generator=gen) @ mix + 5  # correlated, uneven variances
    w = whitening_matrix(rows)
    assert w.dtype == torch.float64 and torch.allclose(w, w.T)
    white = (rows.double() - rows.double().mean(0)) @ w
    # many rows: Ledoit-Wolf shrinks little, so the covariance is close to the identity
    assert torch.allclose(torch.cov(white.T), torch.eye(6, dtype=torch.float64), atol=0.05)
    # fewer rows than dimensions (a corpus's training sentences): finite, full rank
    few = whitening_matrix(torch.randn(10, 40, generator=gen))
    assert torch.isfinite(few).all() and torch.linalg.matrix_rank(few) == 40
    assert torch.equal(whitening_matrix(torch.ones(1, 3)), torch.eye(3, dtype=torch.float64))


def test_whitened_encoder_is_a_linear_map_with_fixed_training_statistics():
    spec = model_spec("sbertnet_minilm", LMS, "whiten")
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(30, 384, generator=gen) * 0.2 + torch.randn(384, generator=gen) * 3
    train_rows = {"Go": torch.arange(0, 10), "DM": torch.arange(10, 20)}  # rows 20..29 unseen
    model = build_model(spec, 3, embeddings=emb, hidden=16, norm_rows=train_rows.values())
    enc = model.encoder
    assert torch.allclose(enc.shift, emb[:20].double().mean(0).float())
    assert torch.allclose(enc.whitener, whitening_matrix(emb[:20]).float())
    plain = build_model(model_spec("sbertnet_minilm", LMS), 3, embeddings=emb, hidden=16)
    assert torch.equal(plain.encoder.head.weight, enc.head.weight)  # same seed, same head
    idx = torch.tensor([0, 12, 25])
    out = model.task_vectors(torch.zeros(3, dtype=torch.long), idx)
    assert torch.allclose(out, enc.head((emb[idx] - enc.shift) @ enc.whitener))
    # one Linear(d -> 64) of the raw embedding (the paper's model class)
    w = enc.head.weight @ enc.whitener.T
    b = enc.head.bias - w @ enc.shift
    assert torch.allclose(out, emb[idx] @ w.T + b, atol=1e-3)
    assert torch.allclose(enc.map(emb[idx]), out)


@pytest.mark.parametrize("norm", ["zscore", "whiten"])
def test_embedding_statistics_survive_saving(tmp_path, pools, norm):
    from instructnet.embeddings import embed_corpus, instruction_rows, write_embeddings
    from instructnet.instructions import load_corpus
    from instructnet.training.run import read_embeddings

    corpus = load_corpus()
    pooled, _ = embed_corpus(BUILTIN_MODELS["bownet"], corpus)
    write_embeddings(corpus, pooled, tmp_path / "bownet.parquet")
    cfg = TrainConfig(batch_size=8, batches_per_epoch=4, min_epochs=1, max_epochs=1)
    out = tmp_path / "z"
    out.mkdir()
    train_job(spec=model_spec("bownet", LMS, norm), holdout="test", seed=0,
              tasks=["Go", "DM"], pool_paths=pools, config=cfg, base_seed=1,
              model_out=out / "model.pt", log_out=out / "log.parquet", hidden=8,
              progress=False, embeddings_path=tmp_path / "bownet.parquet")
    model, meta = load_model(out / "model.pt")
    assert meta["spec"]["embedding_norm"] == norm
    rows, vectors = read_embeddings(tmp_path / "bownet.parquet")
    used = torch.cat(list(instruction_rows(rows, ["Go", "DM"], "train").values()))
    ref = torch.tensor(vectors)[used].double()
    # statistics of the training sentences of the training tasks only, restored on load
    assert torch.allclose(model.encoder.shift, ref.mean(0).float())
    if norm == "zscore":
        assert torch.allclose(model.encoder.scale, ref.std(0).clamp_min(1e-6).float())
    else:
        assert torch.allclose(model.encoder.whitener, whitening_matrix(ref).float())


def test_model_specs_and_unknown_names():
    assert model_spec("gptnet", LMS).gpt and not model_spec("bertnet", LMS).gpt
    assert model_spec("bownet_mlp", LMS).head == "mlp"
    with pytest.raises(UnknownModelError, match="'sbertnet_xxl'"):
        model_spec("sbertnet_xxl", LMS)


def test_build_model_is_seeded():
    a, b, c = rule_model(seed=4), rule_model(seed=4), rule_model(seed=5)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not torch.equal(a.rnn.weight_ih, c.rnn.weight_ih)
    out, hidden = a(torch.zeros(2, 150, 65), a.task_vectors(torch.tensor([0, 1])))
    assert out.shape == (2, 150, 33) and hidden.shape == (2, 150, 32)
    assert ((out > 0) & (out < 1)).all()


# --- training -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [({"lr": -1}, "lr"), ({"batch_size": 0}, "batch_size"), ({"min_epochs": 5, "max_epochs": 2}, "min_epochs"),
     ({"lr_decay": 1.5}, "lr_decay"), ({"threshold": 0}, "threshold"),
     ({"criterion_scoring": "lenient"}, "criterion_scoring"), ({"momentum": 0.9}, "momentum"),
     ({"lr_decay_batches": 0}, "lr_decay_batches"),
     ({"lr_final_steps": [0]}, "lr_final_steps"), ({"lr_final_factor": 0}, "lr_final_factor")],
)
def test_bad_hyperparameters(bad, message):
    with pytest.raises(TrainingConfigError, match=message):
        TrainConfig.from_mapping(bad)


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    root = tmp_path_factory.mktemp("pools")
    paths = {}
    for task in TASKS:
        path = root / f"{task}.parquet"
        write_trials(generate_pool(task, 256, 0, "train"), path)
        paths[task] = path
    return paths


def job(tmp_path, pools, tasks, config, name="simplenet", hidden=32, **kw):
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    table = train_job(
        spec=model_spec(name, LMS), holdout="test", seed=0, tasks=tasks, pool_paths=pools,
        config=config, base_seed=1, model_out=out / "model.pt", log_out=out / "log.parquet",
        hidden=hidden, progress=False, **kw,
    )
    return table, out


def test_short_training_learns(tmp_path, pools):
    cfg = TrainConfig(batch_size=32, batches_per_epoch=80, lr=3e-3, min_epochs=4, max_epochs=4,
                      lr_decay_batches=80)  # x 0.95 per 80 batches = per epoch here
    table, out = job(tmp_path, pools, ["Go", "AntiGo", "GoMod1"], cfg, hidden=64)
    by_epoch = table.groupby("epoch")[["loss", "accuracy"]].mean()
    assert by_epoch["loss"].iloc[-1] < 0.5 * by_epoch["loss"].iloc[0]
    assert by_epoch["accuracy"].iloc[-1] > 0.3  # chance (a random direction) is ~0.1
    assert list(table["epoch"].unique()) == [1, 2, 3, 4]
    assert np.allclose(table.groupby("epoch")["lr"].first().to_numpy(), 3e-3 * 0.95 ** np.arange(4))
    model, meta = load_model(out / "model.pt")
    assert meta["training_tasks"] == ["Go", "AntiGo", "GoMod1"] and meta["epochs"] == 4
    logged = pd.read_parquet(out / "log.parquet")
    assert {"holdout", "model", "seed", "epoch", "task", "loss", "accuracy", "lr", "seconds",
            "trials_per_s"} <= set(logged.columns)


def test_stopping_rule(pools):
    from instructnet.tasks import TrialBatch, read_trials
    from instructnet.training import Trainer, TrainingData

    tasks = ["Go", "DM"]
    data = TrainingData(tasks, {t: TrialBatch.from_frame(read_trials(pools[t])) for t in tasks})
    cfg = TrainConfig(batch_size=8, batches_per_epoch=4, min_epochs=2, max_epochs=5, threshold=0.9)
    trainer = Trainer(rule_model(hidden=8), data, cfg, seed=0)
    good = pd.DataFrame({"task": tasks, "accuracy": [0.95, 0.91]})
    bad = pd.DataFrame({"task": tasks, "accuracy": [0.99, 0.5]})
    verdicts = {}
    for epoch in (1, 2, 4, 5):
        trainer.epoch = epoch
        verdicts[epoch] = (trainer.done(good), trainer.done(bad))
    assert verdicts == {1: (False, False), 2: (True, False), 4: (True, False), 5: (True, True)}
    with pytest.raises(TrainingConfigError, match="batches_per_epoch"):
        Trainer(rule_model(hidden=8), data, TrainConfig(batches_per_epoch=1), seed=0)


def test_stop_training_is_the_criterion_with_max_epochs_as_cap():
    from instructnet.training.loop import criterion_met, stop_training

    cfg = TrainConfig(min_epochs=2, max_epochs=5, threshold=0.9)
    assert criterion_met([0.95, 0.9], cfg) and not criterion_met([0.95, 0.89], cfg)
    assert not criterion_met([0.95, float("nan")], cfg) and not criterion_met([], cfg)
    verdicts = {e: (stop_training(e, [0.95, 0.91], cfg), stop_training(e, [0.99, 0.5], cfg))
                for e in (0, 1, 2, 4, 5, 6)}
    assert verdicts == {0: (False, False), 1: (False, False), 2: (True, False),
                        4: (True, False), 5: (True, True), 6: (True, True)}


def test_training_runs_to_criterion(tmp_path, pools, monkeypatch, caplog):
    """A run stops at the first epoch (>= min_epochs) in which every task meets the
    threshold, long before max_epochs; one that never does stops at the cap and says so."""
    import logging

    from instructnet.training import loop

    cfg = TrainConfig(batch_size=4, batches_per_epoch=4, min_epochs=2, max_epochs=6)
    (tmp_path / "met").mkdir(), (tmp_path / "cap").mkdir()
    with monkeypatch.context() as m:  # every trial scored correct: criterion met at once
        m.setattr(loop, "is_correct", lambda out, trials, scoring="strict": torch.ones(out.shape[0], dtype=torch.bool))
        table, out = job(tmp_path / "met", pools, ["Go", "DM"], cfg, hidden=8)
    _, meta = load_model(out / "model.pt")
    assert table["epoch"].max() == 2 and meta["epochs"] == 2 and meta["reached_criterion"]
    with caplog.at_level(logging.WARNING, logger="instructnet.training.loop"):
        table, out = job(tmp_path / "cap", pools, ["Go", "DM"],
                         TrainConfig(**{**cfg.__dict__, "max_epochs": 3, "threshold": 1.0}), hidden=8)
    _, meta = load_model(out / "model.pt")
    assert table["epoch"].max() == 3 and not meta["reached_criterion"]
    assert "stopped at max_epochs (3) without meeting the criterion" in caplog.text
    # training.criterion_scoring decides the rule of the log and the criterion
    seen = []

    def spy(out, trials, scoring="strict"):
        seen.append(scoring)
        return torch.ones(out.shape[0], dtype=torch.bool)

    with monkeypatch.context() as m:
        m.setattr(loop, "is_correct", spy)
        (tmp_path / "paper").mkdir()
        job(tmp_path / "paper", pools, ["Go"], TrainConfig(**{**cfg.__dict__, "max_epochs": 2,
                                                             "criterion_scoring": "paper"}), hidden=8)
    assert seen and set(seen) == {"paper"}


def test_lr_schedule_does_not_depend_on_epoch_size(pools):
    """lr x lr_decay per lr_decay_batches batches, whatever the epoch size: after the same
    number of batches, runs with 4- and 8-batch epochs have the same learning rate."""
    from instructnet.tasks import TrialBatch, read_trials
    from instructnet.training import Trainer, TrainingData

    tasks = ["Go", "DM"]
    data = TrainingData(tasks, {t: TrialBatch.from_frame(read_trials(pools[t])) for t in tasks})
    rates = {}
    for bpe in (4, 8):
        cfg = TrainConfig(batch_size=2, batches_per_epoch=bpe, lr=1e-3, lr_decay=0.5,
                          lr_decay_batches=8, min_epochs=16 // bpe, max_epochs=16 // bpe)
        assert cfg.epoch_lr_factor == pytest.approx(0.5 ** (bpe / 8))
        trainer = Trainer(rule_model(hidden=8), data, cfg, seed=0)
        log = trainer.fit(progress=False)
        lr = log.groupby("epoch")["lr"].first()  # the rate of each epoch's batches
        rates[bpe] = {int((e - 1) * bpe): float(v) for e, v in lr.items()}  # batches before
        rates[bpe][16] = trainer.optimizer.param_groups[0]["lr"]
    assert rates[4].keys() >= rates[8].keys() == {0, 8, 16}
    for batches in (0, 8, 16):
        assert rates[4][batches] == pytest.approx(rates[8][batches], rel=1e-12)
        assert rates[8][batches] == pytest.approx(1e-3 * 0.5 ** (batches / 8), rel=1e-12)
    # the paper: x 0.95 after every 2400-batch epoch
    assert TrainConfig().epoch_lr_factor == pytest.approx(0.95)


def test_last_epochs_step_is_the_references_multisteplr():
    """lr_final_steps (5, 2, 1) × 0.25 gives, epoch by epoch, the rates of the reference
    code's ExponentialLR chained with MultiStepLR(milestones = cap - 5, cap - 2, cap - 1,
    gamma 0.25), stepped once per epoch."""
    from instructnet.training.loop import lr_scheduler

    cfg = TrainConfig.from_mapping({"batches_per_epoch": 500, "lr_decay_batches": 2400,
                                    "min_epochs": 1, "max_epochs": 12,
                                    "lr_final_steps": [5, 2, 1], "lr_final_factor": 0.25})
    assert cfg.lr_final_steps == (5, 2, 1)  # a YAML list becomes a tuple (hashable, saved)

    def optimiser():
        return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)

    ours = lr_scheduler(mine := optimiser(), cfg)
    theirs = optimiser()
    chain = [torch.optim.lr_scheduler.ExponentialLR(theirs, cfg.epoch_lr_factor),
             torch.optim.lr_scheduler.MultiStepLR(theirs, milestones=[7, 10, 11], gamma=0.25)]
    rates = []
    for _ in range(12):
        rates.append(mine.param_groups[0]["lr"])
        assert rates[-1] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12)
        mine.step(), ours.step()
        theirs.step()
        for s in chain:
            s.step()
    decay = 0.95 ** (500 / 2400)
    assert rates[6] == pytest.approx(1e-3 * decay ** 6)  # before the last five epochs
    assert rates[7] == pytest.approx(1e-3 * decay ** 7 * 0.25)
    assert rates[11] == pytest.approx(1e-3 * decay ** 11 * 0.25 ** 3)
    # a later start (a tuned model's second phase) starts at its initial rate
    late = lr_scheduler(opt := optimiser(), cfg, start_epoch=9)
    seen = []
    for _ in range(3):
        seen.append(opt.param_groups[0]["lr"])
        opt.step(), late.step()
    assert seen == pytest.approx([1e-3, 1e-3 * decay * 0.25, 1e-3 * decay ** 2 * 0.25 ** 2])
    # a step before the first epoch does not happen; one at the first applies throughout
    short = TrainConfig(min_epochs=1, max_epochs=3, lr_final_steps=(5, 3))
    assert [short.lr_factor(e) / short.epoch_lr_factor ** e for e in range(3)] == [0.25] * 3
    # off by default: the plain per-epoch decay
    assert TrainConfig(min_epochs=1, max_epochs=12).lr_factor(11) == pytest.approx(0.95 ** 11)


def test_instructed_training_reads_embeddings(tmp_path, pools):
    from instructnet.embeddings import embed_corpus, write_embeddings
    from instructnet.instructions import load_corpus

    corpus = load_corpus()
    pooled, _ = embed_corpus(BUILTIN_MODELS["bownet"], corpus)
    write_embeddings(corpus, pooled, tmp_path / "bownet.parquet")
    cfg = TrainConfig(batch_size=8, batches_per_epoch=6, min_epochs=1, max_epochs=1)
    table, out = job(tmp_path, pools, ["Go", "DM", "DMS"], cfg, name="bownet", hidden=8,
                     embeddings_path=tmp_path / "bownet.parquet")
    model, _ = load_model(out / "model.pt")
    assert model.encoder.embeddings.shape == pooled.shape


def test_cpu_determinism(tmp_path, pools):
    cfg = TrainConfig(batch_size=16, batches_per_epoch=10, min_epochs=2, max_epochs=2)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, out_a = job(tmp_path / "a", pools, ["Go", "COMP1"], cfg, hidden=16)
    b, out_b = job(tmp_path / "b", pools, ["Go", "COMP1"], cfg, hidden=16)
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING))
    sa = torch.load(out_a / "model.pt", weights_only=False)["state_dict"]
    sb = torch.load(out_b / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, pools):
    from instructnet.tasks import read_trials

    bad = read_trials(pools["DM"])
    bad["m1_s1_str"] = np.inf
    bad["m2_s1_str"] = np.inf
    path = tmp_path / "DM_bad.parquet"
    write_trials(bad, path)
    cfg = TrainConfig(batch_size=8, batches_per_epoch=4, min_epochs=1, max_epochs=1)
    with pytest.raises(TrainingDiverged, match=r"test/simplenet/seed0: loss became nan in epoch 1 on task DM"):
        job(tmp_path, {**pools, "DM": path}, ["Go", "DM"], cfg, hidden=8)
    assert not (tmp_path / "simplenet" / "model.pt").exists()


RESUME_SCRIPT = """
import sys
from instructnet.embeddings import language_models
from instructnet.models import model_spec
from instructnet.tasks import TASKS
from instructnet.training import TrainConfig
from instructnet.training.run import train_job
root, out = sys.argv[1], sys.argv[2]
tasks = ["Go", "AntiGo", "DM"]
train_job(model_spec("simplenet", language_models()), "test", 0, tasks,
          {t: f"{root}/{t}.parquet" for t in tasks},
          TrainConfig(batch_size=16, batches_per_epoch=30, min_epochs=4, max_epochs=4),
          1, f"{out}/model.pt", f"{out}/log.parquet", hidden=32, progress=False,
          checkpoint=f"{out}/checkpoint.pt")
"""


def test_resume_after_kill_gives_the_same_weights(tmp_path, pools):
    root = pools["Go"].parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir(), resumed.mkdir()
    cmd = [sys.executable, "-c", RESUME_SCRIPT, str(root)]
    subprocess.run(cmd + [str(straight)], check=True, env=env)
    proc = subprocess.Popen(cmd + [str(resumed)], env=env)
    ckpt = resumed / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of epoch 2
    proc.wait()
    assert ckpt.exists() and not (resumed / "model.pt").exists()
    subprocess.run(cmd + [str(resumed)], check=True, env=env)
    assert not ckpt.exists()
    a = torch.load(straight / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(resumed / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = pd.read_parquet(straight / "log.parquet").drop(columns=TIMING)
    lb = pd.read_parquet(resumed / "log.parquet").drop(columns=TIMING)
    pd.testing.assert_frame_equal(la, lb)


def test_tuned_variant_trains_the_last_blocks_only(tmp_path, pools, tiny_models):
    from instructnet.embeddings import embed_corpus, load, write_embeddings
    from instructnet.instructions import load_corpus
    from instructnet.training.run import TuningConfig

    lm = tiny_models["bert"]
    corpus = load_corpus()
    pooled, _ = embed_corpus(lm, corpus)
    write_embeddings(corpus, pooled, tmp_path / "tiny.parquet")
    spec = model_spec("tiny_bert_tuned", {**LMS, "tiny_bert": lm})
    assert spec.tuned and spec.lm == "tiny_bert"
    # the last-epochs step counts epochs over both phases: here the third and last
    cfg = TrainConfig(batch_size=8, batches_per_epoch=6, min_epochs=3, max_epochs=3,
                      lr_final_steps=(1,))
    out = tmp_path / "tuned"
    out.mkdir()
    table = train_job(spec, "test", 0, ["Go", "DM", "DMS"], pools, cfg, 1, out / "model.pt",
                      out / "log.parquet", embeddings_path=tmp_path / "tiny.parquet", hidden=8,
                      progress=False, language_model=lm, checkpoint=out / "checkpoint.pt",
                      tuning=TuningConfig(from_epoch=1, lr=1e-4, lm_lr=1e-2, blocks=1))
    assert sorted(table["epoch"].unique()) == [1, 2, 3]
    lrs = table.groupby("epoch")["lr"].first()
    assert lrs[1] == 1e-3 and lrs[2] == pytest.approx(1e-4)  # the tuning rate from epoch 2
    assert lrs[3] == pytest.approx(1e-4 * cfg.epoch_lr_factor * 0.25)
    model, meta = load_model(out / "model.pt")
    _, original = load(lm)
    tuned_state = model.encoder.network.state_dict()
    changed = {k for k, v in original.state_dict().items() if not torch.equal(v, tuned_state[k])}
    assert changed and all(k.startswith("encoder.layer.1.") for k in changed)
    assert not list((out).glob("checkpoint*"))
    # before its blocks move, the language model in the loop gives the cached vectors
    from instructnet.models.encoders import InstructionEncoder, TunedInstructionEncoder

    idx = torch.tensor([0, 17, 500, 999])
    task = torch.zeros(4, dtype=torch.long)
    for norm in ("none", "zscore", "whiten"):  # with the cached encoder's fixed input map
        cached = InstructionEncoder(torch.tensor(pooled), norm=norm)
        tokenizer, network = load(lm)
        live = TunedInstructionEncoder(tokenizer, network, lm.pooling, list(corpus["text"]),
                                       cached, blocks=1)
        assert torch.allclose(live(task, idx), cached(task, idx), atol=1e-4), norm


def test_model_files_are_read_safely_and_bad_ones_named(tmp_path, pools):
    """model.pt is read with weights_only=True: a file that would run code is refused
    without running it; garbage or a truncated file names itself and the fix."""
    import pickle

    from instructnet.models.io import ModelFileError

    cfg = TrainConfig(batch_size=4, batches_per_epoch=2, min_epochs=1, max_epochs=1)
    _, out = job(tmp_path, pools, ["Go"], cfg, hidden=8)
    good = out / "model.pt"
    model, meta = load_model(good)  # the current format loads
    assert meta["seed"] == 0 and model.rnn.hidden_size == 8

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"spec": Evil()}, evil)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    plain_pickle = tmp_path / "pickle.pt"
    plain_pickle.write_bytes(pickle.dumps(Evil()))
    for bad in (evil, garbage, truncated, plain_pickle):
        with pytest.raises(ModelFileError, match="delete it and rerun") as err:
            load_model(bad)
        assert str(bad) in str(err.value) and len(str(err.value).splitlines()) == 1
    assert not marker.exists()  # nothing in those files was executed


def test_an_unreadable_checkpoint_names_itself(tmp_path, pools):
    from instructnet.models.io import ModelFileError

    cfg = TrainConfig(batch_size=4, batches_per_epoch=2, min_epochs=1, max_epochs=1)
    out = tmp_path / "ck"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match="checkpoint.pt.*delete it and the job starts afresh"):
        train_job(spec=model_spec("simplenet", LMS), holdout="test", seed=0, tasks=["Go"],
                  pool_paths=pools, config=cfg, base_seed=1, model_out=out / "model.pt",
                  log_out=out / "log.parquet", hidden=8, progress=False,
                  checkpoint=out / "checkpoint.pt")


# ----------------------------------------------------------- trials.convention
def _spy_render(monkeypatch, module):
    """Record every tensor batch ``module`` renders (its inputs and targets)."""
    from instructnet.tasks import rendering

    seen = []

    def spy(trials, **kw):
        r = rendering.render(trials, **kw)
        seen.append((trials.stimulus, r.inputs.clone(), r.targets.clone()))
        return r

    monkeypatch.setattr(module, "render", spy)
    return seen


def test_the_convention_changes_what_training_and_evaluation_see(tmp_path, pools, monkeypatch):
    """trials.convention reaches the tensors of training, of a resumed checkpoint and of
    every evaluation test: same seeds, other geometry, other tensors."""
    from instructnet.evaluation.run import evaluate
    from instructnet.tasks import PAPER, Stimulus
    from instructnet.tasks import batches as drawn

    reference = Stimulus("reference")
    cfg = TrainConfig(batch_size=8, batches_per_epoch=2, min_epochs=1, max_epochs=1)
    seen, models = {}, {}
    for stimulus in (PAPER, reference):
        batches = _spy_render(monkeypatch, drawn)
        (tmp_path / stimulus.convention).mkdir()
        _, out = job(tmp_path / stimulus.convention, pools, ["Go", "DM"], cfg, stimulus=stimulus)
        assert {s for s, _, _ in batches} == {stimulus}
        models[stimulus] = out / "model.pt"
        assert load_model(models[stimulus])[1]["stimulus"] == stimulus.settings()
        evaluated = _spy_render(monkeypatch, drawn)
        evaluate("heldout", models[stimulus], "test", None, ["AntiGo"], pools, None,
                 {"batches": 1, "batch_size": 8, "repeats": 1}, seed=0, stimulus=stimulus)
        assert {s for s, _, _ in evaluated} == {stimulus}
        seen[stimulus] = (batches, evaluated)
    for phase in (0, 1):  # training, evaluation
        (_, x_paper, y_paper), (_, x_ref, y_ref) = (seen[s][phase][0] for s in (PAPER, reference))
        assert not torch.allclose(x_paper, x_ref) and not torch.allclose(y_paper, y_ref)


def test_a_checkpoint_resumes_only_under_its_own_convention(tmp_path, pools):
    from instructnet.models import build_model
    from instructnet.tasks import Stimulus
    from instructnet.tasks.rendering import read_pools
    from instructnet.training import Trainer, TrainingData

    cfg = TrainConfig(batch_size=8, batches_per_epoch=2, min_epochs=1, max_epochs=1)
    spec = model_spec("simplenet", LMS)

    def trainer(stimulus):
        data = TrainingData(["Go"], read_pools({"Go": pools["Go"]}, stimulus))
        return Trainer(build_model(spec, 0, hidden=16), data, cfg, 0)

    state = trainer(Stimulus()).state()
    trainer(Stimulus()).load_state(state)
    with pytest.raises(ValueError, match="other training settings.*trials"):
        trainer(Stimulus("reference")).load_state(state)
    del state["stimulus"]  # checkpoints older than trials.convention: the paper's geometry
    trainer(Stimulus()).load_state(state)
