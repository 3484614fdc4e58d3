"""Covers: sidecar.install.plan, sidecar.install.cli, sidecar.install.doctor, sidecar.install.rest,
    sidecar.install.seam.

``py3sidecar install`` / ``doctor`` / ``uninstall`` against an Ignition install tree and a
systemd folder made here: real accounts (the tests run as root and remove them), real files and
owners, systemctl recorded through the seam (PY3SIDECAR_INSTALL_RECORD: no systemd here), a real
sidecar for doctor's ping and /readyz, and a local HTTP double of the 8.3 gateway's REST API."""
from __future__ import annotations

import grp
import hashlib
import http.server
import io
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest

from sidecar.testing import PROJECT_ROOT, SidecarProcess

pytestmark = pytest.mark.skipif(os.getuid() != 0 or shutil.which("useradd") is None,
                                reason="install makes accounts: needs root and useradd")


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "sidecar", *args], cwd=str(PROJECT_ROOT),
                          env=full, capture_output=True, text=True, timeout=180)


def tree_state(top: Path) -> dict[str, tuple]:
    """Every path under ``top`` with its type, mode, owner and content hash."""
    state = {}
    for path in sorted([top, *top.rglob("*")]):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path.relative_to(top))] = (st.st_mode, st.st_uid, st.st_gid, digest)
    return state


