"""Covers: sidecar.observability.log_ring.

The log ring the console reads: the last lines by level and sequence, and its checked queries."""

from __future__ import annotations

import logging

import pytest

from sidecar.observability import log_ring


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
