"""Covers: bridge.token, sidecar.config.model.

python3.bridge.token-group: the token file 0640 in that group, accepted as such, and a
group-readable token in any other group still refused."""
from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from bridge import token as tk
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


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in (tk.ENV_TOKEN, tk.ENV_RUNTIME_DIR, "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_the_runtime_folder_prefers_our_variable_then_xdg_then_home(monkeypatch, tmp_path):
    assert tk.runtime_dir() == tmp_path / "home" / ".local" / "share" / "py3sidecar" / "runtime"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert tk.runtime_dir() == Path("/run/user/1000/py3sidecar")
    monkeypatch.setenv(tk.ENV_RUNTIME_DIR, "/srv/rt")
    assert tk.runtime_dir() == Path("/srv/rt")
    assert tk.default_token_file() == Path("/srv/rt/token")
    monkeypatch.setenv(tk.ENV_RUNTIME_DIR, "")  # empty counts as unset
    assert tk.runtime_dir() == Path("/run/user/1000/py3sidecar")


def test_the_environment_names():
    assert (tk.ENV_TOKEN, tk.ENV_RUNTIME_DIR) == ("PY3SIDECAR_TOKEN", "PY3SIDECAR_RUNTIME_DIR")
    assert tk.MIN_EXPOSED_TOKEN_LENGTH == 32


def test_a_client_reads_the_environment_first_then_the_file(monkeypatch, tmp_path):
    file = tmp_path / "token"
    file.write_text("  from-file \n")
    assert tk.read_token(file) == "from-file"
    assert tk.read_token(str(file)) == "from-file"
    monkeypatch.setenv(tk.ENV_TOKEN, "from-env")
    assert tk.read_token(file) == "from-env"
    monkeypatch.setenv(tk.ENV_TOKEN, "")
    assert tk.read_token(file) == "from-file"


def test_a_client_without_a_token_gets_none(monkeypatch, tmp_path):
    assert tk.read_token(tmp_path / "missing") is None
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    assert tk.read_token(empty) is None
    monkeypatch.setenv(tk.ENV_RUNTIME_DIR, str(tmp_path / "rt"))
    assert tk.read_token() is None  # the default file, missing
    (tmp_path / "rt").mkdir()
    (tmp_path / "rt" / "token").write_text("default-file\n")
    assert tk.read_token() == "default-file" and tk.read_token("") == "default-file"


def test_the_sidecar_takes_the_environment_then_the_config(monkeypatch, tmp_path):
    file = tmp_path / "token"
    assert tk.ensure_token("configured", str(file)) == ("configured", None)
    assert not file.exists()
    monkeypatch.setenv(tk.ENV_TOKEN, "env-token")
    assert tk.ensure_token("configured", str(file)) == ("env-token", None)


def test_a_new_token_is_made_owner_only_in_an_owner_only_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(tk.ENV_RUNTIME_DIR, str(tmp_path / "rt" / "deeper"))
    token, path = tk.ensure_token()
    assert path == tmp_path / "rt" / "deeper" / "token"
    assert len(token) == 43 and path.read_text() == token + "\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    again, same = tk.ensure_token()  # kept: the file is read back, not replaced
    assert (again, same) == (token, path)
    other, _ = tk.ensure_token("", str(tmp_path / "second"))
    assert other != token


def test_an_empty_token_file_is_replaced_by_a_new_token(tmp_path):
    path = tmp_path / "token"
    path.write_text("\n")
    os.chmod(path, 0o644)  # an empty file holds no secret: replaced, and made private
    token, kept = tk.ensure_token("", str(path))
    assert kept == path and path.read_text() == token + "\n" and len(token) == 43
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize(("mode", "who"), [
    (0o644, "its group and other users"), (0o640, "its group"), (0o604, "other users"),
    (0o620, "its group"), (0o602, "other users"), (0o610, "its group"),
    (0o601, "other users"), (0o660, "its group")])
def test_an_open_token_file_is_refused_with_the_fix(tmp_path, mode, who):
    path = tmp_path / "token"
    path.write_text("t" * 43)
    os.chmod(path, mode)
    with pytest.raises(TokenError) as info:
        tk.check_private(path)
    assert str(info.value) == (
        f"the token file {path} is open to {who} (mode {mode:04o}): whoever reads it can run "
        f"Python as this user. Make it private with `chmod 600 {path}` (or delete it to have "
        "a new token made), then start again")


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_private_token_file_passes(tmp_path, mode):
    path = tmp_path / "token"
    path.write_text("t")
    os.chmod(path, mode)
    tk.check_private(path)


def test_a_short_token_beyond_loopback_is_refused_with_the_fix():
    tk.check_token_strength("s" * 31, "the config", [])
    tk.check_token_strength("s" * 32, "the config", ["tcp://0.0.0.0:5557"])
    with pytest.raises(TokenError) as info:
        tk.check_token_strength("s" * 31, "the config", ["tcp://0.0.0.0:5557", "py4j 0.0.0.0"])
    assert str(info.value) == (
        "python3.bridge.token: the token (from the config) has 31 characters, but the sidecar "
        "listens beyond loopback on tcp://0.0.0.0:5557, py4j 0.0.0.0: such a token needs at "
        "least 32. Leave python3.bridge.token empty to have one generated, or set one made "
        "with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    assert issubclass(TokenError, ValueError)


def test_a_new_token_file_is_private_from_its_creation(tmp_path, monkeypatch):
    """Created owner-only, not made private afterwards: never a moment of a readable token."""
    monkeypatch.setattr(tk.os, "chmod", lambda path, mode: None)  # only the creation counts
    old = os.umask(0)
    try:
        token, path = tk.ensure_token("", str(tmp_path / "token"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# ---------------------------------------------------------------- exact outputs (mutation)
NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="moving a file between groups "
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


@NEEDS_ROOT
def test_group_read_in_the_token_group_is_accepted(tmp_path):
    group = other_group()
    check_private(token_file(tmp_path, 0o640, group.gr_gid), group.gr_name)
    check_private(token_file(tmp_path, 0o600, group.gr_gid), group.gr_name)


@NEEDS_ROOT
def test_group_read_in_another_group_is_refused_word_for_word(tmp_path):
    group = other_group()
    path = token_file(tmp_path, 0o640)  # the process's group, not the token group
    with pytest.raises(TokenError) as err:
        check_private(path, group.gr_name)
    assert str(err.value) == (
        f"the token file {path} is open to its group (mode 0640): whoever reads it can run "
        f"Python as this user. Make it private with `chmod 600 {path}` (or delete it to have a "
        "new token made), then start again")


@NEEDS_ROOT
@pytest.mark.parametrize(("mode", "shown", "who"), [
    (0o660, "0620", "its group"),
    (0o644, "0604", "other users"),
    (0o670, "0630", "its group"),
    (0o646, "0606", "other users"),
    (0o664, "0624", "its group and other users"),
    (0o641, "0601", "other users"),
])
def test_only_group_read_is_forgiven_in_the_token_group(tmp_path, mode, shown, who):
    group = other_group()
    path = token_file(tmp_path, mode, group.gr_gid)
    with pytest.raises(TokenError) as err:
        check_private(path, group.gr_name)
    assert f"is open to {who} (mode {shown}):" in str(err.value)


@NEEDS_ROOT
def test_without_a_group_group_read_is_refused_whatever_the_files_group(tmp_path):
    path = token_file(tmp_path, 0o640, other_group().gr_gid)
    with pytest.raises(TokenError, match=r"open to its group \(mode 0640\)"):
        check_private(path)


@NEEDS_ROOT
def test_an_existing_token_is_moved_to_the_group_keeping_its_owner(tmp_path):
    group = other_group()
    path = token_file(tmp_path, 0o600)
    os.chown(path, 4321, -1)
    token, kept = ensure_token("", str(path), group.gr_name)
    assert (token, kept) == ("t" * 43, path)
    assert mode_gid(path) == (0o640, group.gr_gid)
    assert os.stat(path).st_uid == 4321


@NEEDS_ROOT
def test_an_existing_token_in_the_group_but_private_is_opened_to_it(tmp_path):
    group = other_group()
    path = token_file(tmp_path, 0o600, group.gr_gid)
    ensure_token("", str(path), group.gr_name)
    assert mode_gid(path) == (0o640, group.gr_gid)


@NEEDS_ROOT
def test_an_existing_token_shared_as_asked_is_left_alone(tmp_path, monkeypatch):
    group = other_group()
    path = token_file(tmp_path, 0o640, group.gr_gid)
    shared = []
    monkeypatch.setattr(tk, "share_with_group", lambda *args: shared.append(args))
    assert ensure_token("", str(path), group.gr_name) == ("t" * 43, path)
    assert shared == []


@NEEDS_ROOT
def test_an_existing_token_without_a_group_stays_private(tmp_path):
    path = token_file(tmp_path, 0o600)
    before = mode_gid(path)
    ensure_token("", str(path), "")
    assert mode_gid(path) == before


@NEEDS_ROOT
def test_a_new_token_is_made_in_the_group_keeping_its_owner(tmp_path):
    group = other_group()
    token, path = ensure_token("", str(tmp_path / "new" / "token"), group.gr_name)
    assert path.read_text() == token + "\n"
    assert mode_gid(path) == (0o640, group.gr_gid)
    assert os.stat(path).st_uid == os.geteuid()
    token2, path2 = ensure_token("", str(tmp_path / "new" / "token2"), "")
    assert mode_gid(path2) == (0o600, os.getegid())


@NEEDS_ROOT
def test_the_group_is_looked_up_by_name_with_advice():
    group = other_group()
    assert token_group_id(group.gr_name) == group.gr_gid
    with pytest.raises(TokenError) as err:
        token_group_id("no-such-group-here")
    assert str(err.value) == (
        "python3.bridge.token-group: there is no group 'no-such-group-here' on this machine; "
        "create it (groupadd --system, or `py3sidecar install`) or leave the key empty")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_new_token_never_starts_with_a_dash(monkeypatch, tmp_path):
    # A token "-..." given as `--token -...` is read by argparse as a missing value.
    made = iter(["-starts-with-a-dash-" + "x" * 23, "A" * 43])
    monkeypatch.setattr(tk.secrets, "token_urlsafe", lambda n: next(made))
    token, path = ensure_token("", str(tmp_path / "token"))
    assert token == "A" * 43
    assert path.read_text().strip() == "A" * 43


def test_the_cli_takes_a_new_token_as_the_value_of_token():
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--token")
    for _ in range(500):
        token = tk.new_token()
        assert parser.parse_args(["--token", token]).token == token


def test_the_token_group_may_traverse_the_runtime_folder_and_no_one_else_more(tmp_path):
    group = a_group()
    folder = tmp_path / "runtime"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o701)  # what others had stays as it was, nothing is added for them
    ensure_token("", str(folder / "token"), group.gr_name)
    st = folder.stat()
    assert stat.S_IMODE(st.st_mode) == 0o751 and st.st_gid == group.gr_gid
    os.chmod(folder, 0o770)  # a group that may write: only read and traverse are kept
    ensure_token("", str(folder / "token"), group.gr_name)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o770  # in the group and traversable: kept
    os.chmod(folder, 0o700)
    ensure_token("", str(folder / "token"), group.gr_name)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750


def test_a_runtime_folder_of_another_user_is_left_alone(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    folder = tmp_path / "runtime"
    folder.mkdir(mode=0o700)
    os.chown(folder, os.geteuid() + 4242, -1)
    tk.open_folder_to_group(folder, a_group().gr_gid + 1)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
