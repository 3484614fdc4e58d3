"""Covers: sidecar.observability.audit, sidecar.config.model.

sidecar/observability/audit.py: what an audit line holds (and never holds), rotation by size, a
full queue, a file that cannot be opened or written. A real writer thread and real files throughout;
every wait has a deadline (``AuditLog.close`` joins the writer within one)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.config.model import ConfigError, load
from sidecar.observability.audit import AuditLog, build_audit
from sidecar.testing import wait_until

SECRET_CODE = "password = 'hunter2-SECRET-in-code'\nresult = password"
SECRET_VALUE = "sk-live-SECRET-VALUE-42"
SECRET_ARG = "AKIA-SECRET-ARGUMENT-7"
TOKEN = "tok-SECRET-token-value"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def opened(path: Path, **kwargs) -> AuditLog:
    audit = AuditLog(path, **kwargs)
    assert audit.open() and audit.enabled
    return audit


def test_a_call_line_has_the_fields_and_never_code_arguments_or_values(tmp_path):
    path = tmp_path / "audit.log"
    audit = opened(path)
    execute = {"v": 1, "id": 1, "token": TOKEN, "op": "execute", "code": SECRET_CODE,
               "vars": {"api_key": SECRET_VALUE}}
    call = {"v": 1, "id": 2, "token": TOKEN, "op": "call", "target": "plant.models:predict",
            "args": [SECRET_ARG], "kwargs": {"key": SECRET_VALUE}, "pool": "ml"}
    audit.entry(execute, "zmq:tcp://127.0.0.1").finish(None, 0.0012345)
    audit.entry(call, "py4j:127.0.0.1:51234").finish("user", 0.5)
    audit.close()
    text = path.read_text()
    for secret in (SECRET_CODE, "hunter2", SECRET_VALUE, SECRET_ARG, TOKEN, "api_key"):
        assert secret not in text
    first, second = lines(path)
    assert set(first) == {"ts", "op", "pool", "code_sha256", "outcome", "duration_ms", "peer"}
    assert first["code_sha256"] == hashlib.sha256(SECRET_CODE.encode()).hexdigest()
    assert (first["op"], first["pool"], first["outcome"], first["peer"]) == (
        "execute", "primary", "ok", "zmq:tcp://127.0.0.1")
    assert first["duration_ms"] == 1.234 or first["duration_ms"] == 1.235
    stamp = datetime.fromisoformat(first["ts"])
    assert first["ts"].endswith("Z") and stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 60
    assert set(second) == {"ts", "op", "pool", "target", "outcome", "duration_ms", "peer"}
    assert (second["target"], second["pool"], second["outcome"], second["duration_ms"],
            second["peer"]) == ("plant.models:predict", "ml", "user", 500.0,
                                "py4j:127.0.0.1:51234")
    assert audit.snapshot()["written"] == 2


def test_a_refusal_of_an_unauthenticated_peer_holds_its_peer_and_outcome_only(tmp_path):
    path = tmp_path / "audit.log"
    audit = opened(path)
    audit.record("unauthorized", "zmq:tcp://10.1.2.3")
    audit.record("bad_request", "py4j:127.0.0.1:4000", None)
    audit.close()
    first, second = lines(path)
    assert set(first) == {"ts", "outcome", "peer"}
    assert (first["outcome"], first["peer"]) == ("unauthorized", "zmq:tcp://10.1.2.3")
    assert (second["outcome"], second["peer"]) == ("bad_request", "py4j:127.0.0.1:4000")


def test_refusals_and_operator_actions_of_authenticated_peers(tmp_path):
    path = tmp_path / "audit.log"
    audit = opened(path)
    audit.record("forbidden", "zmq:tcp://127.0.0.1", {"op": "execute", "code": SECRET_CODE})
    audit.record("bad_request", "zmq:tcp://127.0.0.1", {"op": "rm -rf /", "code": "x"})
    audit.record(None, "zmq:tcp://127.0.0.1", {"op": "breaker", "command": "open"}, 0.0001)
    audit.record(None, "http:127.0.0.1:5000", {"op": "diag", "command": "config",
                                               "args": SECRET_ARG})
    audit.record("quarantined", "zmq:tcp://127.0.0.1", {"op": "call", "target": "m:f",
                                                        "args": [SECRET_ARG]})
    audit.close()
    assert SECRET_ARG not in path.read_text() and "hunter2" not in path.read_text()
    forbidden, bad, breaker, diag, held = lines(path)
    assert forbidden["code_sha256"] == hashlib.sha256(SECRET_CODE.encode()).hexdigest()
    assert forbidden["outcome"] == "forbidden" and "duration_ms" not in forbidden
    assert "op" not in bad and "rm -rf" not in json.dumps(bad)  # an unknown op is not echoed
    assert (breaker["op"], breaker["command"], breaker["outcome"]) == ("breaker", "open", "ok")
    assert (diag["op"], diag["command"], diag["peer"]) == ("diag", "config",
                                                          "http:127.0.0.1:5000")
    assert (held["target"], held["outcome"]) == ("m:f", "quarantined")


def test_routed_marks_are_copied_from_the_envelope(tmp_path):
    path = tmp_path / "audit.log"
    audit = opened(path)
    routed = {"route": "message-handler", "project": "Plant", "user": "alice",
              "session": "sess-1"}
    audit.entry({"op": "call", "target": "m:f", "routed": routed}, "py4j:127.0.0.1:1").finish(
        None, 0.001)
    audit.record("forbidden", "py4j:127.0.0.1:1", {"op": "execute", "code": "1",
                                                   "routed": routed})
    audit.entry({"op": "call", "target": "m:f", "routed": "not-a-map"}, "p").finish(None, 0.0)
    audit.close()
    call, refused, odd = lines(path)
    for line in (call, refused):
        assert (line["route"], line["project"], line["user"]) == (
            "message-handler", "Plant", "alice")
    assert not {"route", "project", "user"} & set(odd)


def test_whatever_a_peer_sends_a_line_stays_one_json_object_on_one_line(tmp_path):
    path = tmp_path / "audit.log"
    audit = opened(path)
    hostile = 'm:f"}\n{"outcome":"ok"}\u2028\x00'
    audit.entry({"op": "call", "target": hostile, "pool": hostile,
                 "routed": {"route": hostile, "user": "J\u00e9r\u00f4me", "project": 7}},
                'zmq:"\n').finish("user", 0.25)
    audit.record("bad_request", "zmq:tcp://127.0.0.1", {"op": "diag", "command": hostile})
    audit.close()
    call, diag = lines(path)  # exactly two lines, each valid JSON
    assert call["target"] == call["pool"] == call["route"] == hostile
    assert call["user"] == "J\u00e9r\u00f4me" and "project" not in call  # not a string
    assert call["outcome"] == "user" and call["peer"] == 'zmq:"\n'
    assert diag["command"] == hostile[:40]
    assert path.read_bytes().isascii()


def test_the_file_rotates_by_size_keeping_the_backups(tmp_path):
    path = tmp_path / "audit.log"
    audit = opened(path, max_bytes=2048, backups=2)
    for i in range(300):
        audit.entry({"op": "call", "target": f"m:f{i}"}, "zmq:tcp://127.0.0.1").finish(None, 0.0)
    audit.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in files:
        assert 0 < (tmp_path / name).stat().st_size <= 2048
        assert all(json.loads(line)["op"] == "call"
                   for line in (tmp_path / name).read_text().splitlines())
    assert lines(path)[-1]["target"] == "m:f299"  # the newest in the file, older in backups
    assert audit.snapshot()["written"] == 300


def test_a_full_queue_drops_and_counts_the_lines_and_the_loop_never_waits(tmp_path, caplog):
    path = tmp_path / "audit.log"
    registry = CollectorRegistry()
    config = load(text=f"python3: {{audit: {{file: '{path}', queue-size: 4}}}}")
    audit = build_audit(config, tmp_path / "token", registry)
    assert audit.open()
    audit.file.acquire()  # the writer blocks on the file (a hung disk) ...
    try:
        audit.record("unauthorized", "zmq:tcp://127.0.0.1")
        wait_until(lambda: not audit.pending, 10, message="the writer taking the first line")
        for i in range(20):  # ... and recording goes on, never waiting for it
            audit.entry({"op": "call", "target": f"m:f{i}"}, "zmq:tcp://127.0.0.1").finish(
                None, 0.0)
        assert audit.snapshot()["dropped"] == 16  # 4 queued
        assert registry.get_sample_value("py3sidecar_audit_dropped_total") == 16
    finally:
        audit.file.release()
    with caplog.at_level(logging.WARNING, logger="py3sidecar.audit"):
        audit.close()
    assert audit.snapshot()["written"] == 5 == len(lines(path))
    assert [line.get("target") for line in lines(path)] == [None, "m:f0", "m:f1", "m:f2",
                                                            "m:f3"]
    assert registry.get_sample_value("py3sidecar_audit_lines_total") == 5
    assert "16 line(s) dropped" in caplog.text and "python3.audit.queue-size" in caplog.text


def test_a_file_that_cannot_be_opened_is_a_clear_error_and_recording_is_a_no_op(tmp_path,
                                                                               caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the audit log's folder should be")
    audit = AuditLog(blocker / "audit.log")
    with caplog.at_level(logging.ERROR, logger="py3sidecar.audit"):
        assert audit.open() is False
    assert not audit.enabled
    assert "python3.audit.file" in caplog.text and str(blocker / "audit.log") in caplog.text
    audit.record("unauthorized", "zmq:tcp://127.0.0.1")  # no error, nothing queued
    assert not audit.pending
    snapshot = audit.snapshot()
    assert snapshot["enabled"] is False and "python3.audit.file" in snapshot["error"]
    audit.close()


def test_a_failed_write_is_counted_and_logged_never_raised(caplog):
    audit = opened(Path("/dev/full"))  # every write fails with ENOSPC, like a full disk
    with caplog.at_level(logging.ERROR, logger="py3sidecar.audit"):
        for _ in range(3):
            audit.record("unauthorized", "zmq:tcp://127.0.0.1")
        audit.close()
    snapshot = audit.snapshot()
    assert (snapshot["written"], snapshot["write_errors"]) == (0, 3)
    assert "cannot write the audit log /dev/full" in caplog.text
    assert caplog.text.count("cannot write the audit log") == 1  # once a minute, not per line


def test_disabled_and_default_places(tmp_path):
    off = AuditLog.from_config(load(text="python3: {audit: {enabled: false}}").python3.audit,
                               tmp_path)
    assert off.open() is False and not (tmp_path / "audit.log").exists()
    assert off.snapshot()["file"] is None
    default = AuditLog.from_config(load().python3.audit, tmp_path)
    assert default.path == tmp_path / "audit.log"
    assert (default.max_bytes, default.backups) == (10 << 20, 5)
    assert default.open()
    default.close()
    assert (tmp_path / "audit.log").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("text, key", [
    ("{max-size: 1MiB, backups: 0}", "backups"),
    ("{queue-size: 0}", "queue-size"),
    ("{max-size: -1}", "max-size"),
])
def test_config_check_refuses_bad_audit_settings(text, key):
    with pytest.raises(ConfigError, match=key):
        load(text=f"python3: {{audit: {text}}}")
