"""Covers: sidecar.process.confinement, sidecar.process.spawn.

``python3.worker.user``: workers run as another account, so user code can neither kill the
sidecar (``os.kill(os.getppid(), 9)``) nor read its token file. Real sidecar, real accounts: the
tests create system users of their own (``useradd --system``, a name per run, so parallel runs
never share or delete each other's) when they are root, as they are here and in CI, and delete
them afterwards; without root they skip."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import psutil
import pytest

from bridge.client import CallTimeout, PythonError
from sidecar.testing import PROJECT_ROOT, SidecarProcess, wait_until

ACCOUNT = f"py3sc-worker-{os.getpid()}"    # the workers' account (python3.worker.user)
SERVICE_ACCOUNT = f"py3sc-svc-{os.getpid()}"  # the sidecar's own, as the shipped unit runs it


def system_account(name: str):
    """Creates the system account ``name``; yields it; deletes it (and its group) after."""
    if os.getuid() != 0:
        pytest.skip("starting workers as another account needs root (or CAP_SETUID/CAP_SETGID)")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not available to create the test account")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True, timeout=60)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def account():
    yield from system_account(ACCOUNT)


@pytest.fixture(scope="module")
def service_account():
    yield from system_account(SERVICE_ACCOUNT)


def worker_python(account: pwd.struct_passwd) -> tuple[str, dict[str, str]]:
    """An interpreter the account can run with this project's packages: the venv's own, or
    (when it lives where the account cannot go, as under /root here) the system's Python of
    the same version with the venv's site-packages (docs/architecture.md says what is needed)."""
    site = sysconfig.get_paths()["purelib"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python, env in ((sys.executable, {}), (f"/usr/bin/{version}", {"PYTHONPATH": site})):
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            probe = subprocess.run([python, "-c", "import sidecar.worker.main, msgpack"],
                                   user=account.pw_uid, group=account.pw_gid, extra_groups=[],
                                   cwd="/", env={"PYTHONPATH": path}, capture_output=True,
                                   timeout=60)
        except OSError:  # missing, or the account may not execute it
            continue
        if probe.returncode == 0:
            return python, env
    pytest.skip(f"no Python {version} that {ACCOUNT} may run with this project's packages")


@pytest.fixture(scope="module")
def sidecar(account, tmp_path_factory):
    python, env = worker_python(account)
    proc = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                    "spares": 0},
                           "worker": {"user": ACCOUNT, "kill-grace": "200ms",
                                      "python": python, "env": env},
                           "scaling": {"enabled": False}, "health": {"enabled": False},
                           "circuit-breaker": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp("worker-user")))
    proc.start()
    yield proc
    proc.stop()


def test_workers_run_as_the_account_without_the_sidecars_groups(sidecar, account):
    client = sidecar.client()
    assert client.execute("import os\n[os.getuid(), os.geteuid(), os.getgid(), os.getgroups()]"
                          ).value == [account.pw_uid, account.pw_uid, account.pw_gid, []]
    # Every capability gone (root's are cleared by the uid change; ambient ones by the worker).
    caps = client.execute("[l.split()[1] for l in open('/proc/self/status') "
                          "if l.startswith(('CapEff', 'CapPrm', 'CapAmb'))]").value
    assert [int(c, 16) for c in caps] == [0, 0, 0]
    # The sidecar package and its venv import fine as that account.
    assert client.call("statistics:mean", [1, 2, 3]) == 2


def test_user_code_cannot_kill_the_sidecar(sidecar):
    client = sidecar.client()
    worker = client.execute("import os\nos.getpid()").value
    with pytest.raises(PythonError) as info:
        client.execute("import os\nos.kill(os.getppid(), 9)")
    assert info.value.kind == "user" and info.value.remote_type == "PermissionError"
    assert sidecar.proc.poll() is None
    assert client.ping()["pid"] == sidecar.proc.pid
    # the same worker serves on: a `user` error costs nothing
    assert client.execute("import os\nos.getpid()").value == worker
    assert client.execute("1 + 1").value == 2


def test_user_code_cannot_read_the_token_file(sidecar):
    token_file = sidecar.runtime_dir / "token"
    assert token_file.read_text().strip() == sidecar.token  # it is there, for the sidecar
    with pytest.raises(PythonError) as info:
        sidecar.client().execute(f"open({str(token_file)!r}).read()")
    assert info.value.remote_type == "PermissionError"
    environ = sidecar.client().execute("import os\ndict(os.environ)").value
    assert sidecar.token not in "".join(f"{k}={v}" for k, v in environ.items())


