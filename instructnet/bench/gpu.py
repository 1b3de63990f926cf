"""``make gpu-check``: validate and measure the CUDA path on one GPU (≤ 8 minutes).

Writes ``results/bench/gpu.json`` section by section (a section that fails records
its traceback and the others still run) and prints a short summary:

* ``cuda_tests``: ``pytest -m cuda`` (tests/test_cuda.py) pass/fail/skip counts;
* ``ceilings``: this GPU's dense matmul rate in float32, TF32 and bf16 (8192³
  products), the yardsticks for the fractions below;
* ``train_step``: ``bench train-step`` on CUDA, one network (the unpacked fast path);
* ``packed``: packed steps of N = 1, 8, 16, 45 networks on random inputs (no trial
  rendering), eagerly and with CUDA graphs, float32 and TF32: ms per step,
  trial-steps/s, GPU memory peak, fraction of the matmul ceiling;
* ``pipeline``: the real training step of 45 networks (9 model slots × 5 seeds, the
  45 training tasks of swap9) through :class:`~instructnet.training.packed.PackedTrainer`
  — batches drawn and rendered on the device, task encoders, Adam — and from it the
  *projected* wall time of one holdout group to the paper's minimum of 35 epochs of
  2400 batches (a projection: networks that need more epochs take longer);
* ``training``: a real short training run on CUDA of a small task set (Go and DM
  families without the Con tasks, AntiGoMod2 and AntiDMMod1 held out; simplenet,
  structurenet and bownet × 3 seeds packed together) until every network's every
  training task is ≥ 90 % correct over an epoch, or a time cap; its wall time, final
  accuracies and the held-out tasks' zero-shot accuracy.

Language models cannot be downloaded on a machine without internet, so the
instructed slots use bag-of-words embeddings (``bownet``) and, for the 768-d models
of the paper, random 768-d tables (``standin768``): the language model is frozen and
its sentence vectors are a cached table, so a stand-in costs exactly what the real
model costs in training.

Without CUDA it prints one line saying so and exits 0.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
NO_GPU = "gpu-check: no CUDA GPU available (torch.cuda.is_available() is False); nothing to check."
PAPER_MIN_EPOCHS, PAPER_BATCHES_PER_EPOCH = 35, 2400
MINI_TASKS_HELD_OUT = ("AntiGoMod2", "AntiDMMod1")


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median_ms(fn, repeats: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


class _TF32:
    """Context: TF32 matmuls on or off (restored afterwards)."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        self.old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = self.on

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self.old
        return False


# --------------------------------------------------------------------------- sections
def cuda_tests(timeout: int = 240) -> dict:
    """``pytest -m cuda tests/test_cuda.py`` in a subprocess; counts from its JUnit XML."""
    xml = Path(os.environ.get("TMPDIR", "/tmp")) / f"instructnet-cuda-tests-{os.getpid()}.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-rfEs",
           "-p", "no:cacheprovider", f"--junitxml={xml}"]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = "timeout", (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else str(exc.stdout)
    result = {"command": " ".join(cmd[1:]), "returncode": rc,
              "seconds": round(time.perf_counter() - start, 1)}
    if xml.exists():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        result.update(passed=total - failed - skipped, failed=failed, skipped=skipped)
        result["failures"] = [
            {"test": case.get("name"), "message": (bad.get("message") or "")[:2000]}
            for case in suite.iter("testcase") for bad in case
            if bad.tag in ("failure", "error")
        ]
        xml.unlink()
    result["output_tail"] = out[-4000:]
    return result


def ceilings() -> dict:
    """Dense matmul TFLOP/s of this GPU (8192³, median of 10 after warm-up)."""
    n = 8192
    out = {}
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False)):
        gen = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(n, n, device="cuda", generator=gen).to(dtype)
        b = torch.randn(n, n, device="cuda", generator=gen).to(dtype)
        with _TF32(tf32):
            ms = _median_ms(lambda a=a, b=b: torch.mm(a, b))
        out[f"{name}_tflops"] = round(2 * n**3 / (ms * 1e-3) / 1e12, 1)
        del a, b
    torch.cuda.empty_cache()
    return out


def train_step() -> dict:
    from .train_step import run

    return run(device="cuda", repeats=10)


