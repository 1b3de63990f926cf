"""The (noise, contrast) threshold table of ConDM / ConAntiDM (METHODS §2).

A table has one row per task (``ConDM``, ``ConAntiDM``) and noise level, with columns
``task``, ``noise`` (s.d. of the trial's input noise) and ``threshold`` (the smallest
|contrast| at which a reference SIMPLENET is ≥ 95 % correct on DM / AntiDM at that
noise). A Con trial above the frontier requires a response, one below it a withheld
response. CSV (``#`` comments allowed) and Parquet files are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import CON_TASKS

# |contrast| range of Con trials; strengths are 1 ± c/2.
CONTRAST_RANGE = (0.02, 0.25)


class ThresholdTableError(ValueError):
    """A threshold table that cannot be read or does not describe a usable frontier."""


@dataclass(frozen=True)
class ConThresholds:
    table: pd.DataFrame
    source: str = "<table>"

    def __post_init__(self):
        object.__setattr__(self, "table", _validate(self.table, self.source))

    @classmethod
    def default(cls) -> ConThresholds:
        ref = resources.files("instructnet") / "data" / "con_thresholds_default.csv"
        with resources.as_file(ref) as path:
            return cls.read(path)

    @classmethod
    def read(cls, path: str | Path) -> ConThresholds:
        path = Path(path)
        if not path.exists():
            raise ThresholdTableError(f"threshold table {path} does not exist")
        try:
            if path.suffix == ".parquet":
                df = pd.read_parquet(path)
            else:
                df = pd.read_csv(path, comment="#", skipinitialspace=True)
        except Exception as exc:
            raise ThresholdTableError(f"cannot read threshold table {path}: {exc}") from exc
        return cls(df, str(path))

    def sample(self, task: str, response: np.ndarray, rng: np.random.Generator):
        """Noise s.d. and |contrast| for each trial; above the frontier iff ``response``."""
        rows = self.table[self.table["task"] == task]
        noise = rows["noise"].to_numpy(float)
        thr = rows["threshold"].to_numpy(float)
        lo, hi = CONTRAST_RANGE
        n = len(response)
        sigma = np.empty(n)
        size = np.empty(n)
        for side, eligible in ((True, thr < hi), (False, thr > lo)):
            idx = np.flatnonzero(response == side)
            pick = rng.choice(np.flatnonzero(eligible), len(idx))
            t = thr[pick]
            sigma[idx] = noise[pick]
            size[idx] = (
                rng.uniform(np.maximum(t, lo), hi) if side else rng.uniform(lo, np.minimum(t, hi))
            )
        return sigma, size


def _validate(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a threshold table; return it with numeric columns."""
    bad = f"malformed threshold table {source}"
    if not isinstance(df, pd.DataFrame):
        raise ThresholdTableError(f"{bad}: not a table")
    missing = [c for c in ("task", "noise", "threshold") if c not in df.columns]
    if missing:
        raise ThresholdTableError(f"{bad}: missing columns {', '.join(missing)}")
    try:
        noise = pd.to_numeric(df["noise"]).to_numpy(float)
        thr = pd.to_numeric(df["threshold"]).to_numpy(float)
    except (ValueError, TypeError) as exc:
        raise ThresholdTableError(f"{bad}: non-numeric noise or threshold ({exc})") from exc
    if not np.all(np.isfinite(noise)) or np.any(noise <= 0):
        raise ThresholdTableError(f"{bad}: noise levels must be positive numbers")
    if np.any(np.isnan(thr)) or np.any(thr < 0):
        raise ThresholdTableError(f"{bad}: thresholds must be non-negative (inf = never)")
    lo, hi = CONTRAST_RANGE
    for task in CON_TASKS:
        rows = df["task"] == task
        if not rows.any():
            raise ThresholdTableError(f"{bad}: no rows for task {task}")
        t = thr[rows.to_numpy()]
        if not np.any(t < hi) or not np.any(t > lo):
            raise ThresholdTableError(
                f"{bad}: the {task} frontier leaves no contrast in {CONTRAST_RANGE} on one "
                "side (every threshold is above the largest or below the smallest contrast)"
            )
    unknown = sorted(set(df["task"].astype(str)) - set(CON_TASKS))
    if unknown:
        raise ThresholdTableError(f"{bad}: rows for tasks other than ConDM/ConAntiDM: {unknown}")
    return pd.DataFrame({"task": df["task"].astype(str).to_numpy(), "noise": noise, "threshold": thr})