def test_a_hung_workers_stack_is_still_captured(sidecar):
    # The stack file is opened by the sidecar and inherited: the account cannot open files in
    # the sidecar's owner-only folder.
    with pytest.raises(CallTimeout) as info:
        sidecar.client().execute("import time\ntime.sleep(30)", timeout=0.5)
    assert "in run_call" in (info.value.traceback or ""), info.value.traceback
    sidecar.wait_full_strength(1)


def test_direct_execution_runs_as_the_account_too(account, tmp_path_factory):
    python, env = worker_python(account)
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                       "spares": 0},
                              "worker": {"user": ACCOUNT, "python": python, "env": env},
                              "fallback": {"strategies": ["primary", "direct"]},
                              "scaling": {"enabled": False}, "health": {"enabled": False}},
                             workdir=str(tmp_path_factory.mktemp("direct-user")))
    with sidecar:
        client = sidecar.client()
        client.breaker("open")  # every call falls through to direct execution
        probe = "import os\n[os.getuid(), os.getppid()]"
        assert client.execute(probe).value == [account.pw_uid, sidecar.proc.pid]
        assert client.health()["fallback"]["served"].get("direct", 0) >= 1
        with pytest.raises(PythonError) as info:
            client.execute("import os\nos.kill(os.getppid(), 9)")
        assert info.value.remote_type == "PermissionError"
        assert sidecar.proc.poll() is None


class UnprivilegedSidecar(SidecarProcess):
    """The sidecar as the shipped unit runs it with worker.user set: its own account,
    NoNewPrivileges, and only CAP_SETUID/CAP_SETGID/CAP_KILL as ambient capabilities."""

    def __init__(self, python: str, site: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.python = python
        self.site = site

    def command(self) -> list[str]:
        caps = "+setuid,+setgid,+kill"
        return ["setpriv", f"--reuid={SERVICE_ACCOUNT}", f"--regid={SERVICE_ACCOUNT}",
                "--clear-groups", "--no-new-privs", f"--inh-caps={caps}",
                f"--ambient-caps={caps}", "--", self.python, "-m", "sidecar", "serve",
                "--config", str(self.config_path)]

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env["PYTHONPATH"], self.site) if p)
        return env


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_an_unprivileged_sidecar_with_ambient_caps_hands_none_to_user_code(account,
                                                                           service_account):
    service = service_account
    python, env = worker_python(service)
    workdir = tempfile.mkdtemp(prefix="py3sidecar-unprivileged-")
    os.chown(workdir, service.pw_uid, service.pw_gid)  # its runtime folder, token, log
    sidecar = UnprivilegedSidecar(
        python, env.get("PYTHONPATH", ""), workdir=workdir,
        overrides={"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
                   "worker": {"user": ACCOUNT, "python": python, "env": env,
                              "kill-grace": "200ms"},
                   "scaling": {"enabled": False}, "health": {"enabled": False},
                   "circuit-breaker": {"enabled": False}})
    try:
        with sidecar:
            assert psutil.Process(sidecar.proc.pid).uids().real == service.pw_uid
            client = sidecar.client()
            caps = client.execute("[l.split()[1] for l in open('/proc/self/status') "
                                  "if l.startswith(('CapEff', 'CapPrm', 'CapAmb'))]").value
            assert [int(c, 16) for c in caps] == [0, 0, 0], "user code kept capabilities"
            with pytest.raises(PythonError) as info:
                client.execute("import os\nos.kill(os.getppid(), 9)")
            assert info.value.kind == "user" and info.value.remote_type == "PermissionError"
            assert sidecar.proc.poll() is None and client.ping()["pid"] == sidecar.proc.pid
            # CAP_KILL lets the sidecar still stop the worker's group (a timeout kills it); its
            # replacement is forked from the warm template (python3.worker.spawn, the default),
            # and is confined the same way.
            wait_until(lambda: sidecar.pool()["template"]["state"] == "ready", 30,
                       message="the worker template never became ready")
            with pytest.raises(CallTimeout):
                client.execute("import time\ntime.sleep(30)", timeout=0.5)
            sidecar.wait_full_strength(1)
            # The timed-out worker may still be listed while it is killed: wait for it to go.
            wait_until(lambda: [w["spawned"] for w in sidecar.pool()["workers"]] == ["template"],
                       30, message="only the template-forked replacement in the pool")
            assert client.execute("import os\nos.getuid()").value == account.pw_uid
            with pytest.raises(PythonError) as info:
                client.execute("import os\nos.kill(os.getppid(), 9)")
            assert info.value.kind == "user" and info.value.remote_type == "PermissionError"
            assert client.ping()["pid"] == sidecar.proc.pid
            assert client.execute("1 + 1").value == 2
        assert sidecar.proc.returncode == 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
