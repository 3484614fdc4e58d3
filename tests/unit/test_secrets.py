"""Secrets stay secret (issue 8, finding 10): token file permissions, short tokens beyond
loopback, redaction of the config tree."""

import os

import pytest

from bridge.token import TokenError, check_token_strength, ensure_token
from sidecar.config import model as config
from sidecar.observability.redaction import REDACTED, redact_secrets


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch):
    monkeypatch.delenv("PY3SIDECAR_TOKEN", raising=False)


@pytest.mark.parametrize("mode, who", [(0o644, "its group and other users"),
                                       (0o640, "its group"), (0o604, "other users")])
def test_a_token_file_others_can_read_is_refused(tmp_path, mode, who):
    path = tmp_path / "token"
    path.write_text("x" * 43 + "\n")
    os.chmod(path, mode)
    with pytest.raises(TokenError) as err:
        ensure_token("", str(path))
    assert str(path) in str(err.value) and who in str(err.value)
    assert f"chmod 600 {path}" in str(err.value)


def test_a_private_token_file_is_used_and_a_new_one_is_private(tmp_path):
    path = tmp_path / "token"
    path.write_text("y" * 43 + "\n")
    os.chmod(path, 0o600)
    assert ensure_token("", str(path)) == ("y" * 43, path)
    fresh = tmp_path / "sub" / "token"
    token, _ = ensure_token("", str(fresh))
    assert len(token) >= 32 and os.stat(fresh).st_mode & 0o777 == 0o600


def test_a_short_token_is_refused_beyond_loopback_only():
    check_token_strength("short", "python3.bridge.token", [])  # loopback only: allowed
    with pytest.raises(TokenError) as err:
        check_token_strength("short", "python3.bridge.token", ["tcp://0.0.0.0:5557"])
    assert "python3.bridge.token" in str(err.value) and "0.0.0.0" in str(err.value)
    check_token_strength("z" * 32, "python3.bridge.token", ["tcp://0.0.0.0:5557"])


def test_every_secret_in_the_config_tree_is_redacted():
    tree = config.load(text=(
        "python3:\n  bridge:\n    token: bridge-secret\n"
        "  worker:\n    env: {DB_PASSWORD: pw-secret, API_KEY: key-secret, PLAIN: shown}\n"
        "    env-not-secret: [PLAIN]\n"
        "  fallback:\n    remote:\n      token: remote-secret\n      token-file: /etc/t\n"
    )).model_dump(by_alias=True)
    tree["python3"]["extra"] = [{"nested": {"client_secret": "deep-secret"}}]
    shown = redact_secrets(tree)
    text = repr(shown)
    for secret in ("bridge-secret", "pw-secret", "key-secret", "remote-secret", "deep-secret"):
        assert secret not in text
    assert shown["python3"]["bridge"]["token"] == REDACTED
    assert shown["python3"]["fallback"]["remote"]["token-file"] == "/etc/t"  # a path, shown
    assert shown["python3"]["worker"]["env"]["PLAIN"] == "shown"
    assert tree["python3"]["bridge"]["token"] == "bridge-secret"  # the original is untouched
