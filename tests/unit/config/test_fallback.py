"""Covers: sidecar.config.fallback, sidecar.config.model.

python3.fallback: the chain's defaults, and unknown keys or strategies refused by name.
"""

from __future__ import annotations

import pytest

from sidecar.config import model
from sidecar.config.model import ConfigError


def test_defaults_are_the_primary_alone():
    fallback = model.load(text="").python3.fallback
    assert fallback.strategies == ["primary"]
    assert set(fallback.fall_through) <= {"circuit_open", "overloaded", "unavailable", "crashed",
                                          "internal"}


def test_an_unknown_key_and_an_unknown_strategy_are_named():
    with pytest.raises(ConfigError, match="python3.fallback.chain"):
        model.load(text="python3:\n  fallback:\n    chain: [nope]\n")
    with pytest.raises(ConfigError, match="nope"):
        model.load(text="python3:\n  fallback:\n    strategies: [primary, nope]\n")
