"""Covers: sidecar.routing.lean, sidecar.service, sidecar.observability.metrics,
sidecar.observability.audit, sidecar.observability.diagnostics.

A real sidecar answers the same trivial call once on the lean path (its one worker idle) and once
on the full path (the worker busy, so the call waits in the queue and goes through the chain):
the replies, the call-history rows, the audit lines and the py3sidecar_* counters must be the
same but for times (unit twins of every outcome: tests/unit/routing/test_lean.py).
"""

from __future__ import annotations

import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.testing import SidecarProcess, wait_until
from tests.integration.test_audit_log import audit_lines

DEADLINE = 20.0
# The counters one answered call moves, by family (what must move alike on both paths).
COUNTED = ("py3sidecar_calls_total", "py3sidecar_pool_calls_total",
           "py3sidecar_fallback_served_total", "py3sidecar_call_duration_seconds_count",
           "py3sidecar_output_size_bytes_count", "py3sidecar_queue_wait_seconds_count")


@pytest.fixture(scope="module")
def sidecar():
    with SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                  "spares": 0}, "scaling": {"enabled": False}},
                        ready_workers=1) as proc:
        yield proc


def counters(proc: SidecarProcess, calls_only: bool = True) -> dict[tuple, float]:
    """The COUNTED samples; ``calls_only``: those of op "call" (the holding execute and the
    health polls in the full path's window count elsewhere)."""
    with urllib.request.urlopen(proc.http_url + "/metrics", timeout=10) as response:
        body = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples
            if s.name in COUNTED and (not calls_only or s.labels.get("op") == "call")}


def moved(before: dict[tuple, float], after: dict[tuple, float]) -> dict[tuple, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def one_call(proc: SidecarProcess, client, hold=None) -> tuple[dict, dict, dict, dict]:
    """The reply, history row, audit line and counters that one ``operator:add`` call made."""
    before, lines = counters(proc), len(audit_lines(proc))
    reply = client.request({"op": "call", "target": "operator:add", "args": [1, 2]})
    if hold is not None:
        hold()
    row = client.diagnostics("history", limit=1)["calls"][-1]
    line = wait_until(lambda: next((x for x in audit_lines(proc)[lines:]
                                    if x.get("target") == "operator:add"), None),
                      DEADLINE, message="the call's audit line")
    return reply, row, line, moved(before, counters(proc))


def without_times(reply: dict, row: dict, line: dict, counted: dict) -> tuple:
    return ({k: v for k, v in reply.items() if k not in ("id", "ms", "cpu")},
            {k: v for k, v in row.items() if k not in ("time", "duration_ms")},
            {k: v for k, v in line.items() if k not in ("ts", "duration_ms", "seconds")},
            counted)


def test_a_call_on_the_lean_path_and_on_the_full_path_leave_the_same_traces(sidecar, tmp_path):
    client = sidecar.client()
    lean = one_call(sidecar, client)  # the worker is idle: the lean path
    flag = tmp_path / "go"
    holder = sidecar.client()
    held = threading.Thread(target=holder.execute, args=(
        f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.005)\n1",),
        daemon=True)
    held.start()
    wait_until(lambda: client.health()["pool"]["workers_by_state"]["busy"] == 1, DEADLINE,
               message="the only worker busy")
    queued = threading.Thread(target=lambda: results.append(one_call(sidecar, client)))
    results: list[tuple] = []
    queued.start()  # no idle worker: MeteredCall through the chain, queued in the pool
    wait_until(lambda: sidecar.client().health()["pool"]["queue"]["length"] == 1, DEADLINE,
               message="the call queued")
    flag.write_text("")
    queued.join(DEADLINE)
    held.join(DEADLINE)
    [full] = results
    assert lean[0]["ok"] and lean[0]["value"] == 3 and lean[0]["via"] == "primary"
    assert without_times(*lean) == without_times(*full)
    assert lean[3] == {("py3sidecar_calls_total", (("op", "call"), ("outcome", "ok"))): 1}
    everything = counters(sidecar, calls_only=False)  # the lean call, the execute, the full one
    assert {k: v for k, v in everything.items() if k[0] != "py3sidecar_calls_total"} == {
        ("py3sidecar_pool_calls_total", (("outcome", "ok"), ("pool", "primary"))): 3,
        ("py3sidecar_fallback_served_total", (("strategy", "primary"),)): 3,
        ("py3sidecar_call_duration_seconds_count", ()): 3,
        ("py3sidecar_output_size_bytes_count", ()): 3,
        ("py3sidecar_queue_wait_seconds_count", ()): 3}