class Site:
    """An Ignition install tree, a systemd folder and the names of this run's accounts."""

    def __init__(self, version: str = "8.3") -> None:
        sfx = secrets.token_hex(3)
        self.gateway_user = f"p3t-gw-{sfx}"
        self.sidecar_user, self.worker_user = f"p3t-sc-{sfx}", f"p3t-wk-{sfx}"
        self.group = f"p3t-cl-{sfx}"
        self.root = Path(tempfile.mkdtemp(prefix="py3sidecar-install-", dir="/tmp"))
        os.chmod(self.root, 0o755)  # the gateway's account walks down to the runtime folder
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", "--user-group", self.gateway_user], check=True,
                       capture_output=True, timeout=60)
        self.home = self.root / "usr" / "local" / "bin" / "ignition"
        (self.home / "lib" / "core" / "gateway").mkdir(parents=True)
        (self.home / "lib" / "core" / "gateway" / "gateway-api.jar").write_bytes(b"the gateway")
        # a jar of the same name as one install copies: kept aside, put back by uninstall
        (self.home / "lib" / "core" / "gateway" / "msgpack-core.jar").write_bytes(b"site's own")
        (self.home / "data" / "projects" / "plant").mkdir(parents=True)
        (self.home / "data" / "projects" / "plant" / "project.json").write_text('{"parent": ""}')
        if version == "8.3":
            (self.home / "data" / "config" / "resources").mkdir(parents=True)
        else:
            (self.home / "data" / "ignition.conf").write_text("wrapper.java.command=java\n")
        (self.home / "ignition.sh").write_text("#!/bin/sh\n")
        gw = pwd.getpwnam(self.gateway_user)
        for path in [self.home / "data", *(self.home / "data").rglob("*")]:
            os.chown(path, gw.pw_uid, gw.pw_gid)
        self.systemd = self.root / "etc" / "systemd" / "system"
        self.systemd.mkdir(parents=True)
        (self.systemd / "Ignition-Gateway.service").write_text(
            f"[Unit]\nDescription=Ignition-Gateway\n[Service]\nType=forking\n"
            f"ExecStart={self.home}/ignition.sh start sysd\nUser={self.gateway_user}\n")
        self.record = self.root / "systemctl.jsonl"
        self.env = {"PY3SIDECAR_INSTALL_RECORD": str(self.record)}

    def install(self, *extra: str) -> subprocess.CompletedProcess:
        return run_cli("install", "--ignition-home", str(self.home), "--root", str(self.root),
                       "--sidecar-user", self.sidecar_user, "--worker-user", self.worker_user,
                       "--token-group", self.group, *extra, env=self.env)

    def doctor(self) -> tuple[int, dict]:
        proc = run_cli("doctor", "--ignition-home", str(self.home), "--root", str(self.root),
                       "--json", env=self.env)
        return proc.returncode, json.loads(proc.stdout)

    def cleanup(self) -> None:
        for user in (self.sidecar_user, self.worker_user, self.gateway_user):
            subprocess.run(["userdel", user], capture_output=True, timeout=60)
        subprocess.run(["groupdel", self.group], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def failed(report: dict) -> list[str]:
    return [c["name"] for c in report["checks"] if not c["ok"]]


@pytest.fixture
def site():
    s = Site()
    yield s
    s.cleanup()


def test_install_doctor_break_upgrade_uninstall(site):
    before = tree_state(site.home)
    proc = site.install()
    assert proc.returncode == 0, proc.stderr
    state = site.root / "var" / "lib" / "py3sidecar"
    manifest = json.loads((site.root / "etc" / "py3sidecar" / "install-manifest.json")
                          .read_text())
    assert manifest["gateway_unit"] == "Ignition-Gateway.service"
    assert manifest["gateway_user"] == site.gateway_user and manifest["ignition_version"] == "8.3"
    assert set(manifest["users"]) == {site.sidecar_user, site.worker_user}
    assert manifest["groups"] == [site.group]
    assert site.gateway_user in grp.getgrnam(site.group).gr_mem
    unit = (site.systemd / "py3sidecar.service").read_text()
    assert f"ExecStart={sys.executable} -m sidecar serve" in unit  # this interpreter
    assert "Before=Ignition-Gateway.service" in unit and f"User={site.sidecar_user}" in unit
    assert f"user: {site.worker_user}" in (site.root / "etc/py3sidecar/config.yml").read_text()
    library = site.home / "data" / "projects" / "py3sidecar"
    child = site.home / "data" / "projects" / "py3sidecar-gateway"
    assert (child / "ignition" / "message" / "py3sidecar" / "handleMessage.py").exists()
    assert pwd.getpwuid(library.stat().st_uid).pw_name == site.gateway_user  # owned like data/
    assert pwd.getpwuid((child / "project.json").stat().st_uid).pw_name == site.gateway_user
    records = [json.loads(line)["argv"] for line in site.record.read_text().splitlines()]
    assert ["systemctl", "enable", "--now", "py3sidecar.service"] in records

    doctor_against_a_sidecar(site, state, child)
    upgrade(site, library, manifest)

    proc = run_cli("uninstall", "--root", str(site.root), env=site.env)
    assert proc.returncode == 0, proc.stderr
    assert tree_state(site.home) == before  # the site's own msgpack-core.jar is back
    for user in (site.sidecar_user, site.worker_user):
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
    with pytest.raises(KeyError):
        grp.getgrnam(site.group)
    assert not (site.systemd / "py3sidecar.service").exists()
    assert not (site.root / "etc" / "py3sidecar").exists() and not state.exists()
    records = [json.loads(line)["argv"] for line in site.record.read_text().splitlines()]
    assert ["systemctl", "disable", "--now", "py3sidecar.service"] in records


def doctor_against_a_sidecar(site: Site, state: Path, child: Path) -> None:
    """All checks pass against a real sidecar; each broken piece is named, with its fix."""
    # the sidecar as the unit would run it: its runtime folder, the token 0640 in the group
    sidecar = SidecarProcess({"bridge": {"token-group": site.group},
                              "pool": {"initial-size": 1, "min-size": 1, "spares": 0},
                              "scaling": {"enabled": False}}, workdir=str(state))
    sidecar.start()
    try:
        token = state / "runtime" / "token"
        # the test's sidecar runs as root (this interpreter lives under /root): the token is
        # handed to the installed account, as the unit's User= would have made it
        os.chown(token, pwd.getpwnam(site.sidecar_user).pw_uid, -1)
        code, report = site.doctor()
        assert code == 0 and report["ok"], [c for c in report["checks"] if not c["ok"]]
        names = {c["name"] for c in report["checks"]}
        assert {"gateway unit", "gateway user", "sidecar unit active", "token owner",
                "token mode", "jar msgpack-core.jar", "ping", "readyz",
                "project py3sidecar-gateway", "connection file readable by the gateway"} <= names

        breaks = [
            ("jar msgpack-core.jar", site.home / "lib/core/gateway/msgpack-core.jar", None),
            ("token mode", token, 0o644),
            ("project py3sidecar-gateway", child / "project.json", '{"parent": "plant"}'),
        ]
        for name, path, how in breaks:
            saved, mode = path.read_bytes(), path.stat().st_mode
            if how is None:
                path.unlink()
            elif isinstance(how, int):
                os.chmod(path, how)
            else:
                path.write_text(how)
            code, report = site.doctor()
            assert code == 1 and failed(report) == [name], (name, failed(report))
            fix = next(c["fix"] for c in report["checks"] if c["name"] == name)
            assert fix, name  # every failure comes with its fix
            if not path.exists():
                path.write_bytes(saved)
            path.write_bytes(saved)
            os.chmod(path, mode & 0o7777)
            if name == "jar msgpack-core.jar":
                os.chown(path, 0, 0)
        assert site.doctor()[0] == 0
    finally:
        sidecar.stop()
    code, report = site.doctor()  # the sidecar down
    assert code == 1 and {"ping", "readyz"} & set(failed(report)), failed(report)



def upgrade(site: Site, library: Path, manifest: dict) -> None:
    """Install again replaces what it wrote and keeps the site settings."""
    site_file = site.root / "etc" / "py3sidecar" / "ignition-site.json"
    edited = dict(json.loads(site_file.read_text()), HEALTH_TAG_PROVIDER="plant")
    site_file.write_text(json.dumps(edited))
    (site.home / "lib/core/gateway/msgpack-core.jar").write_bytes(b"an older release")
    (library / "ignition" / "script-python" / "python3" / "code.py").write_text("# edited")
    proc = site.install()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(site_file.read_text()) == edited
    assert "# edited" not in (library / "ignition/script-python/python3/code.py").read_text()
    again = json.loads((site.root / "etc/py3sidecar/install-manifest.json").read_text())
    assert set(again["users"]) == {site.sidecar_user, site.worker_user}
    assert [f["path"] for f in again["files"]] == [f["path"] for f in manifest["files"]]


def test_dry_run_changes_nothing(site):
    before = tree_state(site.root)
    proc = site.install("--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "useradd" in proc.stderr and "msgpack-core.jar" in proc.stderr
    assert tree_state(site.root) == before
    with pytest.raises(KeyError):
        pwd.getpwnam(site.sidecar_user)


def test_unknown_version_and_missing_gateway_user_are_named(site):
    shutil.rmtree(site.home / "data" / "config")
    proc = site.install()
    assert proc.returncode == 1 and "--ignition-version" in proc.stderr, proc.stderr
    proc = site.install("--ignition-version", "8.3", "--gateway-user", "no-such-account-x")
    assert proc.returncode == 1 and "--gateway-user" in proc.stderr, proc.stderr


class GatewayDouble(http.server.BaseHTTPRequestHandler):
    """TEST DOUBLE of the 8.3 gateway's project import route (not Ignition)."""
    requests: list = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((self.path, self.headers, body))  # case-insensitive
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"success": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway_api():
    GatewayDouble.requests, GatewayDouble.status = [], 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GatewayDouble)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_83_rest_import(site, gateway_api):
    proc = site.install("--api-token", "key:secret", "--gateway-url", gateway_api)
    assert proc.returncode == 0, proc.stderr
    paths = [r[0] for r in GatewayDouble.requests]
    assert paths == ["/data/api/v1/projects/import/py3sidecar?overwrite=true",
                     "/data/api/v1/projects/import/py3sidecar-gateway?overwrite=true"]
    for _, headers, _body in GatewayDouble.requests:
        assert headers["Content-Type"] == "application/zip"
        assert headers["X-Ignition-API-Token"] == "key:secret"
    child = zipfile.ZipFile(io.BytesIO(GatewayDouble.requests[1][2])).namelist()
    assert "ignition/timer/py3sidecar-healthpoll/handleTimerEvent.py" in child
    assert json.loads(zipfile.ZipFile(io.BytesIO(GatewayDouble.requests[1][2]))
                      .read("project.json"))["parent"] == "py3sidecar"
    assert not (site.home / "data" / "projects" / "py3sidecar").exists()  # the gateway's job
    assert run_cli("uninstall", "--root", str(site.root), env=site.env).returncode == 0

    GatewayDouble.status = 403
    proc = site.install("--api-token", "key:readonly", "--gateway-url", gateway_api)
    assert proc.returncode == 1 and "write permission" in proc.stderr, proc.stderr
