"""The CUDA path (issue #15): the device against the CPU, and training on the device.

Run on a machine with a GPU (PYTHONPATH at the repository root)::

    python3 -m pytest -m cuda tests/test_cuda.py

Without a CUDA device every test here skips ("no CUDA device"). Everything is small
(hidden 16-256, a few batches), meant to take well under two minutes on a GPU machine
(most of it the float64 CPU references and three training subprocesses).

``INSTRUCTNET_CUDA_TEST_DEVICE=cpu`` runs the same tests with device "cpu" instead:
that checks the tests' own logic (and the pure-torch recurrence, which is the code
CUDA runs) on a machine without a GPU, *not* CUDA. In that mode the TF32 test skips
and the host-sync test only runs the steps (sync debug mode is CUDA's). Any other
value names the device to use (e.g. ``cuda:1``).

Settings for every test: the fused C++ CPU loops are switched off
(``INSTRUCTNET_FUSED_GRU=0``), so nothing is compiled and the CPU side of a comparison
runs the pure-torch recurrence the GPU runs; TF32 matmuls are off
(``torch.backends.cuda.matmul.allow_tf32 = False``) except inside the TF32 test.

Tolerances (references are float64 on the CPU under plain autograd):

* float64 on the device: ``rtol 1e-10`` (``atol 1e-12 × max |reference|``) for the
  outputs and every gradient;
* float32 on the device: relative error of the whole tensor
  ``‖device − reference‖ / ‖reference‖ < 1e-5`` for the outputs and every gradient
  (measured on the CPU's float32 path: ~3e-7 at these sizes);
* float32 with TF32 matmuls (``allow_tf32 = True``): relative error ``< 5e-3`` for the
  outputs and ``< 5e-2`` for the gradients. This documents what TF32 costs; the
  measured errors are printed. A CPU emulation (matmul operands rounded to TF32's 10
  mantissa bits) gives ~3e-4 (outputs) and 1e-3 to 1.2e-2 (gradients; grad x the
  largest) with round-to-nearest, up to 1.2e-3 and 2e-2 with truncation;
* packed training vs one-at-a-time training, both on the device: weights
  ``rtol 1e-4, atol 1e-5`` and training logs ``rtol 1e-4`` (as tests/test_packed.py);
* resume after a kill on the device: bit-identical weights and logs under deterministic
  settings (see :func:`test_resume_after_kill_on_the_device_is_deterministic`);
* held-out evaluation on the device vs the CPU, fed the same batches: the learned
  weight *updates* (learned − start) relative error ``< 1e-3`` (CPU fused vs pure-torch
  loops: ~1e-6); accuracies at most one trial per batch apart (a trial whose output
  sits within rounding of a threshold may flip).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import pack_members

from instructnet.embeddings import (
    instruction_rows,
    language_models,
    read_embeddings,
    write_embeddings,
)
from instructnet.evaluation import EvalConfig, heldout_learning, protocols, zero_shot
from instructnet.models import build_model, model_spec
from instructnet.models.gru import ReluGRU, reference_forward
from instructnet.models.packed import PackedNetworks, packed_relu_gru, reference_packed_forward
from instructnet.tasks import TASKS, TrialBatch, generate_pool, write_trials
from instructnet.training import TrainConfig, Trainer, TrainingData
from instructnet.training.packed import PackedTrainer, train_pack
from instructnet.training.run import train_job

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[1]
DEVICE_ENV = "INSTRUCTNET_CUDA_TEST_DEVICE"
LMS = language_models()
TIMING = ["seconds", "trials_per_s"]
TRAIN_TASKS = ["Go", "AntiGo", "DM"]
EMB_DIM = 24  # the fake instruction embeddings' width

F64_RTOL = 1e-10
F32_REL = 1e-5
TF32_OUT_REL = 5e-3
TF32_GRAD_REL = 5e-2
GRAD_NAMES = ["x", "const", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]


# --------------------------------------------------------------------------- fixtures
def _device_name() -> str | None:
    forced = os.environ.get(DEVICE_ENV, "").strip()
    if forced:
        if forced.startswith("cuda") and not torch.cuda.is_available():
            return None
        return forced
    return "cuda" if torch.cuda.is_available() else None


@pytest.fixture(scope="module")
def device() -> torch.device:
    """The device under test: CUDA, or what INSTRUCTNET_CUDA_TEST_DEVICE names."""
    name = _device_name()
    if name is None:
        pytest.skip("no CUDA device")
    return torch.device(name)


@contextlib.contextmanager
def _tf32(enabled: bool):
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


@pytest.fixture(scope="module", autouse=True)
def _settings(device):
    """Pure-torch recurrence everywhere (no C++ build), TF32 off."""
    with pytest.MonkeyPatch.context() as mp, _tf32(False):
        mp.setenv("INSTRUCTNET_FUSED_GRU", "0")
        yield


@pytest.fixture(scope="module")
def emb_table(tmp_path_factory, device):
    """A fake instruction table (4 training + 2 validation sentences per task) with
    random embeddings, standing in for a language model's (no corpus, no model)."""
    rows = pd.DataFrame([{"task": t, "split": s, "sentence_id": i, "text": f"{t} sentence {i}"}
                         for t in TASKS
                         for i, s in enumerate(["train"] * 4 + ["validation"] * 2)])
    emb = torch.randn(len(rows), EMB_DIM, generator=torch.Generator().manual_seed(5))
    path = tmp_path_factory.mktemp("emb") / "bownet.parquet"
    write_embeddings(rows, emb.numpy(), path)
    return path


