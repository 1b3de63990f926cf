"""Seeds: every random stream of the workflow derives from the config's master seed plus
names and numbers (the output's wildcards), so that the same config gives the same
bytes whichever process or machine computes it."""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(*parts: int | str) -> np.random.SeedSequence:
    """A seed sequence derived from ints and names (stable across processes)."""
    entropy = [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return np.random.SeedSequence(entropy)


def seed_int(*parts) -> int:
    """A 63-bit integer seed derived from names and numbers (torch generators)."""
    return int(derive_seed(*parts).generate_state(2, np.uint64)[0] >> np.uint64(1))
