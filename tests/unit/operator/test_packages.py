"""The operator console's pure parts: the log ring, sessions, pip's refusals, the pool cards'
member/spare counts, and the packages CLI's option split."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pytest

from sidecar.cli.ops import split_own_options
from sidecar.http.actions import SESSION_TTL, Sessions
from sidecar.observability import log_ring
from sidecar.observability.pool_cards import member_counts
from sidecar.operator.operations import ActionError
from sidecar.operator.packages import check_arguments, pool_interpreter


def test_the_ring_keeps_the_last_lines_by_level_and_sequence() -> None:
    ring = log_ring.LogRing(size=3)
    logger = logging.getLogger("test.ring")
    logger.addHandler(ring)
    logger.setLevel(logging.DEBUG)
    try:
        for i in range(5):
            logger.info("line %d", i)
        logger.warning("careful")
    finally:
        logger.removeHandler(ring)
    got = ring.lines(10, "DEBUG")
    assert [entry["line"].split(": ", 1)[1] for entry in got["lines"]] == [
        "line 3", "line 4", "careful"]
    assert [e["level"] for e in ring.lines(10, "WARNING")["lines"]] == ["WARNING"]
    assert ring.lines(1, "DEBUG")["lines"][0]["line"].endswith("careful")
    assert ring.lines(10, "DEBUG", after=got["last"])["lines"] == []  # following: nothing new


@pytest.mark.parametrize("query, message", [
    ({"lines": "0"}, "'lines'"), ({"lines": "x"}, "'lines'"),
    ({"level": "LOUD"}, "'level'"), ({"after": "-1"}, "'after'")])
def test_log_queries_are_checked(query, message) -> None:
    with pytest.raises(ValueError, match=message):
        log_ring.parse_query(query)


def test_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    sessions = Sessions(clock=lambda: now[0])
    sid, csrf = sessions.create()
    assert sessions.csrf_of(sid) == csrf and sessions.csrf_of("forged") is None
    now[0] += SESSION_TTL + 1
    assert sessions.csrf_of(sid) is None
    ids = [sessions.create()[0] for _ in range(70)]
    assert len(sessions.by_id) == 64 and sessions.csrf_of(ids[-1]) is not None


def test_the_sidecars_own_environment_and_a_plain_interpreter_are_refused(tmp_path) -> None:
    with pytest.raises(ActionError, match="sidecar's own environment.*python3.worker.virtualenv"):
        pool_interpreter("primary", [sys.executable])
    plain = tmp_path / "bin" / "python"
    plain.parent.mkdir()
    plain.write_text("")
    with pytest.raises(ActionError, match="not a virtualenv.*python3.pools.ml.worker.virtualenv"):
        pool_interpreter("ml", [str(plain)])
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert pool_interpreter("ml", [str(plain), "-X", "utf8"]) == [str(plain), "-X", "utf8"]
    assert Path(sys.prefix, "pyvenv.cfg").exists()  # the refusal above is the venv check's


@pytest.mark.parametrize("action, args, message", [
    ("freeze", [], "unknown packages action"), ("install", "x", "list of strings"),
    ("install", ["--no-index"], "at least one package"),
    ("download", ["numpy"], "-d DIR")])
def test_pip_arguments_are_checked(action, args, message) -> None:
    with pytest.raises(ActionError, match=message):
        check_arguments(action, args)


def test_download_takes_a_destination() -> None:
    assert check_arguments("download", ["-d", "/w", "numpy"]) == ["-d", "/w", "numpy"]
    assert check_arguments("download", ["--dest=/w", "numpy"])


def test_members_and_spares_are_counted_apart() -> None:
    def worker(role, state="idle", status="HEALTHY"):
        return {"role": role, "state": state, "status": status}
    counts = member_counts([worker("member"), worker("member"), worker("spare"),
                            worker("member", "stopping")])
    assert counts == {"members": 2, "healthy": 2, "spares": 1, "healthy_spares": 1}


def test_the_cli_takes_its_options_out_of_pips() -> None:
    args = argparse.Namespace(pip_args=["--pool", "ml", "--no-index", "--find-links", "/w",
                                        "--timeout=30", "x", "--json"],
                              pool=None, url=None, token=None, timeout=600.0, json=False)
    split_own_options(args)
    assert args.pool == "ml" and args.timeout == 30.0 and args.json
    assert args.pip_args == ["--no-index", "--find-links", "/w", "x"]


def test_beyond_loopback_the_page_and_the_login_are_open_and_the_data_is_not() -> None:
    from sidecar.http.handler import HttpFront

    front = HttpFront(service=None, host="0.0.0.0", port=0)  # never started: no socket
    for path in ("/dashboard", "/dashboard/console.js", "/api/session", "/livez"):
        assert not front.needs_token(path), path
    for path in ("/api/dashboard", "/api/logs", "/health", "/metrics",
                 "/api/pools/primary/packages"):
        assert front.needs_token(path), path
