"""Covers: sidecar.config.monitoring, sidecar.config.model.

python3.http and its monitoring sections: the loopback default and a bad port refused by key.
"""

from __future__ import annotations

import pytest

from sidecar.config import model
from sidecar.config.model import ConfigError


def test_http_listens_on_loopback_by_default():
    assert model.load(text="").python3.http.host == "127.0.0.1"


def test_a_port_out_of_range_is_named():
    with pytest.raises(ConfigError, match="python3.http.port"):
        model.load(text="python3:\n  http:\n    port: 99999\n")
