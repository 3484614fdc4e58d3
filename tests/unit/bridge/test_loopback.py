"""Covers: bridge.loopback, sidecar.config.serve_checks.

One loopback test for every front: 127.0.0.0/8, ``::1`` with and without brackets and
``localhost`` are loopback; anything else (a host name that merely starts with ``127.``, the
wildcard addresses, an address beside loopback) is not.
"""

from __future__ import annotations

import pytest

from bridge.loopback import is_loopback, is_loopback_host
from sidecar.config import serve_checks


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost",
                                  "LocalHost", " 127.0.0.1 "])
def test_loopback_hosts(host):
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.0.0.1", "128.0.0.1",
                                  "127.example.com", "localhost.example.com", "::2", ""])
def test_other_hosts(host):
    assert not is_loopback_host(host)


@pytest.mark.parametrize("endpoint, loopback", [
    ("tcp://127.0.0.1:5557", True), ("tcp://[::1]:5557", True), ("tcp://localhost:5557", True),
    ("tcp://0.0.0.0:5557", False), ("tcp://[::]:5557", False), ("tcp://192.168.1.5:5557", False),
])
def test_endpoints(endpoint, loopback):
    assert is_loopback(endpoint) is loopback
    assert serve_checks.is_loopback(endpoint) is loopback  # config --check uses the same test
