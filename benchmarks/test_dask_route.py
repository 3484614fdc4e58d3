"""Covers: benchmarks.dask_route, sidecar.routing.dask_pool.

CI smoke of benchmarks/dask_route.py: the short run (a real 2-worker cluster) produces every
row with the shared shape and positive figures. No time is asserted."""

import json

import distributed  # noqa: F401  (the test extra has it: missing, this fails)

from benchmarks import dask_route


def test_short_run_writes_every_row(tmp_path):
    out = tmp_path / "dask_route.json"
    assert dask_route.main(["--short", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    figures = [row["figure"] for row in rows]
    assert "Dask route median / bare submit" in figures
    assert any(f.startswith("Dask throughput") for f in figures)
    for row in rows:
        assert {"figure", "ours", "peer", "ratio", "unit", "goal", "peer_name"} <= set(row)
        assert row["ours"] > 0 and row["peer"] > 0
