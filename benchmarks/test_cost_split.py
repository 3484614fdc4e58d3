"""Covers: benchmarks.cost_split, benchmarks.peer_driver.

The split of a call's cost by process, measured for real on a short run: every subject's
caller, sidecar and workers are the processes that did the work (a caller's calling threads that
ended are still counted), the peers have no sidecar, and each section's rows compare against
that section's ProcessPoolExecutor. No time is asserted.
"""

from __future__ import annotations

from benchmarks import cost_split

SUBJECTS = ("ours, ZeroMQ", "ours, Unix socket", "ppe", "mp_pool")


def test_a_short_split_counts_every_process_of_every_subject():
    result = cost_split.run(calls=200, seconds=0.3, rounds=1, reply_mib=1, reply_calls=2)
    for section in ("serial", "throughput_2w", "throughput_4w"):
        got = result[section]
        assert [name.split("(")[0] for name in got] == list(SUBJECTS)
        for name, split in got.items():
            # The caller did the calls: with 8 threads they ended before the read, and are
            # counted all the same (a /proc task listing would have lost them).
            assert split["caller"] > 1.0, (section, name, split)
            assert split["workers"] > 1.0, (section, name, split)
            if name.startswith("ours"):
                assert split["sidecar"] >= split["loop"] > 1.0, (section, name, split)
            else:
                assert split["sidecar"] == 0.0 and split["loop"] == 0.0, (section, name)
            assert split["cpu"] == split["caller"] + split["sidecar"] + split["workers"]
            assert 0.0 < split["cores_busy"] <= cost_split.CORES + 0.5
    reply = result["reply_1mib"]
    assert sorted(reply) == ["ours, Unix socket", "ours, Unix, 96 MiB kept", "ours, ZeroMQ",
                             "ppe(1)"]
    assert all(split["workers"] > 0 for split in reply.values())
    rows = cost_split.rows_of(result)
    assert {row["figure"] for row in rows} >= {
        "serial: ours, Unix socket / ppe(1)", "throughput_2w: ours, ZeroMQ / ppe(2)",
        "reply_1mib: ours, Unix socket / ppe(1)"}
    serial = next(r for r in rows if r["figure"] == "serial: ours, ZeroMQ / ppe(1)")
    assert serial["ratio"] == serial["ours"] / serial["peer"] and serial["goal"] == "<= 0.8x"
