"""Covers: sidecar.config.serve_checks, sidecar.config.model.

What ``serve`` and ``config --check`` both refuse before serving: a short token beyond
loopback; the fronts named as they listen.
"""

from __future__ import annotations

import pytest

from sidecar.config import model, serve_checks
from sidecar.config.model import ConfigError


def test_the_fronts_are_named_as_they_listen():
    config = model.load(text="python3:\n  bridge:\n    zmq: {endpoint: 'tcp://127.0.0.1:6000'}\n")
    assert "tcp://127.0.0.1:6000" in serve_checks.front_endpoints(config.python3.bridge)


def test_a_short_token_beyond_loopback_is_refused(monkeypatch):
    monkeypatch.delenv("PY3SIDECAR_TOKEN", raising=False)
    config = model.load(text="python3:\n  bridge:\n    token: short\n"
                             "    zmq: {endpoint: 'tcp://0.0.0.0:6000'}\n")
    with pytest.raises((ConfigError, ValueError), match="python3.bridge.token"):
        serve_checks.check_before_serving(config)
