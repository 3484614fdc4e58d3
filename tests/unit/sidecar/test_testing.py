"""Covers: sidecar.testing.

The tests' wait: it returns the condition's value once true, and fails with its message at
its deadline (every wait has one).
"""

from __future__ import annotations

import time

import pytest

from sidecar.testing import wait_until


def test_returns_the_value_once_true():
    start = time.monotonic()
    assert wait_until(lambda: time.monotonic() - start > 0.05 and "yes", timeout=5) == "yes"


def test_fails_at_its_deadline_with_its_message():
    start = time.monotonic()
    with pytest.raises(Exception, match="the thing"):
        wait_until(lambda: False, timeout=0.2, message="the thing")
    assert time.monotonic() - start < 5
