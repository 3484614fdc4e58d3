"""Covers: benchmarks.payload_scaling, bridge.codec.

CI smoke of benchmarks/payload_scaling.py: the short run (1 KiB to 1 MiB) produces every row,
each value came back intact (the script checks before timing) and the JSON rows have the shared
shape. No time is asserted."""

import json

from benchmarks import payload_scaling


def test_short_run_writes_every_row(tmp_path):
    out = tmp_path / "payload_scaling.json"
    assert payload_scaling.main(["--short", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    figures = {row["figure"] for row in rows}
    for size in ("1 KiB", "64 KiB", "1 MiB"):
        for kind in ("reply", "request", "round trip"):
            assert f"{kind} {size} / PPE" in figures
    for row in rows:
        assert {"figure", "ours", "peer", "ratio", "unit", "goal", "peer_name"} <= set(row)
        assert row["ours"] > 0 and row["peer"] > 0