@pytest.fixture(scope="module")
def pool_paths(tmp_path_factory, device):
    root = tmp_path_factory.mktemp("pools")
    paths = {}
    for task in TRAIN_TASKS:
        paths[task] = root / f"{task}.parquet"
        write_trials(generate_pool(task, 64, 0, "train"), paths[task])
    return paths


def _model(name: str, seed: int, hidden: int, emb_path=None):
    emb = None
    if model_spec(name, LMS).instructed:
        emb = torch.tensor(read_embeddings(emb_path)[1])
    return build_model(model_spec(name, LMS), seed, embeddings=emb, hidden=hidden)


def _sentences(name: str, emb_path, tasks):
    if not model_spec(name, LMS).instructed:
        return None
    rows, _ = read_embeddings(emb_path)
    return instruction_rows(rows, tasks, "train")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ of the whole tensor, in float64 on the CPU."""
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return ((a - b).norm() / b.norm()).item()


def _check(name, got, ref, dtype, rel=F32_REL):
    """float64: elementwise rtol; float32: relative error of the whole tensor."""
    assert got.shape == ref.shape, name
    assert got.dtype == dtype, name
    if dtype == torch.float64:
        torch.testing.assert_close(got.cpu(), ref, rtol=F64_RTOL,
                                   atol=1e-12 * ref.abs().max().item(), msg=name)
    else:
        err = rel_err(got, ref)
        assert err < rel, f"{name}: relative error {err:.3g} ≥ {rel:g}"


# --------------------------------------------------------------------------- 1: ReluGRU
def _gru_case(H: int, B: int, T: int = 150, I: int = 65, C: int = 64, seed: int = 0):
    """A float64 CPU ReluGRU with the reference initialisation plus a random
    perturbation of the recurrent weights (0.5·I alone would make the recurrent matmul
    nearly exact in any summation order), random inputs, task vectors, h0 and
    incoming-gradient weights."""
    gen = torch.Generator().manual_seed(seed)
    m = ReluGRU(I, H, const_size=C).double()
    m.reset_parameters(gen)
    with torch.no_grad():
        m.weight_hh.add_(0.3 / H**0.5 * torch.randn(3 * H, H, generator=gen, dtype=torch.float64))
    kw = dict(generator=gen, dtype=torch.float64)
    x, c, h0 = torch.rand(B, T, I, **kw), torch.randn(B, C, **kw), torch.rand(B, H, **kw)
    w = torch.randn(B, T, H, **kw)
    return m, (x, c, h0), w


def _gru_grads(m, inputs, w, forward):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = forward(m, *leaves)
    grads = torch.autograd.grad((out * w).sum(), leaves + [m.weight_ih, m.weight_hh,
                                                            m.bias_ih, m.bias_hh])
    return out.detach(), grads


@functools.cache
def _gru_reference(H: int, B: int):
    """(module, inputs, weights, reference outputs, reference gradients), float64 CPU;
    computed once per size (shared by the float32 and the TF32 tests)."""
    m64, inputs, w = _gru_case(H, B)
    return (m64, inputs, w, *_gru_grads(m64, inputs, w, reference_forward))


def _gru_on(m64, inputs, w, device, dtype):
    """Outputs and all gradients of the fast ReluGRU on ``device`` in ``dtype``."""
    m = ReluGRU(m64.input_size, m64.hidden_size, const_size=m64.const_size).to(device, dtype)
    m.load_state_dict(m64.state_dict())
    moved = [t.to(device, dtype) for t in inputs]
    out, grads = _gru_grads(m, moved, w.to(device, dtype), lambda mod, *a: mod(*a))
    with torch.no_grad():
        no_grad = m(*moved)
    return out, grads, no_grad


@pytest.mark.parametrize(("dtype", "H", "B"), [
    (torch.float64, 32, 8),
    (torch.float32, 32, 8),
    (torch.float32, 256, 16),
])
def test_relu_gru_outputs_and_all_gradients_match_cpu_reference(dtype, H, B, device):
    m64, inputs, w, ref, ref_grads = _gru_reference(H, B)
    out, grads, no_grad = _gru_on(m64, inputs, w, device, dtype)
    assert out.device.type == device.type and out.is_contiguous()
    _check("output", out, ref, dtype)
    _check("output (no grad)", no_grad, ref, dtype)
    assert len(grads) == len(GRAD_NAMES)
    for name, g, r in zip(GRAD_NAMES, grads, ref_grads):
        assert g.device.type == device.type, name
        _check(name, g, r, dtype)


# --------------------------------------------------------------------------- 2: packed
def _packed_case(N: int, H: int, B: int, T: int = 150, I: int = 65, C: int = 64, seed: int = 1):
    """Stacked float64 CPU arguments of packed_relu_gru (reference-like initialisation
    with perturbed recurrent weights), plus incoming-gradient weights."""
    gen = torch.Generator().manual_seed(seed)
    kw = dict(generator=gen, dtype=torch.float64)
    eye = 0.5 * torch.eye(H, dtype=torch.float64).repeat(3, 1)
    args = [torch.rand(N, T, B, I, **kw), torch.randn(N, B, C, **kw), torch.rand(N, B, H, **kw),
            torch.randn(N, 3 * H, I + C, **kw) / (I + C) ** 0.5,
            eye + 0.3 / H**0.5 * torch.randn(N, 3 * H, H, **kw),
            torch.randn(N, 3 * H, **kw), torch.randn(N, 3 * H, **kw)]
    return args, torch.randn(N, T, B, H, **kw)


def _packed_grads(args, w, fn):
    leaves = [a.detach().clone().requires_grad_() for a in args]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad((out * w).sum(), leaves)


@functools.cache
def _packed_reference(H: int, B: int, N: int = 3):
    """(arguments, weights, reference outputs, reference gradients), float64 CPU."""
    args, w = _packed_case(N=N, H=H, B=B)
    return (args, w, *_packed_grads(args, w, reference_packed_forward))


@pytest.mark.parametrize(("dtype", "H"), [
    (torch.float64, 32),
    (torch.float32, 32),
    (torch.float32, 256),
])
def test_packed_recurrence_matches_cpu_reference(dtype, H, device):
    args, w, ref, ref_grads = _packed_reference(H, B=8)
    out, grads = _packed_grads([a.to(device, dtype) for a in args], w.to(device, dtype),
                               packed_relu_gru)
    _check("output", out, ref, dtype)
    with torch.no_grad():
        no_grad = packed_relu_gru(*[a.to(device, dtype) for a in args])
    _check("output (no grad)", no_grad, ref, dtype)
    for name, g, r in zip(GRAD_NAMES, grads, ref_grads):
        assert g.device.type == device.type, name
        _check(name, g, r, dtype)


def test_packed_networks_module_matches_per_network_reference(device):
    """PackedNetworks (recurrence + readout) of three models, float32 on the device,
    against each model's float64 reference forward on the CPU."""
    models = [_model("simplenet", s, hidden=32) for s in range(3)]
    gen = torch.Generator().manual_seed(2)
    for m in models:  # away from 0.5·I (see _gru_case)
        with torch.no_grad():
            m.rnn.weight_hh.add_(0.3 / 32**0.5 * torch.randn(96, 32, generator=gen))
    N, T, B = 3, 150, 8
    x = torch.rand(N, T, B, 65, generator=gen)
    const = torch.randn(N, B, 64, generator=gen)
    w = torch.randn(N, T, B, 33, generator=gen)

    packed = PackedNetworks.from_models(models).to(device)
    c_dev = const.to(device).requires_grad_()
    out, hidden = packed(x.to(device), c_dev)
    got = torch.autograd.grad((out * w.to(device)).sum(), packed.tensors() + [c_dev])

    refs, ref_grads = [], []
    for n, m in enumerate(models):
        m64 = _model("simplenet", n, hidden=32).double()
        m64.load_state_dict({k: v.double() for k, v in m.state_dict().items()})
        c = const[n].double().requires_grad_()
        h = reference_forward(m64.rnn, x[n].transpose(0, 1).double(), c)
        o = torch.sigmoid(m64.readout(h)).transpose(0, 1)  # (T, B, 33)
        params = [m64.rnn.weight_ih, m64.rnn.weight_hh, m64.rnn.bias_ih, m64.rnn.bias_hh,
                  m64.readout.weight, m64.readout.bias, c]
        refs.append(o.detach())
        ref_grads.append(torch.autograd.grad((o * w[n].double()).sum(), params))
    _check("outputs", out, torch.stack(refs), torch.float32)
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "readout_weight", "readout_bias",
             "const"]
    for i, name in enumerate(names):
        _check(name, got[i], torch.stack([g[i] for g in ref_grads]), torch.float32)


