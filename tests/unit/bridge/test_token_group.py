"""Covers: bridge.token.

python3.bridge.token-group with a real file moved between two groups (root may chown to any
group): which mode and group are accepted, what an existing file is turned into, that the
owner is kept, and the exact advice of a refusal."""

from __future__ import annotations

import grp
import os
import stat

import pytest

from bridge import token as tk
from bridge.token import TokenError, check_private, ensure_token, token_group_id

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="moving a file between groups "
                                "needs root (or membership of two groups)")


def other_group() -> grp.struct_group:
    """A group the test file is not in at first (files are made in the process's group)."""
    return next(g for g in grp.getgrall() if g.gr_gid != os.getegid())


def token_file(tmp_path, mode: int, gid: int | None = None):
    path = tmp_path / "token"
    path.write_text("t" * 43 + "\n")
    os.chmod(path, mode)
    if gid is not None:
        os.chown(path, -1, gid)
    return path


def mode_gid(path) -> tuple[int, int]:
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_gid


def test_group_read_in_the_token_group_is_accepted(tmp_path):
    group = other_group()
    check_private(token_file(tmp_path, 0o640, group.gr_gid), group.gr_name)
    check_private(token_file(tmp_path, 0o600, group.gr_gid), group.gr_name)


def test_group_read_in_another_group_is_refused_word_for_word(tmp_path):
    group = other_group()
    path = token_file(tmp_path, 0o640)  # the process's group, not the token group
    with pytest.raises(TokenError) as err:
        check_private(path, group.gr_name)
    assert str(err.value) == (
        f"the token file {path} is open to its group (mode 0640): whoever reads it can run "
        f"Python as this user. Make it private with `chmod 600 {path}` (or delete it to have a "
        "new token made), then start again")


@pytest.mark.parametrize(("mode", "shown", "who"), [
    (0o660, "0620", "its group"),
    (0o644, "0604", "other users"),
    (0o670, "0630", "its group"),
    (0o646, "0606", "other users"),
    (0o664, "0624", "its group and other users"),
])
def test_only_group_read_is_forgiven_in_the_token_group(tmp_path, mode, shown, who):
    group = other_group()
    path = token_file(tmp_path, mode, group.gr_gid)
    with pytest.raises(TokenError) as err:
        check_private(path, group.gr_name)
    assert f"is open to {who} (mode {shown}):" in str(err.value)


def test_without_a_group_group_read_is_refused_whatever_the_files_group(tmp_path):
    path = token_file(tmp_path, 0o640, other_group().gr_gid)
    with pytest.raises(TokenError, match=r"open to its group \(mode 0640\)"):
        check_private(path)


def test_an_existing_token_is_moved_to_the_group_keeping_its_owner(tmp_path):
    group = other_group()
    path = token_file(tmp_path, 0o600)
    os.chown(path, 4321, -1)
    token, kept = ensure_token("", str(path), group.gr_name)
    assert (token, kept) == ("t" * 43, path)
    assert mode_gid(path) == (0o640, group.gr_gid)
    assert os.stat(path).st_uid == 4321


def test_an_existing_token_in_the_group_but_private_is_opened_to_it(tmp_path):
    group = other_group()
    path = token_file(tmp_path, 0o600, group.gr_gid)
    ensure_token("", str(path), group.gr_name)
    assert mode_gid(path) == (0o640, group.gr_gid)


def test_an_existing_token_shared_as_asked_is_left_alone(tmp_path, monkeypatch):
    group = other_group()
    path = token_file(tmp_path, 0o640, group.gr_gid)
    shared = []
    monkeypatch.setattr(tk, "share_with_group", lambda *args: shared.append(args))
    assert ensure_token("", str(path), group.gr_name) == ("t" * 43, path)
    assert shared == []


def test_an_existing_token_without_a_group_stays_private(tmp_path):
    path = token_file(tmp_path, 0o600)
    before = mode_gid(path)
    ensure_token("", str(path), "")
    assert mode_gid(path) == before


def test_a_new_token_is_made_in_the_group_keeping_its_owner(tmp_path):
    group = other_group()
    token, path = ensure_token("", str(tmp_path / "new" / "token"), group.gr_name)
    assert path.read_text() == token + "\n"
    assert mode_gid(path) == (0o640, group.gr_gid)
    assert os.stat(path).st_uid == os.geteuid()
    token2, path2 = ensure_token("", str(tmp_path / "new" / "token2"), "")
    assert mode_gid(path2) == (0o600, os.getegid())


def test_the_group_is_looked_up_by_name_with_advice():
    group = other_group()
    assert token_group_id(group.gr_name) == group.gr_gid
    with pytest.raises(TokenError) as err:
        token_group_id("no-such-group-here")
    assert str(err.value) == (
        "python3.bridge.token-group: there is no group 'no-such-group-here' on this machine; "
        "create it (groupadd --system, or `py3sidecar install`) or leave the key empty")
    assert err.value.__cause__ is None and err.value.__suppress_context__
