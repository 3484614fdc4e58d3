"""Covers: sidecar.unix_front, bridge.token, sidecar.platform.procfs.

``python3.bridge.token-group`` opens the Unix-socket front to the gateway's account, as the
token file is: with real accounts (``useradd``/``groupadd``, names per run, deleted after) a
process of another user is served when the group is its primary group or one of its
supplementary groups (read from ``/proc/<pid>/status``); the runtime folder becomes 0750 in the
group and the socket 0660 in it; an account outside the group cannot open the socket, and one
that reaches the file anyway (the folder and socket opened to everyone by hand) is refused by
``SO_PEERCRED`` before any frame, counted. The clients are the system Python with the standard
library only, started as those accounts (``subprocess``'s user/group/extra_groups)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import urllib.request

import msgpack
import pytest

from sidecar.testing import SidecarProcess

RUN = os.getpid()
GROUP, MEMBER, OUTSIDER = f"py3sc-tg-{RUN}", f"py3sc-gw-{RUN}", f"py3sc-out-{RUN}"
PYTHON = "/usr/bin/python3"

# One request on the socket (argv: path, the frame in hex): prints the reply frame in hex, or
# the OSError that ended it, or EOF when the sidecar closed the connection unanswered.
CLIENT = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
    s.sendall(bytes.fromhex(sys.argv[2]))
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk = s.recv(65536)
        if not chunk:
            print("EOF")
            sys.exit(0)
        data += chunk
    print(data[4:].hex())
except OSError as exc:
    print("OSError", exc.errno)
'''


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def group_and_accounts(group: str, names: tuple[str, ...]):
    """Creates the system group ``group`` and accounts ``names`` (none of them in it); yields
    ({name: passwd}, the group); deletes them all after. Skips without root or the tools."""
    if os.getuid() != 0:
        pytest.skip("creating accounts and groups needs root")
    if not all(shutil.which(t) for t in ("useradd", "userdel", "groupadd", "groupdel")):
        pytest.skip("useradd/groupadd are not available to create the test accounts")
    run(["groupadd", "--system", group])
    made = []
    try:
        for name in names:
            run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 name])
            made.append(name)
        yield {n: pwd.getpwnam(n) for n in made}, grp.getgrnam(group)
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, timeout=60)
        subprocess.run(["groupdel", group], capture_output=True, timeout=60)


def reachable_workdir() -> str:
    """A folder other accounts may traverse (/tmp/pytest-of-root is 0700), for a sidecar's
    workdir whose runtime folder the token group must reach."""
    base = tempfile.mkdtemp(prefix="py3sc-unix-group-")
    os.chmod(base, 0o755)
    work = os.path.join(base, "work")
    os.mkdir(work, 0o755)
    os.chmod(work, 0o755)
    return work


@pytest.fixture(scope="module")
def accounts():
    yield from group_and_accounts(GROUP, (MEMBER, OUTSIDER))


@pytest.fixture(scope="module")
def sidecar(accounts):
    work = reachable_workdir()
    proc = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                    "spares": 0},
                           "scaling": {"enabled": False}, "bridge": {"token-group": GROUP}},
                          workdir=work)
    proc.start()
    yield proc
    proc.stop()
    shutil.rmtree(os.path.dirname(work), ignore_errors=True)


def ask(sidecar: SidecarProcess, user: pwd.struct_passwd, group: int,
        extra: list[int]) -> str:
    payload = msgpack.packb({"v": 1, "id": 7, "token": sidecar.token, "op": "call",
                             "target": "operator:add", "args": [2, 3]})
    frame = len(payload).to_bytes(4, "big") + payload
    done = subprocess.run([PYTHON, "-I", "-c", CLIENT, sidecar.connection["unix"]["path"],
                           frame.hex()], user=user.pw_uid, group=group, extra_groups=extra,
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def refused_peers(sidecar: SidecarProcess) -> float:
    with urllib.request.urlopen(sidecar.http_url + "/metrics", timeout=10) as response:
        body = response.read().decode()
    for line in body.splitlines():
        if line.startswith('py3sidecar_requests_refused_total{kind="unauthorized"}'):
            return float(line.split()[-1])
    return 0.0


def test_the_folder_and_the_socket_are_open_to_the_group_only(sidecar, accounts):
    _, group = accounts
    path = sidecar.connection["unix"]["path"]
    sock, folder = os.stat(path), os.stat(os.path.dirname(path))
    assert stat.S_IMODE(sock.st_mode) == 0o660 and sock.st_gid == group.gr_gid
    assert stat.S_IMODE(folder.st_mode) == 0o750 and folder.st_gid == group.gr_gid
    token = os.stat(sidecar.runtime_dir / "token")
    assert stat.S_IMODE(token.st_mode) == 0o640 and token.st_gid == group.gr_gid


@pytest.mark.parametrize("how", ["supplementary", "primary"])
def test_a_member_of_the_token_group_is_served(sidecar, accounts, how):
    users, group = accounts
    member = users[MEMBER]
    primary, extra = ((member.pw_gid, [group.gr_gid]) if how == "supplementary"
                      else (group.gr_gid, []))
    reply = msgpack.unpackb(bytes.fromhex(ask(sidecar, member, primary, extra)))
    assert reply["ok"] and reply["value"] == 5 and reply["id"] == 7, reply


def test_an_account_outside_the_group_cannot_open_the_socket(sidecar, accounts):
    users, _ = accounts
    outsider = users[OUTSIDER]
    assert ask(sidecar, outsider, outsider.pw_gid, []) == "OSError 13"  # EACCES


def test_an_outsider_who_reaches_the_file_is_refused_by_peercred_and_counted(sidecar,
                                                                             accounts):
    users, _ = accounts
    outsider = users[OUTSIDER]
    path = sidecar.connection["unix"]["path"]
    folder = os.path.dirname(path)
    before = refused_peers(sidecar)
    os.chmod(folder, 0o755)  # as if opened to everyone by hand
    os.chmod(path, 0o666)
    try:
        answer = ask(sidecar, outsider, outsider.pw_gid, [])
        assert answer in ("EOF", "OSError 32", "OSError 104"), answer  # closed, unanswered
    finally:
        os.chmod(path, 0o660)
        os.chmod(folder, 0o750)
    assert refused_peers(sidecar) == before + 1
