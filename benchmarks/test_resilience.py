"""Covers: bridge.breaker, sidecar.routing.chain.

Breaker and fallback figures: how fast an open breaker answers, how many calls a primary-pool
outage costs with the chain on, and client failover when a whole sidecar is killed.

The outage: the primary pool's interpreter is a wrapper that refuses to start once a flag file
exists; mid-load the flag is set and every primary worker is SIGKILLed, so the primary pool can
no longer serve. The chain (primary -> secondary -> direct, ``crashed`` added to the
fall-through kinds for this idempotent workload) must serve every call.
"""

import os
import signal
import sys
import threading

import pytest

from benchmarks import failover_demo
from benchmarks.conftest import LINES, record
from bridge.client import CircuitOpen, Client, Unavailable
from sidecar.testing import SidecarProcess, free_port, wait_until


@pytest.fixture(scope="module")
def open_sidecar(tmp_path_factory):
    proc = SidecarProcess({"pool": {"initial-size": 1}},
                          workdir=str(tmp_path_factory.mktemp("breaker")))
    proc.start()
    proc.client(timeout=5).breaker("open")
    yield proc
    proc.stop()


def test_circuit_open_answer_time(benchmark, open_sidecar):
    client = open_sidecar.client(timeout=5)

    def rejected() -> str:
        try:
            client.execute("1+1")
        except CircuitOpen as exc:
            return exc.kind
        return "served"

    assert benchmark(rejected) == "circuit_open"
    record("circuit_open_reply", benchmark)


def test_dead_sidecar_answer_time_with_client_breaker(benchmark):
    client = Client(f"tcp://127.0.0.1:{free_port()}", "t", timeout=5, connect_timeout=0.2)
    with pytest.raises(Unavailable):
        client.execute("1")  # the one connect wait; the breaker is open after it

    def fast_fail() -> str:
        try:
            client.execute("1")
        except Unavailable as exc:
            return exc.kind
        return "served"

    assert benchmark(fast_fail) == "unavailable"
    record("dead_sidecar_client_breaker", benchmark)
    client.close()


def test_share_served_during_a_primary_pool_outage(tmp_path):
    flag = tmp_path / "outage"
    wrapper = tmp_path / "python-until-outage"
    wrapper.write_text(f"#!/bin/sh\n[ -e {flag} ] && exit 7\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    proc = SidecarProcess({"worker": {"python": str(wrapper)},
                           "pool": {"initial-size": 2, "max-size": 2},
                           "circuit-breaker": {"failure-threshold": 3, "timeout": "30s"},
                           "fallback": {"strategies": ["primary", "secondary", "direct"],
                                        "fall-through": ["circuit_open", "overloaded",
                                                         "unavailable", "crashed"],
                                        "secondary": {"python": sys.executable,
                                                      "initial-size": 2, "max-size": 2}}},
                          workdir=str(tmp_path))
    with proc:
        client = proc.client(timeout=10)
        via: dict[str, int] = {}
        failed: list[str] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    result = client.execute("import time; time.sleep(0.002); 7")
                    via[result.via] = via.get(result.via, 0) + 1
                except Exception as exc:
                    failed.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: via.get("primary", 0) > 50, 10)
        flag.write_text("")
        for worker in proc.pool()["workers"]:
            try:
                os.kill(worker["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: via.get("secondary", 0) > 200, 20,
                   message="calls served by the secondary pool")
        stop.set()
        for t in threads:
            t.join(20)
        breaker = client.health()["breakers"]["primary"]["state"]
    total = sum(via.values()) + len(failed)
    share = sum(via.values()) / total
    LINES.append(f"primary-pool outage with the chain on: {sum(via.values())}/{total} calls "
                 f"served ({share:.1%}); by strategy {via}; primary breaker {breaker}; "
                 f"failures {failed[:3]}")
    assert failed == [], failed[:5]
    assert breaker == "open"


def test_client_failover_when_the_primary_sidecar_is_killed():
    figures = failover_demo.run(seconds=2.0, threads=3)
    LINES.append(f"sidecar killed mid-load, client failover: {figures['answered']}/"
                 f"{figures['calls']} answered ({figures['by_first']} by the first, "
                 f"{figures['by_second']} by the second), slowest call around the kill "
                 f"{figures['slowest_around_kill_ms']:.1f} ms")
    assert figures["failed"] == 0, figures["failures"]
    assert figures["by_first"] > 0 and figures["by_second"] > 0
