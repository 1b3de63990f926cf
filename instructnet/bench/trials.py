"""Trial rendering throughput: 64-trial batches cycling over all 50 tasks."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..tasks import TASKS, TrialBatch, generate_trials, render


def run(batch_size: int = 64, batches: int = 500, device: str = "cpu", seed: int = 0) -> dict:
    pools = [
        TrialBatch.from_frame(generate_trials(t, batch_size * 4, seed + i), device)
        for i, t in enumerate(TASKS)
    ]
    gen = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, 3 * batch_size, batches)

    def timed(noise: bool) -> float:
        for k in range(20):  # warm-up
            render(pools[k % len(pools)][:batch_size], noise=noise, generator=gen)
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for k in range(batches):
            s = int(starts[k])
            render(pools[k % len(pools)][s : s + batch_size], noise=noise, generator=gen)
        if device != "cpu":
            torch.cuda.synchronize()
        return batch_size * batches / (time.perf_counter() - t0)

    with torch.inference_mode():
        noisy = timed(True)
        clean = timed(False)
    # Drawing latents (numpy, once per pool, not in the training hot path) for reference.
    t0 = time.perf_counter()
    n_latent = 0
    for i, t in enumerate(TASKS):
        n_latent += len(generate_trials(t, 1024, seed + i))
    latents = n_latent / (time.perf_counter() - t0)
    return {
        "benchmark": "trials",
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "batches": batches,
        "trials_per_s_noisy": round(noisy),
        "trials_per_s_noise_free": round(clean),
        "ms_per_batch_noisy": round(1e3 * batch_size / noisy, 3),
        "latent_trials_per_s": round(latents),
        "target_trials_per_s_noisy": 14000,
        "meets_target": noisy >= 14000,
    }
