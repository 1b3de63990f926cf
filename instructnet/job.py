"""What every workflow script (scripts/*.py, run by Snakemake's ``script:``) does first."""

from __future__ import annotations

import logging
import sys


def start_job(snakemake, torch: bool = True) -> str | None:
    """Send the job's stderr and log records to the rule's log file; with ``torch``, give
    torch the rule's threads and return the device the job computes on ("cuda" when
    one is visible, else "cpu")."""
    sys.stderr = open(snakemake.log[0], "w")  # noqa: SIM115 (open for the job's lifetime)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(message)s", force=True)
    if not torch:
        return None
    import torch as th

    th.set_num_threads(snakemake.threads)
    return "cuda" if th.cuda.is_available() else "cpu"
