"""python3.bridge.token-group: the token file 0640 in that group, accepted as such, and a
group-readable token in any other group still refused."""
from __future__ import annotations

import grp
import os
import stat

import pytest

from bridge.token import TokenError, check_private, ensure_token, token_group_id


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
