"""Shared test configuration: point the data layer at the shared real datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()

# Set at import (before collection) so every test in the session resolves the same data dir.
if SHARED_DATA.is_dir() and not os.environ.get("PYRO_DRAW_DATA_DIR"):
    os.environ["PYRO_DRAW_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared real-data directory; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data directory {SHARED_DATA} not found")
    return SHARED_DATA
