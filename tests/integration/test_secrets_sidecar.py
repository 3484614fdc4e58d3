"""Secrets against a real sidecar (issue 8, finding 10): `diag config` shows no secret, and a
short token is refused at start when a front listens beyond loopback."""

import pytest

from sidecar.testing import SidecarProcess, free_port


def test_diag_config_redacts_every_secret(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "worker": {"env": {"DB_PASSWORD": "pw-secret"}},
                         "fallback": {"remote": {"token": "remote-secret"}}},
                        workdir=str(tmp_path)) as proc:
        shown = proc.client(timeout=5).diagnostics("config")
        text = repr(shown)
        assert "remote-secret" not in text and "pw-secret" not in text
        assert proc.token not in text
        assert shown["python3"]["fallback"]["remote"]["token"] == "<redacted>"


def test_a_short_token_is_refused_when_listening_beyond_loopback(tmp_path):
    proc = SidecarProcess({"bridge": {"token": "short", "zmq": {
        "endpoint": f"tcp://0.0.0.0:{free_port()}"}}}, workdir=str(tmp_path))
    with pytest.raises(RuntimeError) as err:
        proc.start(timeout=20)
    proc.stop()
    assert "python3.bridge.token" in str(err.value) and "at least 32" in str(err.value)
