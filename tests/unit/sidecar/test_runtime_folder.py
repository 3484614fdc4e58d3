"""Covers: sidecar.runtime_folder.

Where the token comes from, as the sidecar reports it: the file, the environment or the key.
"""

from __future__ import annotations

from sidecar.runtime_folder import token_source


def test_the_source_is_named(monkeypatch):
    monkeypatch.delenv("PY3SIDECAR_TOKEN", raising=False)
    assert token_source("", "/run/t") == "the token file /run/t"
    assert token_source("x", None) == "python3.bridge.token"
    monkeypatch.setenv("PY3SIDECAR_TOKEN", "z" * 40)
    assert token_source("", None) == "$PY3SIDECAR_TOKEN"
