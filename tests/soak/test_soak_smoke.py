"""Covers: benchmarks.soak, sidecar.pool.local, sidecar.pool.lifecycle.

A short run (5 s) of the soak (benchmarks/soak.py; `make soak` runs it for 10 minutes).

8 callers, a worker SIGKILLed every 0.5 s, hostile calls mixed in: every request gets exactly
one reply, nothing answers `internal`, every kind of hostile call got its documented answer at
least once, and the sidecar survives.
"""
from __future__ import annotations

import os

from benchmarks import soak

SECONDS = float(os.environ.get("PY3SIDECAR_SOAK_SMOKE_SECONDS", "5"))


def test_soak_smoke(tmp_path):
    summary = soak.run(SECONDS, workdir=str(tmp_path))
    assert summary["failures"] == [], summary
    assert summary["requests"] == summary["replies"] > 0, summary
    assert summary["workers_killed"] >= 1, summary
    by_call = summary["by_call"]
    assert by_call["malformed"].get("bad_request"), by_call
    assert by_call["raises"].get("user"), by_call
    assert by_call["crashes"].get("crashed") or by_call["crashes"].get("quarantined"), by_call
    assert by_call["plain"].get("ok"), by_call