def packed(networks=(1, 8, 16, 45), ceilings_: dict | None = None) -> dict:
    """Packed steps on random inputs: eager fp32, graphs fp32, graphs TF32."""
    from .packed import run
    from .train_step import step_flops

    flops = step_flops(64, 150, 256)["total"]
    variants = {}
    for name, graphs, tf32 in (("eager_fp32", False, False), ("graphs_fp32", True, False),
                               ("graphs_tf32", True, True)):
        try:
            with _TF32(tf32):
                res = run(networks=networks, device="cuda", repeats=10, graphs=graphs)
        except Exception:  # noqa: BLE001 - recorded, the other variants still run
            variants[name] = {"error": traceback.format_exc()[-3000:]}
            continue
        ceiling = (ceilings_ or {}).get("tf32_tflops" if tf32 else "fp32_tflops")
        for row in res["packed"]:
            tflops = row["networks"] * flops / (row["ms_per_step_median"] * 1e-3) / 1e12
            row["tflops"] = round(tflops, 2)
            if ceiling:
                row["fraction_of_matmul_ceiling"] = round(tflops / ceiling, 4)
        variants[name] = {"unpacked": res["unpacked"], "packed": res["packed"]}
        torch.cuda.empty_cache()
    return {"flops_per_network_step": flops, "variants": variants}


def _pools(tasks, n: int, seed: int, pool: str, device):
    from ..tasks import ConThresholds, TrialBatch, generate_pool

    thresholds = ConThresholds.default()
    return {t: TrialBatch.from_frame(generate_pool(t, n, seed, pool, thresholds)).to(device)
            for t in tasks}


def _networks(slots, seeds, tasks, config, device, pools, seed: int = 2024, hidden: int = 256):
    """PackedTrainer networks for model slots × seeds, as train_pack builds them but
    from in-memory pools (``slots``: model names; ``standin768*``: a random 768-d
    sentence table in place of a language model's)."""
    from ..embeddings import bag_of_words, instruction_rows, language_models
    from ..instructions import load_corpus
    from ..models.network import build_model
    from ..models.spec import ModelSpec, model_spec
    from ..seeding import seed_int
    from ..training.loop import TrainingData
    from ..training.packed import PackMember, PackNetwork

    corpus = load_corpus()
    registry = language_models()
    bow = torch.tensor(bag_of_words(corpus), dtype=torch.float32)
    nets = []
    for name in slots:
        if name.startswith("standin768"):
            spec = ModelSpec(name, lm="standin768")
            gen = torch.Generator().manual_seed(seed_int(seed, "standin", name))
            table = torch.randn(len(corpus), 768, generator=gen)
        else:
            spec = model_spec(name, registry)
            table = bow if spec.instructed else None
        sentences = instruction_rows(corpus, tasks, "train") if spec.instructed else None
        for s in seeds:
            member = PackMember(spec, "gpucheck", s, tasks, config, "", "")
            data = TrainingData(tasks, {t: pools[t] for t in tasks}, sentences)
            model = build_model(spec, seed_int(seed, "init", spec.name, s), table, hidden)
            data_seed = seed_int(seed, "train", "gpucheck", spec.name, s)
            nets.append(PackNetwork(member, model, data, data_seed, torch.device(device),
                                 data.pools))
    return nets


PIPELINE_SLOTS = ("simplenet", "structurenet", "simplenetplus", "structurenetplus", "bownet",
                  "bownet_mlp", "standin768_a", "standin768_b", "standin768_c")


