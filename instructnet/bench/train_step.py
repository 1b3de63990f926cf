"""Training-step speed of the sensorimotor RNN against its matmul floor.

One step = ReLU GRU (65 sensory inputs + a 64-d trial-constant task vector → 256)
forward, readout ``sigmoid(Linear(256 → 33))``, masked MSE against a random target,
backward, ``torch.optim.Adam`` step. Inputs are random (no trial rendering).

The floor is the step's matmul FLOPs divided by this machine's dense fp32 matmul
throughput, measured in the same run on a (9600×256)@(256×768) product (the shape of
the recurrent weight gradient), best of several. The fast path is compared with that
floor and with the plain step-by-step autograd loop (:func:`reference_forward`); on CPU
the fast path uses the fused C++ loops when they build (``fused_kernels`` in the
output, ``fused_step_gemm`` saying what runs their per-step products;
``INSTRUCTNET_FUSED_GRU=0`` measures the pure-torch fallback instead).
Times are the best of ``repeats`` steps after warm-up (the machine may be shared;
medians are reported too).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from ..models.gru import ReluGRU, fused_kernels, reference_forward

N_IN, N_CONST, N_OUT = 65, 64, 33
TARGET_RATIO = 2.0


def step_flops(batch_size: int, steps: int, hidden: int, n_in: int = N_IN,
               n_const: int = N_CONST, n_out: int = N_OUT) -> dict:
    """Multiply-add FLOPs (2 per MAC) of the matmuls of one training step."""
    B, T, H, G = batch_size, steps, hidden, 3 * hidden
    parts = {
        # all steps' input projection, and its weight gradient (x needs no gradient)
        "input_proj_fwd": 2 * B * T * n_in * G + 2 * B * n_const * G,
        "input_proj_weight_grad": 2 * B * T * n_in * G + 2 * B * n_const * G,
        "recurrent_fwd": 2 * T * B * H * G,
        "recurrent_bwd_input_grad": 2 * T * B * G * H,
        "recurrent_bwd_weight_grad": 2 * T * B * G * H,
        "readout_fwd": 2 * B * T * H * n_out,
        "readout_bwd": 2 * 2 * B * T * H * n_out,
    }
    parts["total"] = sum(parts.values())
    return parts


def matmul_gflops(device: str = "cpu", dtype=torch.float32, tries: int = 7,
                  inner: int = 5) -> float:
    """Dense matmul throughput (GFLOP/s), best of ``tries``: (9600×256)@(256×768)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(9600, 256, generator=gen, device=device, dtype=dtype)
    b = torch.randn(256, 768, generator=gen, device=device, dtype=dtype)
    c = torch.empty(9600, 768, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(tries):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=c)
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * 9600 * 256 * 768 / best / 1e9


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(step, repeats: int, warmup: int, device: str) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _make_step(rnn_forward, rnn: ReluGRU, readout: nn.Linear, batch: dict):
    opt = torch.optim.Adam(list(rnn.parameters()) + list(readout.parameters()), lr=1e-3)
    x, const, target, mask = batch["x"], batch["const"], batch["target"], batch["mask"]

    def step():
        opt.zero_grad(set_to_none=True)
        hidden = rnn_forward(rnn, x, const)
        out = torch.sigmoid(readout(hidden))
        loss = (mask * (out - target).square()).mean()
        loss.backward()
        opt.step()
        return loss

    return step


def run(batch_size: int = 64, steps: int = 150, hidden: int = 256, repeats: int = 5,
        device: str = "cpu", networks: int = 1, reference_repeats: int | None = None,
        seed: int = 0) -> dict:
    if networks != 1:
        raise ValueError(f"networks={networks} is not supported yet (only 1)")
    gen = torch.Generator(device=device).manual_seed(seed)
    B, T = batch_size, steps
    batch = {
        "x": torch.rand(B, T, N_IN, generator=gen, device=device),
        "const": torch.randn(B, N_CONST, generator=gen, device=device),
        "target": torch.rand(B, T, N_OUT, generator=gen, device=device),
        "mask": (torch.rand(B, T, N_OUT, generator=gen, device=device) > 0.2).float() * 5.0,
    }

    def build():
        torch.manual_seed(seed)
        rnn = ReluGRU(N_IN, hidden, const_size=N_CONST).to(device)
        rnn.reset_parameters(torch.Generator(device=device).manual_seed(seed))
        readout = nn.Linear(hidden, N_OUT).to(device)
        return rnn, readout

    fast = _make_step(lambda m, x, c: m(x, c), *build(), batch)
    ref = _make_step(reference_forward, *build(), batch)

    gflops = matmul_gflops(device)
    t_fast = time_steps(fast, repeats, warmup=2, device=device)
    n_ref = reference_repeats if reference_repeats is not None else max(1, (repeats + 1) // 2)
    t_ref = time_steps(ref, n_ref, warmup=1, device=device)
    gflops = max(gflops, matmul_gflops(device))  # again after the steps (shared machines)

    kernels = fused_kernels(device)
    flops = step_flops(B, T, hidden)
    floor_s = flops["total"] / (gflops * 1e9)
    ms_fast, ms_ref = 1e3 * min(t_fast), 1e3 * min(t_ref)
    floor_ms = 1e3 * floor_s
    return {
        "benchmark": "train-step",
        "device": device,
        "torch_threads": torch.get_num_threads(),
        # which loops the fast path ran: the fused C++ kernels or the pure-torch fallback
        "fused_kernels": kernels is not None,
        # the fused loops' per-step products: oneDNN's brgemm micro-kernel or ATen (MKL)
        "fused_step_gemm": kernels,
        "batch_size": B,
        "steps": T,
        "hidden": hidden,
        "networks": networks,
        "repeats": repeats,
        "reference_repeats": n_ref,
        "ms_fast": round(ms_fast, 2),
        "ms_fast_median": round(1e3 * statistics.median(t_fast), 2),
        "ms_reference": round(ms_ref, 2),
        "ms_reference_median": round(1e3 * statistics.median(t_ref), 2),
        "floor_ms": round(floor_ms, 2),
        "ratio_fast_to_floor": round(ms_fast / floor_ms, 3),
        "ratio_reference_to_floor": round(ms_ref / floor_ms, 3),
        "speedup_fast_vs_reference": round(ms_ref / ms_fast, 2),
        "gflops": round(gflops, 1),
        "flops_per_step": flops["total"],
        "flops_breakdown": {k: v for k, v in flops.items() if k != "total"},
        "target_ratio": TARGET_RATIO,
        "meets_target": ms_fast / floor_ms <= TARGET_RATIO,
    }


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(), indent=2))
