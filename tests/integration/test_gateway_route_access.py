"""Covers: sidecar.config.access, bridge.zmq_server.

The gateway route grants only what the sidecar allows, against real
sidecars over ZeroMQ: requests carrying the message handler's mark (`routed`) get only what
python3.access.routed grants, `forbidden` otherwise; unmarked requests keep full access."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.client import BadRequest, Forbidden
from sidecar.testing import SidecarProcess

MARK = {"route": "message-handler", "project": "plant", "user": "claimed:op1",
        "session": "claimed:5f3a"}
LIGHT = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
         "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False}}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Defaults but for two listed targets: no execute, no diag through the route."""
    proc = SidecarProcess({**LIGHT, "access": {"routed": {
        "allow-targets": ["operator:add", "statistics:*"]}}},
        workdir=str(tmp_path_factory.mktemp("route_guarded")))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    proc = SidecarProcess({**LIGHT, "access": {"routed": {"execute": True, "diag": True}}},
                          workdir=str(tmp_path_factory.mktemp("route_opened")))
    proc.start()
    yield proc
    proc.stop()


def routed(client, op: str, **members):
    return client.request({"op": op, "routed": MARK, **members}, 10.0).get("value")


def refused_forbidden(proc) -> float:
    with urllib.request.urlopen(proc.http_url + "/metrics", timeout=10) as response:
        body = response.read().decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if (sample.name == "py3sidecar_requests_refused_total"
                    and sample.labels.get("kind") == "forbidden"):
                return sample.value
    return 0.0


def test_execute_through_the_route_is_forbidden_and_never_runs(guarded, tmp_path):
    proof = tmp_path / "ran"
    client = guarded.client()
    with pytest.raises(Forbidden) as caught:
        routed(client, "execute", code=f"open({str(proof)!r}, 'w').write('x')")
    assert caught.value.kind == "forbidden"
    assert "set python3.access.routed.execute to true" in caught.value.message
    assert "message-handler route of project 'plant'" in caught.value.message
    assert not proof.exists()


def test_an_allow_listed_call_is_served(guarded):
    client = guarded.client()
    assert routed(client, "call", target="operator:add", args=[1, 2]) == 3
    assert routed(client, "call", target="statistics:mean", args=[[1, 2, 3]]) == 2


def test_a_call_not_listed_is_forbidden_naming_the_key(guarded):
    with pytest.raises(Forbidden) as caught:
        routed(guarded.client(), "call", target="os:getuid", args=[])
    assert ("set python3.access.routed.allow-targets to include 'os:getuid'"
            in caught.value.message), caught.value.message


def test_a_wildcard_does_not_reach_a_modules_imports(guarded):
    """statistics imports random, which holds os: the path is real (the unmarked call answers
    this pid's getpid), and `statistics:*` does not grant it to the route."""
    path = "statistics:random._os.getpid"
    assert isinstance(guarded.client().call(path), int)
    with pytest.raises(Forbidden):
        routed(guarded.client(), "call", target=path, args=[])


def test_diag_and_operator_ops_are_forbidden_by_default(guarded):
    client = guarded.client()
    for op, members in (("diag", {"command": "config"}), ("breaker", {"command": "open"}),
                        ("quarantine", {"action": "clear"})):
        with pytest.raises(Forbidden) as caught:
            routed(client, op, **members)
        assert "set python3.access.routed.diag to true" in caught.value.message, op
    assert client.breaker()["breakers"]["primary"]["state"] == "closed"  # never forced open


def test_ping_and_health_stay_granted(guarded):
    client = guarded.client()
    assert routed(client, "ping")["state"] == "running"
    assert routed(client, "health")["status"]


def test_unmarked_requests_keep_full_access(guarded):
    client = guarded.client()
    assert client.execute("import os; os.getuid()").value == os.getuid()
    assert client.call("os:getuid") == os.getuid()
    assert "python3" in client.diagnostics("config")
    assert client.breaker()["breakers"]["primary"]["state"] == "closed"


def test_a_malformed_mark_is_bad_request_not_full_access(guarded):
    for mark in ("message-handler", {}, {"route": "message-handler", "roles": ["admin"]}):
        with pytest.raises(BadRequest, match="routed"):
            guarded.client().request({"op": "execute", "code": "1", "routed": mark}, 10.0)


def test_refusals_are_counted(guarded):
    before = refused_forbidden(guarded)
    with pytest.raises(Forbidden):
        routed(guarded.client(), "call", target="os:getcwd", args=[])
    assert refused_forbidden(guarded) == before + 1


def test_execute_and_diag_are_granted_when_set(opened):
    client = opened.client()
    assert routed(client, "execute", code="21 * 2") == 42
    assert "python3" in routed(client, "diag", command="config")
    with pytest.raises(Forbidden):  # allow-targets is still empty
        routed(client, "call", target="operator:add", args=[1, 2])


def test_config_check_rejects_a_bad_pattern_naming_the_key(tmp_path: Path):
    config = tmp_path / "bad.yml"
    config.write_text("python3:\n  access:\n    routed:\n      allow-targets: ['m:f:g']\n")
    done = subprocess.run([sys.executable, "-m", "sidecar", "config", "--check", str(config)],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert done.returncode != 0
    assert "python3.access.routed.allow-targets" in done.stderr, done.stderr
