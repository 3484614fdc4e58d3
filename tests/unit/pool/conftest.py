"""Covers: sidecar.pool.local, sidecar.pool.lifecycle.

Fixtures shared by the pool's unit tests (its doubles are in tests/unit/pool_doubles.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from ..pool_doubles import PoolHarness


@pytest.fixture
def harness(tmp_path):
    """One pool on fake processes; closed after the test."""
    h = PoolHarness(tmp_path)
    yield h
    h.close()


@pytest.fixture
def make(tmp_path):
    """Builds pools on fake processes, each in a folder of its own; closed after the test."""
    made: list[PoolHarness] = []

    def build(**settings: Any) -> PoolHarness:
        folder = tmp_path / f"pool{len(made)}"
        folder.mkdir()
        h = PoolHarness(folder, **settings)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()
