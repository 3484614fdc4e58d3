"""Covers: sidecar.config.policies, sidecar.config.model.

python3.circuit-breaker and python3.quarantine: defaults, and values out of range named.
"""

from __future__ import annotations

import pytest

from sidecar.config import model
from sidecar.config.model import ConfigError


def test_defaults():
    python3 = model.load(text="").python3
    assert python3.circuit_breaker.failure_threshold == 5 and python3.circuit_breaker.enabled
    assert python3.quarantine.crashes == 2 and python3.quarantine.ttl == 1800.0


@pytest.mark.parametrize("text, key", [
    ("python3:\n  circuit-breaker:\n    failure-threshold: -1\n", "failure-threshold"),
    ("python3:\n  quarantine:\n    ttl: soon\n", "python3.quarantine.ttl"),
])
def test_bad_values_are_named(text, key):
    with pytest.raises(ConfigError, match=key):
        model.load(text=text)
