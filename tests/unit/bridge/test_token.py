"""Covers: bridge.token, sidecar.config.model.

python3.bridge.token-group: the token file 0640 in that group, accepted as such, and a
group-readable token in any other group still refused."""
from __future__ import annotations

import grp
import os
import stat

import pytest

from bridge.token import (
    TokenError,
    check_private,
    check_token_strength,
    ensure_token,
    token_group_id,
)


def a_group() -> grp.struct_group:
    return grp.getgrgid(os.getgid())


def test_a_new_token_is_0640_in_the_group(tmp_path):
    group = a_group()
    token, path = ensure_token("", str(tmp_path / "token"), group.gr_name)
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == group.gr_gid
    check_private(path, group.gr_name)  # accepted as it is


def test_group_read_is_refused_without_the_group_and_write_always(tmp_path):
    group = a_group()
    path = tmp_path / "token"
    path.write_text("x" * 43)
    os.chmod(path, 0o640)
    with pytest.raises(TokenError, match="its group"):
        check_private(path)  # no token-group: owner only
    os.chmod(path, 0o660)
    with pytest.raises(TokenError, match="its group"):
        check_private(path, group.gr_name)  # the group may read, never write


def test_an_existing_private_token_is_shared_with_the_group(tmp_path):
    path = tmp_path / "token"
    path.write_text("y" * 43)
    os.chmod(path, 0o600)
    ensure_token("", str(path), a_group().gr_name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_missing_group_is_named():
    with pytest.raises(TokenError, match="python3.bridge.token-group"):
        token_group_id("no-such-group-here")
    assert token_group_id("") is None


def test_config_check_refuses_a_missing_token_group(tmp_path):
    from sidecar.config.model import ConfigError, load

    path = tmp_path / "c.yml"
    path.write_text("python3:\n  bridge:\n    token-group: no-such-group-here\n")
    with pytest.raises(ConfigError, match="token-group"):
        load(path)


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
