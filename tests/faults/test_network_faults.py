"""Covers: bridge.client, bridge.breaker, bridge.zmq_server.

Network faults between a caller and a sidecar: the CPython client over ZeroMQ, and the
remote-sidecar fallback (RemoteStrategy), through a real fault-injecting TCP proxy.

Every call ends with its reply or a typed error within its deadline (+ grace + slack); the
client (or the strategy) works again by itself once the network heals; and no call runs twice
(each appends its tag to a ledger file in the worker: see ledger.py).
"""
from __future__ import annotations

import pytest

from bridge.breaker import BreakerConfig
from bridge.client import Client
from sidecar.testing import SidecarProcess, wait_until

from .ledger import MARK_CODE, Ledger
from .proxy import REPLY, REQUEST, FaultProxy

CONFIG = {"pool": {"initial-size": 2, "min-size": 2, "max-size": 2, "spares": 0},
          "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False},
          "health": {"enabled": False}}
TIMEOUT = 1.0   # the calls' own timeout (seconds)
GRACE = 0.5     # the client's wait past it
SLACK = 1.5     # scheduling on a loaded 2-core machine: a bound, not a speed figure
# The client's own breaker, opened by the fault, probes again after 0.3 s (shipped: 2 s): the
# recovery below is the reconnect, not the breaker's wait.
FAST_BREAKER = BreakerConfig(failure_threshold=1, failure_rate_threshold=1.0, window_size=1,
                             minimum_calls=1, open_timeout=0.3, half_open_max_probes=1,
                             success_threshold=1)


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    with SidecarProcess(CONFIG, workdir=str(tmp_path_factory.mktemp("faults"))) as sc:
        yield sc


@pytest.fixture
def proxy(sidecar):
    with FaultProxy(sidecar.port) as p:
        yield p


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ledger.txt")


def zmq_caller(client: Client):
    def call(path: str, tag: str, timeout: float):
        return client.execute(MARK_CODE, {"ledger": path, "tag": tag}, timeout=timeout).value
    return call


def within_deadline(out, timeout: float = TIMEOUT) -> None:
    assert out.seconds <= timeout + GRACE + SLACK, out


def recovers(ledger: Ledger, call, label: str, timeout: float = 10.0) -> None:
    """Calls until one succeeds (the client reconnects by itself), within ``timeout``."""
    wait_until(lambda: ledger.call(call, label, TIMEOUT).kind == "ok", timeout,
               interval=0.05, message=f"{label}: a successful call after the fault")


@pytest.fixture
def client(sidecar, proxy):
    c = Client(proxy.endpoint, sidecar.token, timeout=TIMEOUT, grace=GRACE, connect_timeout=0.5,
               breaker=FAST_BREAKER)
    yield c
    c.close()


def test_added_latency_slows_calls_but_loses_none(proxy, client, ledger):
    call = zmq_caller(client)
    assert ledger.call(call, "before", TIMEOUT).kind == "ok"
    proxy.latency(0.1)
    for _ in range(5):
        out = ledger.call(call, "slow", TIMEOUT)
        assert out.kind == "ok", out
    # Latency beyond the deadline: a typed error in time, the call runs once (late) anyway.
    proxy.latency(TIMEOUT + GRACE)
    out = ledger.call(call, "too-slow", TIMEOUT)
    assert out.kind != "ok" and out.kind in ("unavailable", "timeout"), out
    within_deadline(out)
    wait_until(lambda: ledger.runs()[out.tag] >= 1, 10, message="the late request ran")
    proxy.heal()
    recovers(ledger, call, "after")
    ledger.check_never_twice()