def pipeline(batches: int = 60, seeds=(0, 1, 2, 3, 4), ceilings_: dict | None = None,
             slots=PIPELINE_SLOTS, hidden: int = 256, pool_size: int = 512,
             device: str = "cuda", variants=None) -> dict:
    """Real packed training steps of 9 model slots × 5 seeds on swap9's 45 tasks."""
    from ..tasks import training_tasks
    from ..training.loop import TrainConfig
    from ..training.packed import PackedTrainer
    from .train_step import step_flops

    tasks = list(training_tasks("swap9"))
    pools = _pools(tasks, pool_size, 2024, "train", device)
    config = TrainConfig(batch_size=64, batches_per_epoch=max(batches, len(tasks)), lr=1e-3,
                         min_epochs=1, max_epochs=1)
    out = {"tasks": len(tasks), "slots": list(slots), "seeds": list(seeds)}
    cuda = device.startswith("cuda")
    variants = variants or (("eager_fp32", False, False), ("graphs_fp32", True, False),
                            ("graphs_tf32", True, True))
    for name, graphs, tf32 in variants:
        try:
            with _TF32(tf32):
                nets = _networks(slots, seeds, tasks, config, device, pools, hidden=hidden)
                trainer = PackedTrainer(nets, progress=False, cuda_graphs=graphs)
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                trainer.pack(nets)
                N = len(nets)
                for n in nets:
                    n.begin_epoch()
                losses = torch.empty(config.batches_per_epoch, N, device=device)
                accs = torch.empty_like(losses)
                tasks_seen = [[] for _ in nets]
                warm = 5
                for b in range(warm):
                    trainer.step(b, losses, accs, tasks_seen)
                _sync()
                t0 = time.perf_counter()
                for b in range(warm, config.batches_per_epoch):
                    trainer.step(b, losses, accs, tasks_seen)
                _sync()
                ms = 1e3 * (time.perf_counter() - t0) / (config.batches_per_epoch - warm)
            flops = N * step_flops(64, 150, hidden)["total"]
            ceiling = (ceilings_ or {}).get("tf32_tflops" if tf32 else "fp32_tflops")
            row = {
                "networks": N, "ms_per_step": round(ms, 2),
                "trial_steps_per_s": round(N * 64 / (ms * 1e-3), 1),
                "gpu_memory_peak_gb": (round(torch.cuda.max_memory_allocated() / 2**30, 2)
                                       if cuda else None),
                "tflops": round(flops / (ms * 1e-3) / 1e12, 2),
                "finite_losses": bool(torch.isfinite(losses[: config.batches_per_epoch]).all()),
            }
            if ceiling:
                row["fraction_of_matmul_ceiling"] = round(row["tflops"] / ceiling, 4)
            minutes = PAPER_MIN_EPOCHS * PAPER_BATCHES_PER_EPOCH * ms * 1e-3 / 60
            row["projected_minutes_one_holdout_group_35_epochs"] = round(minutes, 1)
            row["projected_gpu_hours_swap_grid_10_groups"] = round(10 * minutes / 60, 1)
            out[name] = row
            del trainer, nets
            if cuda:
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            out[name] = {"error": traceback.format_exc()[-3000:]}
    return out


def training(cap_s: float = 150.0, threshold: float = 0.9, seeds=(0, 1, 2),
             models=("simplenet", "structurenet", "bownet"), graphs: bool = True,
             device: str = "cuda", hidden: int = 256, batches_per_epoch: int = 500,
             max_epochs: int = 40) -> dict:
    """Train a small task set to criterion on CUDA (packed); zero-shot on held-out tasks."""
    from ..embeddings import instruction_rows
    from ..evaluation.protocols import EvalConfig, zero_shot
    from ..instructions import load_corpus
    from ..tasks import FAMILY_OF, TASKS
    from ..training.loop import TrainConfig
    from ..training.packed import PackedTrainer

    study = [t for t in TASKS if FAMILY_OF[t] in ("Go", "DM") and not t.startswith("Con")]
    tasks = [t for t in study if t not in MINI_TASKS_HELD_OUT]
    pools = _pools(tasks, 512, 2024, "train", device)
    bpe = batches_per_epoch
    config = TrainConfig(batch_size=64, batches_per_epoch=bpe, lr=1e-3,
                         lr_decay=0.95, lr_decay_batches=PAPER_BATCHES_PER_EPOCH, min_epochs=1,
                         max_epochs=max_epochs, threshold=threshold)
    nets = _networks(models, seeds, tasks, config, device, pools, hidden=hidden)
    trainer = PackedTrainer(nets, progress=False, cuda_graphs=graphs)
    start = time.perf_counter()
    epochs = 0
    trainer.pack(nets)
    reached = False
    while time.perf_counter() - start < cap_s and epochs < config.max_epochs:
        trainer.run_epoch()
        epochs += 1
        steps = trainer.adam.steps
        for j in range(len(nets)):
            trainer.unpack(j, steps)
        last = [[r["accuracy"] for r in n.rows if r["epoch"] == n.epoch] for n in nets]
        if all(min(a) >= threshold for a in last):
            reached = True
            break
    _sync()
    wall = time.perf_counter() - start
    eval_pools = _pools(MINI_TASKS_HELD_OUT, 256, 2024, "eval", device)
    corpus = load_corpus()
    held_rows = instruction_rows(corpus, MINI_TASKS_HELD_OUT, "train")
    per_net = []
    for n in nets:
        acc = [r["accuracy"] for r in n.rows if r["epoch"] == n.epoch]
        zs = zero_shot(n.model, MINI_TASKS_HELD_OUT, eval_pools,
                       held_rows if n.member.spec.instructed else None,
                       EvalConfig(batches=1, batch_size=256, repeats=1, scoring=("strict",)),
                       2024, device)
        per_net.append({
            "model": n.member.spec.name, "seed": n.member.seed, "epochs": n.epoch,
            "train_accuracy_mean": round(float(np.mean(acc)), 4),
            "train_accuracy_min": round(float(np.min(acc)), 4),
            "zero_shot": {r.task: round(float(r.accuracy), 4) for r in zs.itertuples()},
        })
    return {
        "tasks": tasks, "held_out": list(MINI_TASKS_HELD_OUT), "networks": len(nets),
        "batches_per_epoch": bpe, "threshold": threshold, "criterion_reached": reached,
        "epochs": epochs, "batches": epochs * bpe, "wall_s": round(wall, 1),
        "cap_s": cap_s, "cuda_graphs": graphs, "per_network": per_net,
    }


