"""Covers: sidecar.http.handler.

Which paths need the token beyond loopback: the page and the login are open, the data is not."""

from __future__ import annotations


def test_beyond_loopback_the_page_and_the_login_are_open_and_the_data_is_not() -> None:
    from sidecar.http.handler import HttpFront

    front = HttpFront(service=None, host="0.0.0.0", port=0)  # never started: no socket
    for path in ("/dashboard", "/dashboard/console.js", "/api/session", "/livez"):
        assert not front.needs_token(path), path
    for path in ("/api/dashboard", "/api/logs", "/health", "/metrics",
                 "/api/pools/primary/packages"):
        assert front.needs_token(path), path