# --------------------------------------------------------------------------- 3: TF32
@pytest.mark.parametrize("kind", ["single", "packed"])
def test_tf32_error_stays_below_stated_tolerance(kind, device, record_property):
    """What TF32 matmuls cost: float32 outputs and gradients with
    ``allow_tf32 = True`` against the float64 CPU reference (hidden 256; 16 trials, or
    3 networks × 8). Without TF32 the same errors are ~3e-7."""
    if device.type != "cuda":
        pytest.skip("TF32 is a CUDA matmul mode (CPU debug mode)")
    if kind == "single":
        m64, inputs, w, ref, ref_grads = _gru_reference(256, 16)
        run = lambda: _gru_on(m64, inputs, w, device, torch.float32)[:2]  # noqa: E731
    else:
        args, w, ref, ref_grads = _packed_reference(256, 8)
        run = lambda: _packed_grads([a.to(device, torch.float32) for a in args],  # noqa: E731
                                    w.to(device, torch.float32), packed_relu_gru)
    errors = {}
    for tf32 in (False, True):
        with _tf32(tf32):
            out, grads = run()
        errors[tf32] = {"output": rel_err(out, ref),
                        **{n: rel_err(g, r) for n, g, r in zip(GRAD_NAMES, grads, ref_grads)}}
    for tf32, errs in errors.items():
        record_property(f"rel_err_tf32_{tf32}", errs)
        print(f"{kind} tf32={tf32}: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    assert all(v < F32_REL for v in errors[False].values()), errors[False]
    bad = {k: v for k, v in errors[True].items()
           if not v < (TF32_OUT_REL if k == "output" else TF32_GRAD_REL)}
    assert not bad, (f"TF32 relative errors over {TF32_OUT_REL:g} (output) / "
                     f"{TF32_GRAD_REL:g} (gradients): {bad}")


# --------------------------------------------------------------------------- 4: packing
CFG = TrainConfig(batch_size=8, batches_per_epoch=9, min_epochs=1, max_epochs=3)
# (model, seed, config): a rule model with a trainable encoder, an instructed model, and
# a rule model capped at one epoch (it leaves the stack while the others go on)
GRID = [("simplenetplus", 0, CFG), ("bownet", 1, CFG),
        ("simplenetplus", 2, dataclasses.replace(CFG, max_epochs=1))]
HIDDEN = 16


def _members(folder: Path, grid=GRID, tasks=TRAIN_TASKS, checkpoints=True):
    return pack_members(folder, grid, tasks, LMS, checkpoints)


def test_packed_training_equals_one_at_a_time_on_the_device(tmp_path, device, pool_paths,
                                                            emb_table):
    emb = {"bownet": emb_table}
    for name, seed, cfg in GRID:
        d = tmp_path / "unpacked" / f"{name}_{seed}"
        d.mkdir(parents=True)
        train_job(model_spec(name, LMS), "h", seed, TRAIN_TASKS, pool_paths, cfg, 1,
                  d / "model.pt", d / "log.parquet", embeddings_path=emb.get(name),
                  hidden=HIDDEN, device=device, progress=False)
    tables = train_pack(_members(tmp_path / "packed"), pool_paths, 1, emb, hidden=HIDDEN,
                        device=device, max_networks=2, progress=False)
    epochs = [int(t["epoch"].max()) for t in tables]
    assert epochs[2] == 1 and max(epochs) > 1  # one stopped early, the others went on
    for name, seed, _ in GRID:
        a_dir, b_dir = (tmp_path / k / f"{name}_{seed}" for k in ("unpacked", "packed"))
        a = torch.load(a_dir / "model.pt", weights_only=False)
        b = torch.load(b_dir / "model.pt", weights_only=False)
        assert {k: v for k, v in a.items() if k != "state_dict"} == \
               {k: v for k, v in b.items() if k != "state_dict"}
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for k, v in a["state_dict"].items():
            assert v.device.type == "cpu"
            torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-4, atol=1e-5,
                                       msg=f"{name} seed {seed}: {k}")
        la = pd.read_parquet(a_dir / "log.parquet").drop(columns=TIMING)
        lb = pd.read_parquet(b_dir / "log.parquet").drop(columns=TIMING)
        pd.testing.assert_frame_equal(la, lb, check_exact=False, rtol=1e-4, atol=1e-6)
    assert not list(tmp_path.rglob("checkpoint.pt"))


