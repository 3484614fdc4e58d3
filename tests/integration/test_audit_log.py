"""Covers: sidecar.observability.audit, bridge.zmq_server, bridge.py4j_server,
    sidecar.operator.operations.

The audit log of a real sidecar (python3.audit): a line per call, refusal and operator action,
with the peer of each front, the code's sha256 but never the code, arguments or values, the
message handler's routed marks; an audit file that cannot be opened stops nothing.

Lines are written by the sidecar's writer thread: every read waits for them with a deadline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import urllib.request
from pathlib import Path

import msgpack
import pytest
import zmq

from bridge.client import Client
from bridge.protocol import (
    BadRequest,
    CallTimeout,
    Forbidden,
    PythonError,
    Unauthorized,
    WorkerCrashed,
)
from sidecar.testing import SidecarProcess, wait_until

DEADLINE = 20.0
SECRET_CODE = "api_key = 'hunter2-SECRET-code'\nresult = len(api_key)"
SECRET_VALUE = "sk-live-SECRET-VALUE-42"
ZMQ_PEER = "zmq:tcp://127.0.0.1"


@pytest.fixture(scope="module")
def sidecar():
    with SidecarProcess({"pool": {"initial-size": 1}}) as proc:
        yield proc


def audit_lines(proc: SidecarProcess) -> list[dict]:
    path = proc.runtime_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_line(proc: SidecarProcess, match, message: str) -> dict:
    def found():
        return next((line for line in audit_lines(proc) if match(line)), None)
    return wait_until(found, DEADLINE, message=message)


def test_calls_of_every_outcome_are_audited_with_hash_target_and_peer(sidecar):
    client = sidecar.client()
    assert client.execute(SECRET_CODE, {"token_like": SECRET_VALUE}).value == 19
    assert client.call("json:dumps", SECRET_VALUE) == json.dumps(SECRET_VALUE)
    with pytest.raises(PythonError):
        client.execute("raise ValueError('user error: ' + secret)", {"secret": SECRET_VALUE})
    with pytest.raises(CallTimeout):
        client.execute("import time; time.sleep(30)", timeout=0.5)
    with pytest.raises(WorkerCrashed):
        client.execute("import os; os._exit(3)")
    digest = hashlib.sha256(SECRET_CODE.encode()).hexdigest()
    ok = wait_for_line(sidecar, lambda line: line.get("code_sha256") == digest, "execute line")
    assert (ok["op"], ok["pool"], ok["outcome"], ok["peer"]) == ("execute", "primary", "ok",
                                                                 ZMQ_PEER)
    assert ok["duration_ms"] > 0 and ok["ts"].endswith("Z")
    call = wait_for_line(sidecar, lambda line: line.get("target") == "json:dumps", "call line")
    assert (call["op"], call["outcome"], call["peer"]) == ("call", "ok", ZMQ_PEER)
    for outcome in ("user", "timeout", "crashed"):
        line = wait_for_line(sidecar, lambda line, o=outcome: line.get("outcome") == o,
                             f"a {outcome} line")
        assert line["op"] == "execute" and line["peer"] == ZMQ_PEER and "code_sha256" in line
    text = (sidecar.runtime_dir / "audit.log").read_text()
    for secret in (SECRET_CODE, "hunter2", SECRET_VALUE, "token_like", sidecar.token):
        assert secret not in text


def test_refusals_are_audited_and_an_unauthenticated_one_keeps_peer_and_outcome_only(sidecar):
    with Client(sidecar.endpoint, "not-the-token", timeout=5.0) as stranger:
        with pytest.raises(Unauthorized):
            stranger.execute(SECRET_CODE)
    with pytest.raises(BadRequest):
        sidecar.client().request({"op": "call", "target": "no-colon", "args": [SECRET_VALUE]})
    refused = wait_for_line(sidecar, lambda line: line["outcome"] == "unauthorized",
                            "an unauthorized line")
    assert set(refused) == {"ts", "outcome", "peer"} and refused["peer"] == ZMQ_PEER
    bad = wait_for_line(sidecar, lambda line: line.get("target") == "no-colon",
                        "a bad_request line")
    assert (bad["op"], bad["outcome"], bad["peer"]) == ("call", "bad_request", ZMQ_PEER)
    # Junk with no token in it (past the handshake): a line, and nothing of what it sent.
    context = zmq.Context.instance()
    with context.socket(zmq.DEALER) as junk:
        junk.linger = 0
        sidecar.authenticate(junk)
        junk.connect(sidecar.endpoint)
        junk.send(b"\xc1" + SECRET_VALUE.encode())
        assert junk.poll(DEADLINE * 1000)
        junk.recv()
    wait_for_line(sidecar, lambda line: line["outcome"] == "bad_request" and "op" not in line,
                  "a bad_request line of an unauthenticated peer")
    assert SECRET_VALUE not in (sidecar.runtime_dir / "audit.log").read_text()


def test_routed_marks_of_the_envelope_are_copied(sidecar):
    routed = {"route": "message-handler", "project": "PlantProject", "user": "alice",
              "session": "session-id-1"}
    client = sidecar.client()
    # Not in python3.access.routed.allow-targets: refused, and the refusal's line has the marks.
    with pytest.raises(Forbidden):
        client.request({"op": "call", "target": "operator:add", "args": [1, 2],
                        "routed": routed})
    line = wait_for_line(sidecar, lambda line: line.get("target") == "operator:add",
                         "a routed call line")
    assert line["outcome"] == "forbidden", line
    assert (line["route"], line["project"], line["user"]) == ("message-handler",
                                                             "PlantProject", "alice")
    assert "session-id-1" not in json.dumps(line)


def test_operator_actions_are_audited_as_their_op_on_every_front(sidecar):
    client = sidecar.client()
    client.breaker("status")
    client.quarantine("list")
    client.ping()  # a probe: not audited
    request = urllib.request.Request(sidecar.http_url + "/api/diagnostics/help",
                                     headers={"Authorization": f"Bearer {sidecar.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    breaker = wait_for_line(sidecar, lambda line: line.get("op") == "breaker", "breaker line")
    assert (breaker["command"], breaker["outcome"], breaker["peer"]) == ("status", "ok",
                                                                         ZMQ_PEER)
    quarantine = wait_for_line(sidecar, lambda line: line.get("op") == "quarantine",
                               "quarantine line")
    assert quarantine["command"] == "list"
    diag = wait_for_line(sidecar, lambda line: line.get("peer", "").startswith("http:"),
                         "an HTTP diagnostics line")
    assert (diag["op"], diag["command"], diag["outcome"]) == ("diag", "help", "ok")
    assert diag["peer"].startswith("http:127.0.0.1:")
    assert not [line for line in audit_lines(sidecar) if line.get("op") in ("ping", "health")]


def py4j_apply(port: int, token: str, envelope: dict) -> tuple[dict, str]:
    """One raw py4j connection (as a JVM thread's): authenticate, apply, read the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        host, port = sock.getsockname()[:2]
        local = f"py4j:{host}:{port}"
        sock.sendall(f"A\n{token}\ne\n".encode() + b"c\nt\napply\nsrequest\nj"
                     + base64.b64encode(msgpack.packb(envelope)) + b"\ne\n")
        data = b""
        while data.count(b"\n") < 2:
            chunk = sock.recv(65536)
            assert chunk, "the py4j front closed the connection"
            data += chunk
    auth, answer = data.split(b"\n")[:2]
    assert auth == b"!yv" and answer.startswith(b"!yj"), data[:200]
    return msgpack.unpackb(base64.b64decode(answer[3:])), local


def test_a_py4j_call_is_audited_with_its_address_and_port(sidecar):
    reply, peer = py4j_apply(sidecar.py4j_port, sidecar.token,
                             {"v": 1, "id": 7, "token": sidecar.token, "op": "call",
                              "target": "operator:mul", "args": [6, 7]})
    assert reply["ok"] and reply["value"] == 42
    line = wait_for_line(sidecar, lambda line: line.get("target") == "operator:mul",
                         "the py4j call line")
    assert line["peer"] == peer and line["outcome"] == "ok"


def test_refusals_the_fronts_make_themselves_are_audited(sidecar):
    with socket.create_connection(("127.0.0.1", sidecar.py4j_port), timeout=DEADLINE) as sock:
        host, port = sock.getsockname()[:2]
        sock.sendall(b"A\nnot-the-token\ne\n")
        assert sock.recv(64).startswith(b"!xn")
    line = wait_for_line(sidecar, lambda line: line.get("peer") == f"py4j:{host}:{port}",
                         "the py4j wrong-token line")
    assert set(line) == {"ts", "outcome", "peer"} and line["outcome"] == "unauthorized"
    def unauthenticated_bad_requests() -> int:
        return sum(1 for line in audit_lines(sidecar)
                   if line["outcome"] == "bad_request" and "op" not in line)
    before = unauthenticated_bad_requests()
    context = zmq.Context.instance()
    with context.socket(zmq.DEALER) as two_frames:
        sidecar.authenticate(two_frames)
        two_frames.linger = 0
        two_frames.connect(sidecar.endpoint)
        two_frames.send_multipart([b"one", SECRET_VALUE.encode()])
        assert two_frames.poll(DEADLINE * 1000)
        two_frames.recv()
    wait_until(lambda: unauthenticated_bad_requests() > before, DEADLINE,
               message="the two-frame message's line")
    assert SECRET_VALUE not in (sidecar.runtime_dir / "audit.log").read_text()


def test_health_and_metrics_show_the_audit_log(sidecar):
    audit = sidecar.probe().health()["audit"]
    assert audit["enabled"] and audit["file"] == str(sidecar.runtime_dir / "audit.log")
    assert audit["written"] >= 1 and audit["dropped"] == 0 and audit["error"] is None
    with urllib.request.urlopen(sidecar.http_url + "/metrics", timeout=10) as response:
        body = response.read().decode()
    assert "py3sidecar_audit_lines_total" in body
    assert "py3sidecar_audit_dropped_total 0.0" in body


def test_an_audit_file_that_cannot_be_opened_is_logged_and_calls_are_served(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the audit log's folder should be")
    wanted = blocker / "audit.log"
    with SidecarProcess({"pool": {"initial-size": 1}, "audit": {"file": str(wanted)}},
                        workdir=str(tmp_path / "work")) as proc:
        assert proc.client().execute("result = 6 * 7").value == 42
        audit = proc.probe().health()["audit"]
        log = proc.log()
    assert audit["enabled"] is False and "python3.audit.file" in audit["error"]
    assert "ERROR" in log and "python3.audit.file" in log and str(wanted) in log
