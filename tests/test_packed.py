"""Packed training: stacked networks equal their one-at-a-time runs (CPU, tiny sizes)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import pack_members

from instructnet.embeddings import BUILTIN_MODELS, language_models
from instructnet.models import build_model, model_spec
from instructnet.models.packed import PackedNetworks, packed_relu_gru, reference_packed_forward
from instructnet.tasks import generate_pool, write_trials
from instructnet.training import TrainConfig
from instructnet.training.packed import PackedTrainer, PackingError, PackMember, train_pack
from instructnet.training.run import train_job

LMS = language_models()
TIMING = ["seconds", "trials_per_s"]
TASKS = ["Go", "AntiGo", "DM"]


# --- the stacked recurrence -----------------------------------------------------------


@pytest.mark.parametrize("with_const", [True, False])
def test_packed_gru_matches_plain_autograd(with_const):
    gen = torch.Generator().manual_seed(0)
    N, T, B, I, C, H = 3, 40, 5, 7, 4, 6
    kw = dict(dtype=torch.float64)
    args = [torch.randn(N, T, B, I, generator=gen, **kw),
            torch.randn(N, B, C, generator=gen, **kw) if with_const else None,
            torch.rand(N, B, H, generator=gen, **kw),
            0.4 * torch.randn(N, 3 * H, I + (C if with_const else 0), generator=gen, **kw),
            0.4 * torch.randn(N, 3 * H, H, generator=gen, **kw),
            torch.randn(N, 3 * H, generator=gen, **kw), torch.randn(N, 3 * H, generator=gen, **kw)]
    args = [a.requires_grad_() if a is not None else None for a in args]
    fast, ref = packed_relu_gru(*args), reference_packed_forward(*args)
    assert torch.allclose(fast, ref, atol=1e-12)
    weight = torch.randn(fast.shape, generator=gen, **kw)
    leaves = [a for a in args if a is not None]
    g_fast = torch.autograd.grad((fast * weight).sum(), leaves)
    g_ref = torch.autograd.grad((ref * weight).sum(), leaves)
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-10)
    with torch.no_grad():  # the no-grad path gives the same states
        assert torch.allclose(packed_relu_gru(*args), ref, atol=1e-12)


def test_one_backward_through_time_serves_single_and_packed_networks(monkeypatch):
    """gru.backward_through_time is the pure-torch backward of both recurrences: a
    network alone and as the only member of a pack get the same gradients from it."""
    from instructnet.models import gru, packed

    monkeypatch.setattr(gru, "_use_fused", lambda t: False)  # the pure-torch path
    layouts, real = [], gru.backward_through_time

    def spy(go, *rest):
        layouts.append(go.dim())
        return real(go, *rest)

    monkeypatch.setattr(packed, "backward_through_time", spy)
    gen = torch.Generator().manual_seed(3)
    T, B, I, C, H = 40, 5, 7, 4, 6  # T above the backward's block of 32 steps
    kw = dict(dtype=torch.float64)
    x, const = torch.randn(B, T, I, generator=gen, **kw), torch.randn(B, C, generator=gen, **kw)
    h0 = torch.rand(B, H, generator=gen, **kw)
    weights = [0.4 * torch.randn(3 * H, I + C, generator=gen, **kw),
               0.4 * torch.randn(3 * H, H, generator=gen, **kw),
               torch.randn(3 * H, generator=gen, **kw), torch.randn(3 * H, generator=gen, **kw)]
    weight = torch.randn(B, T, H, generator=gen, **kw)
    single = [t.clone().requires_grad_() for t in (x, const, h0, *weights)]
    monkeypatch.setattr(gru, "backward_through_time", spy)
    out = gru.relu_gru(*single)
    g_single = torch.autograd.grad((out * weight).sum(), single)
    stacked = [t.unsqueeze(0).clone().requires_grad_()
               for t in (x.transpose(0, 1), const, h0, *weights)]
    out_p = packed.packed_relu_gru(*stacked)
    g_packed = torch.autograd.grad((out_p * weight.transpose(0, 1).unsqueeze(0)).sum(), stacked)
    assert layouts == [3, 4]  # time-major (T, B, H), then (N, T, B, H)
    torch.testing.assert_close(g_packed[0][0].transpose(0, 1), g_single[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(g_packed[1:], g_single[1:]):
        torch.testing.assert_close(a[0], b, rtol=1e-10, atol=1e-12)


def test_stacked_networks_are_independent():
    """Network n of a pack computes what its model computes alone."""
    models = [build_model(model_spec("simplenet", LMS), s, hidden=12) for s in range(3)]
    packed = PackedNetworks.from_models(models)
    x = torch.rand(3, 150, 4, 65)
    const = torch.randn(3, 4, 64)
    out, hidden = packed(x, const)
    for n, m in enumerate(models):
        alone, h = m(x[n].transpose(0, 1), const[n])
        assert torch.allclose(out[n].transpose(0, 1), alone, atol=1e-5)
    # a loss on network 0 only gives network 0 gradients
    out[0].sum().backward()
    assert packed.weight_hh.grad[1:].abs().max() == 0 and packed.weight_hh.grad[0].abs().max() > 0
    copy = build_model(model_spec("simplenet", LMS), 9, hidden=12)
    packed.write_back(2, copy)
    assert torch.equal(copy.rnn.weight_ih, models[2].rnn.weight_ih)
    with pytest.raises(ValueError, match="different sizes"):
        PackedNetworks.from_models([models[0], build_model(model_spec("simplenet", LMS), 0, hidden=8)])


# --- training ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from instructnet.embeddings import embed_corpus, write_embeddings
    from instructnet.instructions import load_corpus

    root = tmp_path_factory.mktemp("packed_inputs")
    pools = {}
    for task in TASKS:
        pools[task] = root / f"{task}.parquet"
        write_trials(generate_pool(task, 64, 0, "train"), pools[task])
    corpus = load_corpus()
    pooled, _ = embed_corpus(BUILTIN_MODELS["bownet"], corpus)
    write_embeddings(corpus, pooled, root / "bownet.parquet")
    return pools, {"bownet": root / "bownet.parquet"}


CFG = TrainConfig(batch_size=8, batches_per_epoch=9, min_epochs=1, max_epochs=3)
# (model, seed, config): one network is capped at 1 epoch, so it stops while the others go
# on; one has its own learning-rate schedule (x lr_decay per 3 batches and a last-epochs
# step: per-network rates)
GRID = [("simplenetplus", 0, CFG),
        ("bownet", 1, TrainConfig(**{**CFG.__dict__, "lr_decay_batches": 3,
                                     "lr_final_steps": (1,)})),
        ("simplenetplus", 2, TrainConfig(**{**CFG.__dict__, "max_epochs": 1}))]


def members(folder, grid=GRID, checkpoints=True):
    return pack_members(folder, grid, TASKS, LMS, checkpoints)


def unpacked(folder, inputs, grid=GRID, **kw):
    pools, emb = inputs
    for name, seed, cfg in grid:
        d = folder / f"{name}_{seed}"
        d.mkdir(parents=True, exist_ok=True)
        train_job(model_spec(name, LMS), "h", seed, TASKS, pools, cfg, 1, d / "model.pt",
                  d / "log.parquet", embeddings_path=emb.get(name), hidden=12, progress=False,
                  **kw)


def assert_same_results(a_dir, b_dir, grid=GRID):
    for name, seed, _ in grid:
        a = torch.load(a_dir / f"{name}_{seed}" / "model.pt", weights_only=False)
        b = torch.load(b_dir / f"{name}_{seed}" / "model.pt", weights_only=False)
        assert {k: v for k, v in a.items() if k != "state_dict"} == \
               {k: v for k, v in b.items() if k != "state_dict"}
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for k, v in a["state_dict"].items():
            assert torch.allclose(v, b["state_dict"][k], rtol=1e-4, atol=1e-5), (name, seed, k)
        la = pd.read_parquet(a_dir / f"{name}_{seed}" / "log.parquet").drop(columns=TIMING)
        lb = pd.read_parquet(b_dir / f"{name}_{seed}" / "log.parquet").drop(columns=TIMING)
        pd.testing.assert_frame_equal(la, lb, check_exact=False, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, inputs):
    folder = tmp_path_factory.mktemp("unpacked")
    unpacked(folder, inputs)
    return folder


def test_packed_training_equals_unpacked(tmp_path, inputs, reference):
    pools, emb = inputs
    # two slots for three networks: the third joins when the capped one leaves
    tables = train_pack(members(tmp_path), pools, 1, emb, hidden=12, max_networks=2,
                        progress=False)
    assert_same_results(reference, tmp_path)
    epochs = [int(t["epoch"].max()) for t in tables]
    assert epochs[2] == 1 and max(epochs) > 1  # one stopped early, the others went on
    assert not list(tmp_path.rglob("checkpoint.pt"))


def test_packed_training_equals_unpacked_under_the_reference_convention(tmp_path, inputs):
    """One σ per batch is per network batch in the stack (render's ``batch``): the
    stacked batches render as each network's own would."""
    from instructnet.tasks import Stimulus

    reference = Stimulus("reference")
    grid = GRID[:2]
    pools, emb = inputs
    unpacked(tmp_path / "a", inputs, grid, stimulus=reference)
    train_pack(members(tmp_path / "b", grid), pools, 1, emb, hidden=12, progress=False,
               stimulus=reference)
    assert_same_results(tmp_path / "a", tmp_path / "b", grid)
    saved = torch.load(tmp_path / "b" / "bownet_1" / "model.pt", weights_only=True)
    assert saved["stimulus"] == reference.settings()


def test_packed_and_unpacked_stop_alike_at_the_criterion(tmp_path, inputs, monkeypatch):
    """Both paths use one stopping rule: every task >= threshold after min_epochs, with
    max_epochs only as a cap (here every trial is scored correct, so the criterion is
    met from the first epoch on)."""
    from instructnet.training import loop, packed

    def always(out, trials, scoring="strict", batch=None):
        return torch.ones(out.shape[0], dtype=torch.bool)

    monkeypatch.setattr(loop, "is_correct", always)
    monkeypatch.setattr(packed, "is_correct", always)
    grid = [("simplenet", 0, TrainConfig(**{**CFG.__dict__, "min_epochs": 2, "max_epochs": 6})),
            ("simplenet", 1, TrainConfig(**{**CFG.__dict__, "min_epochs": 1, "max_epochs": 6}))]
    pools, emb = inputs
    unpacked(tmp_path / "a", inputs, grid)
    tables = train_pack(members(tmp_path / "b", grid), pools, 1, emb, hidden=12, progress=False)
    assert_same_results(tmp_path / "a", tmp_path / "b", grid)
    assert [int(t["epoch"].max()) for t in tables] == [2, 1]
    for name, seed, _ in grid:
        saved = torch.load(tmp_path / "b" / f"{name}_{seed}" / "model.pt", weights_only=False)
        assert saved["reached_criterion"]


def test_packed_run_resumes_from_its_checkpoints(tmp_path, inputs, reference, monkeypatch):
    pools, emb = inputs
    real_epoch = PackedTrainer.run_epoch
    calls = []

    def dying_epoch(self):
        if len(calls) == 1:
            raise KeyboardInterrupt("killed")
        calls.append(1)
        real_epoch(self)

    monkeypatch.setattr(PackedTrainer, "run_epoch", dying_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_pack(members(tmp_path), pools, 1, emb, hidden=12, progress=False)
    assert len(list(tmp_path.rglob("checkpoint.pt"))) == 3
    monkeypatch.setattr(PackedTrainer, "run_epoch", real_epoch)
    # the capped network finished in epoch 1 and was written out; the job "failed", so
    # (as Snakemake does) its outputs go; the checkpoint brings it back without training
    for f in tmp_path.rglob("model.pt"):
        f.unlink()
    # one network resumes on the unpacked path (same checkpoint format), the rest packed
    name, seed, cfg = GRID[1]
    d = tmp_path / f"{name}_{seed}"
    train_job(model_spec(name, LMS), "h", seed, TASKS, pools, cfg, 1, d / "model.pt",
              d / "log.parquet", embeddings_path=emb[name], hidden=12, progress=False,
              checkpoint=d / "checkpoint.pt")
    rest = [m for m in members(tmp_path) if m.spec.name != name]
    train_pack(rest, pools, 1, emb, hidden=12, progress=False)
    assert_same_results(reference, tmp_path)


def test_tuned_and_mismatched_networks_are_rejected(tmp_path, inputs, tiny_models):
    pools, emb = inputs
    spec = model_spec("tiny_bert_tuned", {**LMS, "tiny_bert": tiny_models["bert"]})
    tuned = PackMember(spec, "h", 0, TASKS, CFG, tmp_path / "m.pt", tmp_path / "l.parquet")
    with pytest.raises(PackingError, match="h/tiny_bert_tuned/seed0: tuned models .* cannot be packed"):
        train_pack([tuned], pools, 1, emb, hidden=8, progress=False)
    grid = [("simplenet", 0, CFG), ("simplenet", 1, TrainConfig(**{**CFG.__dict__, "batch_size": 4}))]
    with pytest.raises(PackingError, match="batch_size"):
        train_pack(members(tmp_path, grid), pools, 1, emb, hidden=8, progress=False)
    assert not list(tmp_path.rglob("model.pt"))


def test_divergence_names_the_network(tmp_path, inputs):
    from instructnet.tasks import read_trials
    from instructnet.training import TrainingDiverged

    pools, emb = inputs
    bad = read_trials(pools["DM"])
    bad["m1_s1_str"] = np.inf
    bad["m2_s1_str"] = np.inf
    write_trials(bad, tmp_path / "DM.parquet")
    grid = [("simplenet", 0, CFG), ("simplenet", 1, CFG)]
    with pytest.raises(TrainingDiverged, match=r"h/simplenet/seed0: loss became nan in epoch 1 on task DM"):
        train_pack(members(tmp_path, grid), {**pools, "DM": tmp_path / "DM.parquet"}, 1, emb,
                   hidden=8, progress=False)
    assert not list(tmp_path.rglob("model.pt"))


# --- benchmark ------------------------------------------------------------------------


def test_bench_reports_the_scaling_curve(capsys):
    from instructnet.bench.__main__ import main

    main(["train-step", "--networks", "1,3", "--hidden", "8", "--batch-size", "4", "--repeats", "2"])
    result = json.loads(capsys.readouterr().out)
    assert [r["networks"] for r in result["packed"]] == [1, 3]
    for row in result["packed"]:
        assert row["trial_steps_per_s"] == pytest.approx(
            row["networks"] * 4 / (row["ms_per_step_median"] / 1e3), rel=0.01)
        assert row["speedup_vs_unpacked"] > 0
    with pytest.raises(SystemExit):
        main(["train-step", "--networks", "0,2"])


# --- workflow ---------------------------------------------------------------------------

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.mark.workflow
def test_workflow_with_packing_writes_the_unpacked_outputs(repo, tmp_path):
    """rule train_packed makes the files rule train makes, with the same contents (the
    unpacked reference is train_job, what rule train runs, on the workflow's inputs)."""
    from instructnet.models.spec import model_spec as spec_of
    from instructnet.tasks import training_tasks

    config = yaml.safe_load((repo / "config" / "test.yaml").read_text())
    config["training"]["seeds"] = [0, 1]
    config["training"]["packing"] = {"by": "seeds", "max_networks": 2}
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump(config))
    models = ("simplenet", "sbertnet_minilm")
    targets = [f"results/models/swap9/{m}/seed{s}/{f}" for m in models for s in (0, 1)
               for f in ("model.pt", "train_log.parquet")]
    cmd = [SNAKEMAKE, "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(path), "--cores", "2", *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count("rule train_packed:") == 2 and "rule train:" not in out
    assert (tmp_path / "logs" / "models" / "swap9" / "sbertnet_minilm" / "packed.log").exists()
    assert not list((tmp_path / "results" / "models").rglob("checkpoint.pt"))

    training = {k: v for k, v in config["training"].items()
                if k not in ("seeds", "hidden", "threshold_gpt", "packing")}
    tasks = training_tasks("swap9")
    pools = {t: tmp_path / "results" / "trials" / "train" / f"{t}.parquet" for t in tasks}
    for model in models:
        for seed in (0, 1):
            ref = tmp_path / "unpacked" / model / str(seed)
            ref.mkdir(parents=True)
            train_job(spec_of(model, LMS), "swap9", seed, tasks, pools, TrainConfig(**training),
                      config["seed"], ref / "model.pt", ref / "log.parquet",
                      embeddings_path=tmp_path / "results" / "embeddings" / "sbertnet_minilm.parquet",
                      hidden=config["training"]["hidden"], progress=False)
            folder = tmp_path / "results" / "models" / "swap9" / model / f"seed{seed}"
            a = torch.load(ref / "model.pt", weights_only=False)
            b = torch.load(folder / "model.pt", weights_only=False)
            assert a["epochs"] == b["epochs"] and a["train_config"] == b["train_config"]
            assert all(torch.allclose(v, b["state_dict"][k], rtol=1e-4, atol=1e-5)
                       for k, v in a["state_dict"].items())
            pd.testing.assert_frame_equal(
                pd.read_parquet(ref / "log.parquet").drop(columns=TIMING),
                pd.read_parquet(folder / "train_log.parquet").drop(columns=TIMING),
                check_exact=False, rtol=1e-4, atol=1e-6)
    # switching packing off: another rule, so Snakemake's provenance triggers would retrain;
    # the files are the same, so with modification times only nothing is to be done
    config["training"]["packing"] = {"by": "none", "max_networks": 2}
    path.write_text(yaml.safe_dump(config))
    dry = subprocess.run(cmd + ["-n", "--rerun-triggers", "mtime"], capture_output=True, text=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


@pytest.mark.workflow
def test_packing_by_models_is_one_job_per_holdout(repo, tmp_path):
    """training.packing.by: models: one train_packed job trains both models x both seeds
    of a holdout (a dry run: the job's shape; the training itself is the test above's)."""
    config = yaml.safe_load((repo / "config" / "test.yaml").read_text())
    config["training"]["seeds"] = [0, 1]
    config["training"]["packing"] = {"by": "models", "max_networks": 4}
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = [f"results/models/swap9/{m}/seed{s}/model.pt"
               for m in ("simplenet", "sbertnet_minilm") for s in (0, 1)]
    proc = subprocess.run([SNAKEMAKE, "--snakefile", str(repo / "Snakefile"), "--directory",
                           str(tmp_path), "--configfile", str(path), "-n", *targets],
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert out.count("rule train_packed:") == 1 and "rule train:" not in out
    assert "log: logs/models/swap9/packed.log" in out


def test_training_steps_bring_no_host_data_to_the_device():
    """A training step, single or packed, neither lifts host data into tensors nor reads
    tensor values back (each would be a synchronising copy on a GPU; the CUDA subset
    checks the same with sync-debug mode on a real GPU). One warm-up step runs outside
    the check (lazy optimiser state), as do the epoch-end reads."""
    from conftest import no_host_data

    from instructnet.embeddings import language_models
    from instructnet.models import build_model, model_spec
    from instructnet.tasks import TrialBatch, generate_pool
    from instructnet.training.loop import TrainConfig, Trainer, TrainingData
    from instructnet.training.packed import PackedTrainer, PackMember, PackNetwork

    tasks = ["Go", "AntiDM"]
    pools = {t: TrialBatch.from_frame(generate_pool(t, 16, 0, "train")) for t in tasks}
    cfg = TrainConfig(batch_size=4, batches_per_epoch=4, min_epochs=1, max_epochs=1)
    spec = model_spec("simplenetplus", language_models())
    trainer = Trainer(build_model(spec, 0, hidden=8), TrainingData(tasks, pools), cfg, seed=0)
    trainer.step("Go")
    with no_host_data():
        for t in tasks * 2:
            trainer.step(t)
    nets = [PackNetwork(PackMember(spec, "h", s, tasks, cfg, "", ""), build_model(spec, s, hidden=8),
                     TrainingData(tasks, pools), s, torch.device("cpu"), pools) for s in (0, 1)]
    packed = PackedTrainer(nets, progress=False)
    packed.pack(nets)
    for n in nets:
        n.begin_epoch()
    losses, accs, seen = torch.empty(4, 2), torch.empty(4, 2), [[], []]
    packed.step(0, losses, accs, seen)
    with no_host_data():
        for b in range(1, 4):
            packed.step(b, losses, accs, seen)
    assert torch.isfinite(losses).all() and seen[0] and seen[1]