# --------------------------------------------------------------------------- 5: resume
RESUME_SCRIPT = r"""
import os, signal, sys
import torch

torch.use_deterministic_algorithms(True)  # before any CUDA work in this process

from instructnet.embeddings import language_models
from instructnet.models import model_spec
from instructnet.training import TrainConfig, Trainer
from instructnet.training.run import train_job

pools, emb, out, device, kill_after = sys.argv[1:6]
kill_after = int(kill_after)
if kill_after:  # a hard kill (no cleanup) when step kill_after + 1 begins
    real_step, calls = Trainer.step, [0]

    def step(self, task):
        calls[0] += 1
        if calls[0] > kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_step(self, task)

    Trainer.step = step
tasks = ["Go", "AntiGo", "DM"]
try:
    train_job(model_spec("bownet", language_models()), "test", 0, tasks,
              {t: f"{pools}/{t}.parquet" for t in tasks},
              TrainConfig(batch_size=16, batches_per_epoch=BPE, min_epochs=3, max_epochs=3),
              1, f"{out}/model.pt", f"{out}/log.parquet", embeddings_path=emb, hidden=32,
              device=device, progress=False, checkpoint=f"{out}/checkpoint.pt")
except RuntimeError as exc:
    if "deterministic" in str(exc):
        print("DETERMINISM ERROR: " + str(exc).splitlines()[0], file=sys.stderr)
        sys.exit(3)
    raise
"""
RESUME_BPE = 10