# --------------------------------------------------------------------------- driver
def _summary(result: dict) -> list[str]:
    lines = [f"gpu-check on {result['device']['name']} (torch {result['device']['torch']}, "
             f"CUDA {result['device']['cuda']})"]
    t = result.get("cuda_tests", {})
    if "passed" in t:
        lines.append(f"  CUDA tests: {t['passed']} passed, {t['failed']} failed, "
                     f"{t['skipped']} skipped ({t['seconds']} s)")
    elif t:
        lines.append(f"  CUDA tests: did not report ({t.get('returncode', t.get('error', '?'))!s:.200})")
    c = result.get("ceilings", {})
    if "fp32_tflops" in c:
        lines.append(f"  matmul ceilings: fp32 {c['fp32_tflops']}, tf32 {c['tf32_tflops']}, "
                     f"bf16 {c['bf16_tflops']} TFLOP/s")
    s = result.get("train_step", {})
    if "ms_fast" in s:
        lines.append(f"  one network: {s['ms_fast']} ms/step (reference loop {s['ms_reference']} ms)")
    for name, v in result.get("packed", {}).get("variants", {}).items():
        if "packed" in v:
            rows = ", ".join(f"N={r['networks']}: {r['ms_per_step_median']} ms "
                             f"({r['trial_steps_per_s']:.0f} trial-steps/s, "
                             f"{r.get('gpu_memory_peak_gb', '?')} GB)" for r in v["packed"])
            lines.append(f"  packed {name}: {rows}")
        else:
            lines.append(f"  packed {name}: error")
    p = result.get("pipeline", {})
    for name in ("eager_fp32", "graphs_fp32", "graphs_tf32"):
        row = p.get(name)
        if row and "ms_per_step" in row:
            lines.append(f"  45 networks, real step ({name}): {row['ms_per_step']} ms, "
                         f"{row['gpu_memory_peak_gb']} GB; projected one holdout group to 35 "
                         f"epochs: {row['projected_minutes_one_holdout_group_35_epochs']} min "
                         "(projection)")
        elif row:
            lines.append(f"  45 networks ({name}): error")
    tr = result.get("training", {})
    if "wall_s" in tr:
        means = [n["train_accuracy_mean"] for n in tr["per_network"]]
        lines.append(f"  training: {tr['networks']} networks, {len(tr['tasks'])} tasks, "
                     f"{tr['batches']} batches in {tr['wall_s']} s; criterion "
                     f"{'reached' if tr['criterion_reached'] else 'not reached'}; mean training "
                     f"accuracy {min(means):.3f}-{max(means):.3f}")
    errors = [k for k, v in result.items() if isinstance(v, dict) and "error" in v]
    if errors:
        lines.append(f"  sections that failed: {', '.join(errors)} (tracebacks in the JSON)")
    return lines


SECTIONS = ("cuda_tests", "ceilings", "train_step", "packed", "pipeline", "training")


def run(out: str | Path = "results/bench/gpu.json", sections=SECTIONS) -> int:
    if not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"device": {"name": torch.cuda.get_device_name(), "torch": torch.__version__,
                         "cuda": torch.version.cuda, "python": platform.python_version()}}
    start = time.perf_counter()
    for name in sections:
        t0 = time.perf_counter()
        print(f"gpu-check: {name} ...", flush=True)
        try:
            if name == "cuda_tests":
                result[name] = cuda_tests()
            elif name == "ceilings":
                result[name] = ceilings()
            elif name == "train_step":
                result[name] = train_step()
            elif name == "packed":
                result[name] = packed(ceilings_=result.get("ceilings"))
            elif name == "pipeline":
                result[name] = pipeline(ceilings_=result.get("ceilings"))
            elif name == "training":
                result[name] = training()
            else:
                raise ValueError(f"unknown gpu-check section {name!r}")
        except Exception:  # noqa: BLE001 - recorded; the next section still runs
            result[name] = {"error": traceback.format_exc()[-4000:]}
        if isinstance(result[name], dict):
            result[name]["section_seconds"] = round(time.perf_counter() - t0, 1)
        result["total_seconds"] = round(time.perf_counter() - start, 1)
        out.write_text(json.dumps(result, indent=2))
    print("\n".join(_summary(result)))
    print(f"gpu-check: wrote {out} ({result['total_seconds']} s)")
    return 0
