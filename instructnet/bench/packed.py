"""Training-step throughput of packed networks vs one network at a time.

For each N, one *packed* step trains N independent networks (64 trials × 150 steps,
256 units each) as one stacked computation (:class:`PackedNetworks`: ReLU GRU with
the 64-d trial-constant task vector, readout, masked MSE, backward, the per-network
Adam of :class:`~instructnet.training.packed.StackedAdam`). The baseline is the
one-network fast path (:class:`~instructnet.models.gru.ReluGRU` + ``torch.optim.Adam``)
timed in the same run; N unpacked networks take N of its steps. Inputs are random (no
trial rendering). Reported per N: median and best step time, trial-steps per second
(trials pushed through one training step per second, N·64 per packed step) and the
speed-up over N unpacked steps.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from ..models.gru import ReluGRU
from ..models.packed import PackedNetworks, graph_packed
from ..training.packed import StackedAdam
from .train_step import time_steps

N_IN, N_CONST, N_OUT, STEPS = 65, 64, 33, 150


def _batch(n: int, batch_size: int, device, gen):
    shape = (n, STEPS, batch_size)
    return {
        "x": torch.rand(*shape, N_IN, generator=gen, device=device),
        "const": torch.randn(n, batch_size, N_CONST, generator=gen, device=device),
        "target": torch.rand(*shape, N_OUT, generator=gen, device=device),
        "mask": (torch.rand(*shape, N_OUT, generator=gen, device=device) > 0.2).float() * 5.0,
    }


class _Net(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.rnn = ReluGRU(N_IN, hidden, const_size=N_CONST)
        self.readout = nn.Linear(hidden, N_OUT)


def unpacked_step(hidden: int, batch_size: int, device, seed: int = 0):
    """One network's training step on the one-at-a-time fast path."""
    torch.manual_seed(seed)
    net = _Net(hidden).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    b = _batch(1, batch_size, device, torch.Generator(device=device).manual_seed(seed))
    x = b["x"][0].transpose(0, 1).contiguous()  # (B, T, I): the fast path is batch-first
    target = b["target"][0].transpose(0, 1).contiguous()
    mask = b["mask"][0].transpose(0, 1).contiguous()

    def step():
        opt.zero_grad(set_to_none=True)
        out = torch.sigmoid(net.readout(net.rnn(x, b["const"][0])))
        (mask * (out - target).square()).mean().backward()
        opt.step()

    return step


def packed_step(networks: int, hidden: int, batch_size: int, device, seed: int = 0,
                graphs: bool = False):
    """One stacked training step of ``networks`` networks (``graphs``: the recurrence's
    forward and backward as CUDA graphs, :func:`~instructnet.models.packed.graph_packed`)."""
    torch.manual_seed(seed)
    nets = [_Net(hidden) for _ in range(networks)]
    packed = PackedNetworks.from_models(nets).to(device)
    params = packed.tensors()
    adam = StackedAdam(params, [torch.zeros_like(p) for p in params],
                       [torch.zeros_like(p) for p in params], [0] * networks)
    b = _batch(networks, batch_size, device, torch.Generator(device=device).manual_seed(seed))
    lr = [1e-3] * networks
    if graphs:
        core = graph_packed(packed, b["x"], b["const"])
    else:
        core = lambda x, c: packed(x, c)[0]  # noqa: E731

    def step():
        for p in params:
            p.grad = None
        out = core(b["x"], b["const"])
        (b["mask"] * (out - b["target"]).square()).mean(dim=(1, 2, 3)).sum().backward()
        adam.step(lr)

    return step


def run(networks=(1, 2, 4, 8), batch_size: int = 64, hidden: int = 256, repeats: int = 5,
        device: str = "cpu", seed: int = 0, graphs: bool = False) -> dict:
    networks = [int(n) for n in networks]
    if not networks or min(networks) < 1:
        raise ValueError(f"networks must be positive integers, got {networks}")
    cuda = str(device).startswith("cuda")
    base = time_steps(unpacked_step(hidden, batch_size, device, seed), repeats, 2, device)
    rows = []
    for n in networks:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t = time_steps(packed_step(n, hidden, batch_size, device, seed, graphs), repeats, 2,
                        device)
        med = statistics.median(t)
        row = {
            "networks": n,
            "ms_per_step_median": round(1e3 * med, 2),
            "ms_per_step_best": round(1e3 * min(t), 2),
            "trial_steps_per_s": round(n * batch_size / med, 1),
            "speedup_vs_unpacked": round(n * statistics.median(base) / med, 3),
        }
        if cuda:
            row["gpu_memory_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        rows.append(row)
    base_med = statistics.median(base)
    return {
        "benchmark": "train-step --networks",
        "device": str(device),
        "device_name": torch.cuda.get_device_name() if str(device).startswith("cuda") else "cpu",
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "steps": STEPS,
        "hidden": hidden,
        "repeats": repeats,
        "cuda_graphs": bool(graphs),
        "unpacked": {"ms_per_step_median": round(1e3 * base_med, 2),
                     "ms_per_step_best": round(1e3 * min(base), 2),
                     "trial_steps_per_s": round(batch_size / base_med, 1)},
        "packed": rows,
    }
