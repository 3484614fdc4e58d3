"""Covers: bridge.zmq_auth.

The sidecar's CURVE key pair: made once, owner-only, the same on the next start; a secret
file others may read is refused with the command that fixes it.
"""

from __future__ import annotations

import os
import stat

import pytest

from bridge import zmq_auth


def test_made_once_private_and_kept(tmp_path):
    public, secret = zmq_auth.ensure_server_keys(tmp_path)
    assert len(public) == 40 and len(secret) == 40 and public != secret
    secret_file = tmp_path / f"{zmq_auth.SERVER_KEY_NAME}.key_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) & 0o077 == 0
    assert zmq_auth.ensure_server_keys(tmp_path) == (public, secret)


def test_a_readable_secret_is_refused(tmp_path):
    zmq_auth.ensure_server_keys(tmp_path)
    secret_file = tmp_path / f"{zmq_auth.SERVER_KEY_NAME}.key_secret"
    os.chmod(secret_file, 0o644)
    with pytest.raises(zmq_auth.CurveKeyError, match="chmod 600"):
        zmq_auth.ensure_server_keys(tmp_path)
