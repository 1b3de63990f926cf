"""The trial table: one row of latent variables per trial, stored as Parquet.

Columns (times are step indices 0..149 of 20 ms; angles in radians in [0, 2π)):

=================  ==========  =============================================================
column             dtype       meaning
=================  ==========  =============================================================
task               string      task name (one of the 50)
trial              int32       row number within the pool
stim1_on           int16       first step of the stim1 epoch (= length of the fixation epoch)
stim1_off          int16       first step after stim1 (start of the delay epoch)
stim2_on           int16       first step of stim2 (end of the delay epoch)
stim2_off          int16       first step after stim2
go_on              int16       first step of the go/response epoch
fix_off            int16       first step with fixation input 0 (150 = never, RT tasks)
m{M}_s{S}_dir      float64     direction of stimulus S (1, 2) in modality M (1, 2); null if absent
m{M}_s{S}_str      float64     its strength; null if absent
m{M}_s{S}_on       Int16       first step it is shown; null if absent
m{M}_s{S}_off      Int16       first step after it is shown; null if absent
sigma              float64     s.d. of the Gaussian input noise of this trial
contrast           float64     signed evidence the task's decision rests on (strength or
                               duration difference stim1 - stim2, in the relevant modality
                               or summed over modalities); null for Go and matching tasks
response           bool        whether the network must respond (else withhold)
target_dir         float64     direction to respond to; null when no response is required
=================  ==========  =============================================================
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .constants import N_STEPS, TASK_INDEX

SLOTS: tuple[str, ...] = ("m1_s1", "m1_s2", "m2_s1", "m2_s2")
EPOCH_COLUMNS = ("stim1_on", "stim1_off", "stim2_on", "stim2_off", "go_on", "fix_off")

COLUMNS: dict[str, str] = {"task": "string", "trial": "int32"}
COLUMNS.update({c: "int16" for c in EPOCH_COLUMNS})
for _slot in SLOTS:
    COLUMNS.update(
        {
            f"{_slot}_dir": "float64",
            f"{_slot}_str": "float64",
            f"{_slot}_on": "Int16",
            f"{_slot}_off": "Int16",
        }
    )
COLUMNS.update(
    {"sigma": "float64", "contrast": "float64", "response": "bool", "target_dir": "float64"}
)


class TrialTableError(ValueError):
    """A trial table that is missing columns, malformed or unreadable."""


def to_frame(columns: dict) -> pd.DataFrame:
    """Assemble a trial table with the canonical column order and dtypes."""
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise TrialTableError(f"trial table lacks columns: {', '.join(missing)}")
    df = pd.DataFrame({c: columns[c] for c in COLUMNS})
    return df.astype(COLUMNS)


def validate_trials(df: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """Check that ``df`` is a well-formed trial table; raise TrialTableError if not."""
    where = f" in {source}" if source else ""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise TrialTableError(f"trial table{where} lacks columns: {', '.join(missing)}")
    unknown = sorted(set(df["task"].astype(str)) - set(TASK_INDEX))
    if unknown:
        raise TrialTableError(f"trial table{where} names unknown tasks: {', '.join(unknown)}")
    go = df["go_on"].to_numpy()
    if len(df) and (go.min() < 1 or go.max() >= N_STEPS):
        raise TrialTableError(f"trial table{where} has go_on outside 1..{N_STEPS - 1}")
    need_target = df["response"].to_numpy(dtype=bool)
    if df["target_dir"].isna().to_numpy()[need_target].any():
        raise TrialTableError(f"trial table{where} has response trials without target_dir")
    return df


def write_trials(df: pd.DataFrame, path: str | Path) -> None:
    """Write a trial table to Parquet, byte-for-byte reproducibly."""
    validate_trials(df)
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, str(path), compression="zstd")


def read_trials(path: str | Path) -> pd.DataFrame:
    """Read a trial table written by :func:`write_trials` (clear error if unreadable)."""
    path = Path(path)
    if not path.exists():
        raise TrialTableError(f"trial table {path} does not exist")
    try:
        df = pq.read_table(str(path)).to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise TrialTableError(
            f"cannot read trial table {path}: {exc} (truncated or not a Parquet file? "
            "delete it and let the workflow rebuild it)"
        ) from exc
    validate_trials(df, source=str(path))
    return df.astype(COLUMNS)
