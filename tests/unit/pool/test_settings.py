"""Covers: sidecar.pool.settings.

A pool's settings: defaults that spawn from the template and never recycle by count.
"""

from __future__ import annotations

from sidecar.pool.settings import PoolSettings


def test_defaults():
    settings = PoolSettings()
    assert settings.spawn == "template" and settings.max_calls == 0
    assert settings.cpu_affinity == [] and settings.fd_output == "log"
    assert PoolSettings().cpu_affinity is not settings.cpu_affinity  # no shared list