@pytest.mark.parametrize("direction", [REQUEST, REPLY])
def test_connection_reset_mid_frame(proxy, client, ledger, direction):
    call = zmq_caller(client)
    assert ledger.call(call, "before", TIMEOUT).kind == "ok"
    proxy.reset_next(direction)
    out = ledger.call(call, f"reset-{direction}", TIMEOUT)
    # The client sees the reset at once (end of stream), maybe before the proxy has counted it.
    assert proxy.wait_reset(1, 5.0) and proxy.resets == 1
    assert out.kind in ("unavailable", "timeout"), out
    within_deadline(out)
    recovers(ledger, call, "after")
    runs = ledger.check_never_twice()
    # Half a request is no request; a reply cut in half came from a call that ran, once.
    assert runs.get(out.tag, 0) == (0 if direction == REQUEST else 1), runs


def test_half_open_connection(proxy, client, ledger):
    call = zmq_caller(client)
    assert ledger.call(call, "before", TIMEOUT).kind == "ok"
    proxy.half_open()
    for _ in range(3):  # the held connection, then new ones that never complete a handshake
        out = ledger.call(call, "vanished", TIMEOUT)
        assert out.kind in ("unavailable", "timeout"), out
        within_deadline(out)
    proxy.heal()
    recovers(ledger, call, "after")
    runs = ledger.check_never_twice()
    assert not [o for o in ledger.outcomes if o.tag.startswith("vanished") and runs.get(o.tag)]


def test_stall_then_heal(proxy, client, ledger):
    call = zmq_caller(client)
    assert ledger.call(call, "before", TIMEOUT).kind == "ok"
    proxy.stall()
    out = ledger.call(call, "stalled", TIMEOUT)
    assert out.kind in ("unavailable", "timeout"), out
    within_deadline(out)
    proxy.heal()  # the held request is delivered now, and runs (once)
    recovers(ledger, call, "after")
    wait_until(lambda: ledger.runs()[out.tag] >= 1, 10, message="the held request ran")
    ledger.check_never_twice()


# ---------------------------------------------------------------- remote-sidecar fallback

@pytest.fixture(scope="module")
def remote_pair(sidecar, tmp_path_factory):
    """A local sidecar whose primary pool cannot start a worker (a broken interpreter), with
    the module's sidecar as its remote fallback, behind a proxy."""
    broken = tmp_path_factory.mktemp("broken") / "broken-python"
    broken.write_text("#!/bin/sh\nexit 7\n")
    broken.chmod(0o755)
    with FaultProxy(sidecar.port) as p:
        local = SidecarProcess({"worker": {"python": str(broken)}, "pool": {"initial-size": 1},
                                "health": {"enabled": False}, "scaling": {"enabled": False},
                                "fallback": {"strategies": ["primary", "remote"],
                                             "remote": {"endpoint": p.endpoint,
                                                        "token": sidecar.token}}},
                               workdir=str(tmp_path_factory.mktemp("local")), ready_workers=0)
        with local:
            yield local, p


@pytest.mark.parametrize("fault", ["latency", "reset-request", "reset-reply", "half-open",
                                   "stall"])
def test_remote_fallback_under_network_faults(remote_pair, ledger, fault):
    local, proxy = remote_pair
    client = local.client(timeout=TIMEOUT, grace=GRACE)

    def call(path: str, tag: str, timeout: float):
        result = client.execute(MARK_CODE, {"ledger": path, "tag": tag}, timeout=timeout)
        assert result.via == "remote", result
        return result.value

    recovers(ledger, call, "before")
    if fault == "latency":
        proxy.latency(0.1)
        assert ledger.call(call, "slow", TIMEOUT).kind == "ok"
        proxy.latency(TIMEOUT + GRACE)
    elif fault.startswith("reset"):
        proxy.reset_next(REQUEST if fault == "reset-request" else REPLY)
    elif fault == "half-open":
        proxy.half_open()
    else:
        proxy.stall()
    out = ledger.call(call, fault, TIMEOUT)
    assert out.kind in ("unavailable", "timeout"), out
    within_deadline(out)
    proxy.heal()
    # The strategy's one DEALER must come back by itself (no restart of the local sidecar).
    recovers(ledger, call, "after", timeout=15)
    runs = ledger.check_never_twice()
    if fault in ("reset-request", "half-open"):
        assert runs.get(out.tag, 0) == 0, runs
    client.close()

