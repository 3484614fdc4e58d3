"""Covers: sidecar.config.fields.

Durations and sizes as operators write them, and refusals of what is not one.
"""

from __future__ import annotations

import pytest

from sidecar.config.fields import parse_duration, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0), (3, 3.0),
    ("7", 7.0),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, size", [
    ("512", 512), ("1KB", 1000), ("1KiB", 1024), ("2MiB", 2 << 20), ("1GB", 10**9), (64, 64),
])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["soon", "-1s", "1 fortnight", "1.5KiB"])
def test_what_is_not_a_duration_or_a_size_is_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        parse_duration(bad) if "KiB" not in bad else parse_size(bad)
