"""Covers: bridge.py4j_wire.

py4j's line protocol escapes: what escape writes, unescape reads back, and an error return is
one line whatever the message holds.
"""

from __future__ import annotations

import pytest

from bridge import py4j_wire


@pytest.mark.parametrize("text", ["", "plain", "two\nlines", "a\\nb literal", "cr\r\nlf", "\\"])
def test_escape_round_trips(text):
    escaped = py4j_wire.escape(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert py4j_wire.unescape(escaped) == text


def test_an_error_return_is_one_line():
    line = py4j_wire.error_return("bad\nthing")
    assert line.startswith(b"!xs") and line.endswith(b"\n") and line.count(b"\n") == 1
    assert py4j_wire.unescape(line[3:-1].decode()) == "bad\nthing"
