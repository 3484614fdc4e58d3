"""Covers: sidecar.process.exits.

How a worker's end is told: a signal by its name (a SIGKILL as killed from outside), an exit
code as such, an unknown status as unknown.
"""

from __future__ import annotations

from sidecar.process.exits import describe_exit


def test_a_kill_is_named_with_its_likely_causes():
    text, fields = describe_exit(-9)
    assert "SIGKILL" in text and "out-of-memory" in text
    assert fields == {"signal": 9, "signal_name": "SIGKILL"}


def test_an_exit_code_and_an_unknown_status():
    assert describe_exit(3) == ("exit code 3", {"exit_code": 3})
    assert describe_exit(None) == ("an unknown status", {})
    text, fields = describe_exit(-11)
    assert "SIGSEGV" in text and fields["signal"] == 11