def _check_run(proc: subprocess.CompletedProcess | subprocess.Popen, err: str, what: str):
    if proc.returncode == 3 or "DETERMINISM ERROR" in err:
        line = next(ln for ln in err.splitlines() if "DETERMINISM ERROR" in ln)
        pytest.fail(f"{what}: torch.use_deterministic_algorithms(True) rejected an op: {line}")
    assert proc.returncode == 0, f"{what} failed:\n{err[-4000:]}"


def test_resume_after_kill_on_the_device_is_deterministic(tmp_path, device, pool_paths,
                                                          emb_table):
    """train_job on the device in a subprocess, once straight through and once killed
    (SIGKILL) in the middle of epoch 2, then started again from its epoch-1
    checkpoint: the final weights and logs are bit-identical.

    Deterministic settings (each subprocess): ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in
    the environment and ``torch.use_deterministic_algorithms(True)`` before any CUDA
    work; TF32 off (the default); the same device and shapes. The checkpoint carries
    the CUDA noise generator's state. An op without a deterministic implementation
    fails the test with the op named.
    """
    script = RESUME_SCRIPT.replace("BPE", str(RESUME_BPE))
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "INSTRUCTNET_FUSED_GRU": "0",
           "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir(), resumed.mkdir()
    root = str(pool_paths["Go"].parent)

    def cmd(out, kill_after):
        return [sys.executable, "-c", script, root, str(emb_table), str(out), str(device),
                str(kill_after)]

    # the uninterrupted run and the run to be killed, side by side
    procs = [subprocess.Popen(cmd(straight, 0), env=env, stderr=subprocess.PIPE, text=True),
             subprocess.Popen(cmd(resumed, RESUME_BPE + 4), env=env, stderr=subprocess.PIPE,
                              text=True)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    _check_run(procs[0], errs[0], "uninterrupted run")
    if procs[1].returncode != -signal.SIGKILL:
        _check_run(procs[1], errs[1], "run to be killed")
        pytest.fail(f"the run was not killed (exit {procs[1].returncode})")
    ckpt = resumed / "checkpoint.pt"
    assert ckpt.exists() and not (resumed / "model.pt").exists()
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 1
    again = subprocess.run(cmd(resumed, 0), env=env, stderr=subprocess.PIPE, text=True,
                           timeout=600)
    _check_run(again, again.stderr, "resumed run")
    assert not ckpt.exists()

    a = torch.load(straight / "model.pt", weights_only=False)
    b = torch.load(resumed / "model.pt", weights_only=False)
    assert a["epochs"] == b["epochs"] == 3
    diffs = {k: (v - b["state_dict"][k]).abs().max().item()
             for k, v in a["state_dict"].items() if not torch.equal(v, b["state_dict"][k])}
    assert not diffs, f"weights differ after resuming (max |Δ| per tensor): {diffs}"
    la = pd.read_parquet(straight / "log.parquet").drop(columns=TIMING)
    lb = pd.read_parquet(resumed / "log.parquet").drop(columns=TIMING)
    pd.testing.assert_frame_equal(la, lb)


# --------------------------------------------------------------------------- 6: evaluation
def _move(obj, device):
    """Tensors, dataclasses of tensors (TrialBatch, Rendered) and tuples to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_move(o, device) for o in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return type(obj)(**{f.name: _move(getattr(obj, f.name), device)
                            for f in dataclasses.fields(obj)})
    return obj


class _Replay:
    """Stands in for the evaluation protocols' draw_batch.

    Random draws on CUDA differ from those on the CPU (documented in
    evaluation/protocols.py), so the device run is fed the CPU run's batches: while
    recording, the real draw_batch runs on the CPU and each batch is kept; while
    replaying, the real draw_batch still runs (on the device) and the recorded batch,
    moved to the device, is returned in its place, in the same order.
    """

    def __init__(self, real):
        self.real, self.batches, self.device, self.used = real, [], None, 0

    def replay_on(self, device):
        self.device, self.used = device, 0

    def __call__(self, *args, **kwargs):
        drawn = self.real(*args, **kwargs)
        if self.device is None:
            self.batches.append(_move(drawn, "cpu"))
            return drawn
        assert self.used < len(self.batches), "the device run drew more batches than the CPU run"
        self.used += 1
        return _move(self.batches[self.used - 1], self.device)


EVAL_TASKS = ["AntiGo", "MultiDM", "DMMod2"]


@pytest.mark.parametrize("name", ["simplenet", "bownet"])
def test_heldout_evaluation_on_the_device_equals_cpu(name, device, emb_table, monkeypatch):
    """heldout_learning (learning curves; batch 0 is the zero-shot score) and zero_shot
    with the same seeds on the CPU and on the device, fed the same batches (see
    _Replay): weight updates equal to float32 rounding, accuracies equal up to at most
    one trial per batch. The (untrained, seed 1) model scores 5-30 % on these tasks, so the
    accuracies compared are not all zero."""
    model = _model(name, 1, hidden=32, emb_path=emb_table)
    sentences = _sentences(name, emb_table, EVAL_TASKS)
    pools = {t: TrialBatch.from_frame(generate_pool(t, 64, 0, "eval")) for t in EVAL_TASKS}
    config = EvalConfig(batches=4, batch_size=64, lr=8e-4, repeats=2)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    replay = _Replay(protocols.draw_batch)
    monkeypatch.setattr(protocols, "draw_batch", replay)

    def run(dev):
        learned = {}

        def keep(task, repeat, m):
            learned[task, repeat] = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}

        curve = heldout_learning(model, EVAL_TASKS, pools, sentences, config, seed=5, device=dev,
                                 on_trained=keep)
        zs = zero_shot(model, EVAL_TASKS, pools, sentences, config, seed=5, device=dev)
        return curve, zs, learned

    cpu_curve, cpu_zs, cpu_learned = run(torch.device("cpu"))
    replay.replay_on(device)
    dev_curve, dev_zs, dev_learned = run(device)
    assert replay.used == len(replay.batches)
    assert next(model.parameters()).device.type == device.type  # zero_shot moved it

    acc = cpu_curve["accuracy"].to_numpy()
    assert (acc > 0).any() and (acc < 1).any(), "degenerate accuracies: the comparison is void"
    key = ["task", "scoring", "repeat", "batch"]
    pd.testing.assert_frame_equal(dev_curve[key], cpu_curve[key])
    pd.testing.assert_frame_equal(dev_zs[["task", "scoring", "repeat"]],
                                  cpu_zs[["task", "scoring", "repeat"]])
    one_trial = 1 / config.batch_size + 1e-12
    diff = np.abs(dev_curve["accuracy"].to_numpy() - acc)
    assert diff.max() <= one_trial, cpu_curve.assign(device=dev_curve["accuracy"])[diff > 0]
    assert np.abs(dev_zs["accuracy"].to_numpy() - cpu_zs["accuracy"].to_numpy()).max() <= one_trial
    # on each device, zero-shot is batch 0 of the learning curve (same trials and noise)
    first = dev_curve[dev_curve["batch"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[["task", "scoring", "repeat", "accuracy"]], dev_zs)
    # what the learning did: the updates (learned − start) agree to float32 rounding;
    # what it left alone (frozen rules/embeddings, integer buffers) is untouched
    assert dev_learned.keys() == cpu_learned.keys()
    updated = set()
    for run_key, state in cpu_learned.items():
        for k, v in state.items():
            cpu_update = v - start[k] if v.is_floating_point() else None
            if cpu_update is not None and cpu_update.norm() > 0:
                updated.add(k)
                err = rel_err(dev_learned[run_key][k] - start[k], cpu_update)
                assert err < 1e-3, f"{run_key} {k}: update relative error {err:.3g}"
            else:
                assert torch.equal(dev_learned[run_key][k], v), (run_key, k)
    assert {"rnn.weight_hh", "rnn.weight_ih", "readout.weight"} <= updated


# --------------------------------------------------------------------------- 7: host syncs
@contextlib.contextmanager
def _sync_errors(device: torch.device):
    """CUDA: any host-device synchronisation inside raises. CPU: nothing to check."""
    if device.type != "cuda":
        yield
        return
    torch.cuda.synchronize(device)
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


@pytest.mark.parametrize("name", ["simplenetplus", "bownet"])
def test_training_step_has_no_host_sync(name, device, emb_table):
    """Trainer.step (one batch: draw, forward, backward, clipping, Adam, accuracy) makes
    no host-device synchronisation: it returns device values, and finiteness and logs
    are read once per epoch. One warm-up step runs outside the check (lazy
    initialisation: cuBLAS handles, Adam state)."""
    pools = {t: TrialBatch.from_frame(generate_pool(t, 64, 0, "train")) for t in TRAIN_TASKS}
    data = TrainingData(TRAIN_TASKS, pools, _sentences(name, emb_table, TRAIN_TASKS))
    model = _model(name, 0, hidden=32, emb_path=emb_table)
    trainer = Trainer(model, data, TrainConfig(batch_size=16, batches_per_epoch=6), seed=0,
                      device=device)
    trainer.model.train()
    results = [trainer.step(TRAIN_TASKS[0])]
    with _sync_errors(device):
        for task in TRAIN_TASKS * 2:
            results.append(trainer.step(task))
    # outside the check: what the steps returned is finite (read once, at the end)
    values = torch.cat([torch.as_tensor(v, dtype=torch.float64).reshape(-1).cpu()
                        for r in results for v in r])
    assert len(results) == 7 and torch.isfinite(values).all()


def test_packed_step_has_no_host_sync(tmp_path, device, pool_paths, emb_table, monkeypatch):
    """The packed trainer's per-batch step (PackedTrainer.step, inside a real
    train_pack) makes no host-device synchronisation; the epoch-end bookkeeping
    (losses and accuracies to the host, logs, checkpoints) runs outside the check, as
    does the first step (lazy initialisation)."""
    real = PackedTrainer.step
    calls = {"all": 0, "checked": 0}

    def step(self, *args, **kwargs):
        calls["all"] += 1
        if calls["all"] == 1:
            return real(self, *args, **kwargs)
        with _sync_errors(self.device):
            out = real(self, *args, **kwargs)
        calls["checked"] += 1
        return out

    monkeypatch.setattr(PackedTrainer, "step", step)
    cfg = TrainConfig(batch_size=8, batches_per_epoch=6, min_epochs=1, max_epochs=1)
    grid = [("simplenetplus", 0, cfg), ("bownet", 1, cfg)]
    train_pack(_members(tmp_path, grid), pool_paths, 1, {"bownet": emb_table}, hidden=HIDDEN,
               device=device, progress=False)
    assert calls == {"all": 6, "checked": 5}
    assert all((tmp_path / f"{n}_{s}" / "model.pt").exists() for n, s, _ in grid)
