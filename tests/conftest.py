import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The hub is never reachable in tests; fail fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
