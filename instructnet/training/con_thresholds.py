"""The ConDM / ConAntiDM threshold stage (METHODS §2).

A SIMPLENET trained on every task except the two Con tasks is probed on DM and AntiDM
trials laid out like Con trials, over a grid of noise levels × contrasts. For each
noise level the frontier is the smallest contrast from which the model is at least
95 % correct at that contrast and every larger one on the grid (infinite where it
never is). The table feeds :class:`instructnet.tasks.ConThresholds`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..models.network import SensorimotorModel
from ..seeding import derive_seed
from ..tasks import TrialBatch, is_correct, render
from ..tasks.constants import CON_PROBES, TASK_INDEX
from ..tasks.generate import decision_probe_trials
from ..tasks.stimulus import PAPER, Stimulus
from ..tasks.thresholds import ConThresholds

PROBES = CON_PROBES
CRITERION = 0.95
# The sweep grid (noise s.d. levels, |contrasts|: strengths 1 ± c/2, trials per cell) is
# trials.con_sweep, with its defaults in the config schema.


@torch.no_grad()
def sweep(
    model: SensorimotorModel,
    noise_levels: Sequence[float],
    contrasts: Sequence[float],
    trials: int,
    seed: int,
    device: str | torch.device = "cpu",
    stimulus: Stimulus = PAPER,
) -> pd.DataFrame:
    """Accuracy of ``model`` on DM / AntiDM probes for every noise × contrast cell,
    rendered with ``stimulus`` (one σ per probe batch in every convention)."""
    model.eval()
    rows = []
    for con_task, task in PROBES.items():
        task_idx = torch.full((trials,), TASK_INDEX[task], device=device)
        task_vec = model.task_vectors(task_idx)
        for sigma in noise_levels:
            for contrast in contrasts:
                seq = derive_seed(seed, "con-sweep", task, f"{sigma:.6f}", f"{contrast:.6f}")
                df = decision_probe_trials(task, sigma, contrast, trials, seq)
                batch = TrialBatch.from_frame(df, device, stimulus)
                gen = torch.Generator(device=device).manual_seed(int(seq.generate_state(1)[0]))
                r = render(batch, noise=True, generator=gen)
                out, _ = model(r.inputs, task_vec)
                acc = is_correct(out, batch).float().mean().item()
                rows.append({"task": con_task, "probe": task, "noise": float(sigma),
                             "contrast": float(contrast), "accuracy": acc})
    return pd.DataFrame(rows)


def frontier(sweep_table: pd.DataFrame, criterion: float = CRITERION) -> pd.DataFrame:
    """Per task and noise level, the smallest contrast from which every contrast of the
    grid is at least ``criterion`` correct (inf where none is)."""
    rows = []
    for (task, sigma), cell in sweep_table.groupby(["task", "noise"], sort=True):
        cell = cell.sort_values("contrast")
        ok = cell["accuracy"].to_numpy() >= criterion
        # suffix_ok[i]: every contrast from i on reaches the criterion
        suffix_ok = np.flip(np.logical_and.accumulate(np.flip(ok)))
        threshold = cell["contrast"].to_numpy()[suffix_ok].min() if suffix_ok.any() else np.inf
        rows.append({"task": task, "noise": float(sigma), "threshold": float(threshold)})
    table = pd.DataFrame(rows)
    for task, rows_ in table.groupby("task"):
        if np.isinf(rows_["threshold"]).all():
            raise ValueError(
                f"the reference SIMPLENET is never {criterion:.0%} correct on {PROBES[task]} "
                "at any noise level of the sweep, so no threshold table can be derived: train "
                "it longer (training settings) or use the shipped table (trials.con_thresholds)"
            )
    ConThresholds(table, source="the derived frontier")  # any other degeneracy
    return table
