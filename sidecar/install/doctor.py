"""``py3sidecar doctor --ignition-home DIR``: every check an integrator makes, each with its fix.

Owns: the checks (the gateway's unit and account, the sidecar's unit and whether it is active,
the token's owner and mode, the jars and their versions, what the gateway's account can read, a
ping and /readyz of the running sidecar, the projects and their parent chain, the site settings)
and their report. Must not touch: anything on the host (it reads; ``systemctl is-active`` goes
through ``sidecar.install.seam.Host``).
"""

from __future__ import annotations

import grp
import json
import pwd
import stat
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sidecar.deploy import bundle_texts as texts
from sidecar.deploy import gateway_project as gp
from sidecar.deploy.bundle_checks import unreachable
from sidecar.install.detect import detect, unit_values
from sidecar.install.plan import (
    DEFAULT_SYSTEMD_DIR,
    MANIFEST,
    SITE_FILE,
    UNIT_NAME,
    Manifest,
    sha256,
)
from sidecar.install.seam import Host


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class Doctor:
    def __init__(self, home: Path, host: Host, *, systemd_dir: Path | None = None,
                 gateway_unit: str | None = None, gateway_user: str | None = None,
                 connection_file: Path | None = None, timeout: float = 5.0) -> None:
        self.home, self.host, self.timeout = home, host, timeout
        self.manifest = Manifest.load(host.path(MANIFEST)).data
        self.systemd_dir = systemd_dir or Path(self.manifest.get("systemd_dir")
                                               or host.path(DEFAULT_SYSTEMD_DIR))
        self.found = detect(home, self.systemd_dir, gateway_unit=gateway_unit,
                            gateway_user=gateway_user or self.manifest.get("gateway_user"))
        self.connection_file = connection_file
        self.checks: list[Check] = []

    def add(self, name: str, ok: bool, detail: str, fix: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail, "" if ok else fix))
        return bool(ok)

    # the checks ---------------------------------------------------------------------------
    def run(self) -> list[Check]:
        self.check_gateway()
        unit = self.check_sidecar_unit()
        connection = self.check_connection_file(unit)
        self.check_token(connection, unit)
        self.check_jars()
        self.check_running(connection)
        self.check_projects()
        self.check_site_settings()
        return self.checks

    def gateway_account(self) -> pwd.struct_passwd | None:
        try:
            return pwd.getpwnam(self.found.gateway_user or "")
        except KeyError:
            return None

    def check_gateway(self) -> None:
        f = self.found
        self.add("gateway unit", f.gateway_unit_path is not None,
                 f"{f.gateway_unit or '?'} ({f.how.get('gateway_unit')})",
                 f"pass --gateway-unit NAME (`systemctl list-units '*gnition*'`); its file must "
                 f"be in {self.systemd_dir} (or pass --systemd-dir)")
        self.add("gateway user", self.gateway_account() is not None,
                 f"{f.gateway_user or '?'} ({f.how.get('gateway_user')})",
                 "pass --gateway-user (the User= of the gateway's unit)")

    def check_sidecar_unit(self) -> dict[str, str]:
        path = self.systemd_dir / UNIT_NAME
        values = unit_values(path)
        if not self.add("sidecar unit file", bool(values), str(path),
                        f"run `py3sidecar install --ignition-home {self.home}` (or copy the "
                        "bundle's systemd/py3sidecar.service there, then systemctl daemon-reload)"):
            return values
        python = values.get("ExecStart", "").split(" ")[0]
        self.add("sidecar interpreter", bool(python) and Path(python).exists(),
                 f"ExecStart runs {python or '?'}",
                 "install py3sidecar into a virtualenv every account can read and run "
                 "`py3sidecar install` with that virtualenv's py3sidecar")
        user = values.get("User", "root")
        self.add("sidecar account", user not in ("root", self.found.gateway_user),
                 f"the sidecar runs as {user}",
                 "the sidecar needs its own account (not root, not the gateway's: user code "
                 "would reach the gateway's data/): re-run `py3sidecar install`")
        state = self.host.is_active(UNIT_NAME)
        self.add("sidecar unit active", state == "active", f"systemctl is-active: {state}",
                 "systemctl enable --now py3sidecar; if it fails: journalctl -u py3sidecar")
        return values

    def check_connection_file(self, unit: dict[str, str]) -> dict[str, Any] | None:
        path = self.connection_file
        if path is None:
            runtime = unit.get("Environment", "").partition("PY3SIDECAR_RUNTIME_DIR=")[2]
            path = Path(runtime.split()[0] if runtime else
                        self.host.path(texts.STATE_DIR) / "runtime") / "connection.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            self.add("connection file", False, f"{path}: {exc}",
                     "start the sidecar (systemctl start py3sidecar): it writes the file")
            return None
        account = self.gateway_account()
        blocked = unreachable(path, account) if account else path
        self.add("connection file readable by the gateway", blocked is None,
                 f"{path}" + (f": {blocked} is in the way for {account.pw_name}"
                              if blocked and account else ""),
                 f"the gateway's account must be in the token group ({self.token_group()}) "
                 f"and the runtime folder 0750 in it: `usermod -aG {self.token_group()} "
                 f"{self.found.gateway_user}` and restart the gateway")
        data["_path"] = str(path)
        return data

    def token_group(self) -> str:
        return self.manifest.get("token_group") or texts.DEFAULT_TOKEN_GROUP

    def check_token(self, connection: dict[str, Any] | None, unit: dict[str, str]) -> None:
        token_file = (connection or {}).get("token_file")
        if not token_file:
            self.add("token file", False, "the connection file names no token file",
                     "leave python3.bridge.token empty (the sidecar keeps its token in a file)")
            return
        path = Path(token_file)
        try:
            st = path.stat()
        except OSError as exc:
            self.add("token file", False, f"{path}: {exc}", "restart the sidecar")
            return
        owner = _name(pwd.getpwuid, st.st_uid)
        group = _name(grp.getgrgid, st.st_gid)
        mode = stat.S_IMODE(st.st_mode)
        want_user = unit.get("User") or self.manifest.get("sidecar_user")
        self.add("token owner", owner == want_user, f"{path} is owned by {owner}",
                 f"chown {want_user} {path} (the sidecar's account owns its token)")
        self.add("token mode", mode == 0o640 and group == self.token_group(),
                 f"mode {mode:04o}, group {group}",
                 f"chgrp {self.token_group()} {path} && chmod 640 {path} (set "
                 f"python3.bridge.token-group: {self.token_group()} so the sidecar keeps it so)")
        account = self.gateway_account()
        blocked = unreachable(path, account) if account else path
        self.add("token readable by the gateway", blocked is None,
                 f"{self.found.gateway_user} " + ("can read it" if blocked is None
                                                  else f"is stopped at {blocked}"),
                 f"usermod -aG {self.token_group()} {self.found.gateway_user}, then restart the "
                 "gateway (a running process keeps its old groups)")

    def expected_jars(self) -> dict[str, str | None]:
        files = {f["path"]: f.get("sha256") for f in self.manifest.get("files", [])}
        return {Path(p).name: files.get(p) for p in self.manifest.get("jars", [])}

    def check_jars(self) -> None:
        folder = self.home / "lib" / "core" / "gateway"
        expected = self.expected_jars() or _bundle_jars()
        for name, digest in sorted(expected.items()):
            path = folder / name
            if not path.exists():
                self.add(f"jar {name}", False, f"missing from {folder}",
                         f"re-run `py3sidecar install` (or copy the bundle's jars/{name} "
                         "there), then restart the gateway")
            else:
                same = digest is None or sha256(path) == digest
                self.add(f"jar {name}", same, f"{path}" + ("" if same else
                                                            " differs from this release's"),
                         "re-run `py3sidecar install` with this release, then restart the "
                         "gateway")

    def check_running(self, connection: dict[str, Any] | None) -> None:
        if connection is None:
            self.add("ping", False, "no connection file", "start the sidecar")
            return
        from bridge.client import Client
        from bridge.token import read_token

        endpoint = (connection.get("zmq") or {}).get("endpoint")
        try:
            with Client(endpoint, read_token(connection.get("token_file")),
                        timeout=self.timeout) as client:
                reply = client.ping()
            self.add("ping", True, f"pid {reply.get('pid')}, state {reply.get('state')}")
        except Exception as exc:
            self.add("ping", False, f"{endpoint}: {type(exc).__name__}: {exc}",
                     "systemctl restart py3sidecar; journalctl -u py3sidecar says why it "
                     "does not answer")
        url = (connection.get("http") or {}).get("url")
        if not url:
            self.add("readyz", False, "the sidecar serves no HTTP endpoint",
                     "enable python3.http in /etc/py3sidecar/config.yml")
            return
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/readyz",
                                        timeout=self.timeout) as response:
                self.add("readyz", response.status == 200, f"{url}/readyz: {response.status}")
        except Exception as exc:
            self.add("readyz", False, f"{url}/readyz: {exc}",
                     "the sidecar is not ready (no worker serves): `py3sidecar health`")

    def check_projects(self) -> None:
        projects = self.home / "data" / "projects"
        if self.manifest.get("imported"):
            self.add("projects", True, "imported over REST: "
                     + ", ".join(self.manifest["imported"]))
            return
        library = _project_json(projects / gp.LIBRARY_NAME)
        self.add("project py3sidecar", bool(library) and library.get("inheritable") is True,
                 f"{projects / gp.LIBRARY_NAME}" + ("" if library else " is missing"),
                 "re-run `py3sidecar install`, or import py3sidecar-project.zip (Inheritable)")
        chain = _parents(projects, gp.GATEWAY_PROJECT_NAME)
        self.add("project py3sidecar-gateway", gp.LIBRARY_NAME in chain[1:],
                 f"parent chain {' -> '.join(chain) or '(missing)'}",
                 f"set the parent of {gp.GATEWAY_PROJECT_NAME} to py3sidecar (or to a project "
                 "that inherits it): Config > Projects (8.1) / Platform > System > Projects "
                 "(8.3) > edit")

    def check_site_settings(self) -> None:
        site = self.host.path(SITE_FILE)
        if not site.exists():
            return
        try:
            data = json.loads(site.read_text())
            ok = isinstance(data, dict)
        except (OSError, ValueError) as exc:
            ok, data = False, str(exc)
        account = self.gateway_account()
        blocked = unreachable(site, account) if account else None
        self.add("site settings", ok and blocked is None, f"{site}" + (
            "" if ok else f": {data}") + (f"; {blocked} stops the gateway" if blocked else ""),
            f"{site} must be a JSON object of py3sidecar.settings names, readable by the "
            "gateway's account")


def _name(lookup, number: int) -> str:
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def _project_json(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "project.json").read_text())
    except (OSError, ValueError):
        return None


def _parents(projects: Path, name: str) -> list[str]:
    """``name``, its parent, that one's parent ... (as far as the folders say)."""
    chain: list[str] = []
    while name and name not in chain and len(chain) < 20:
        data = _project_json(projects / name)
        if data is None:
            break
        chain.append(name)
        name = data.get("parent") or ""
    return chain


def _bundle_jars() -> dict[str, str | None]:
    from sidecar.deploy.bundle import py4j_jar

    return {py4j_jar().name: None, "msgpack-core.jar": None}


def report_text(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
        if c.fix:
            lines.append(f"     fix: {c.fix}")
    failed = [c.name for c in checks if not c.ok]
    lines.append("all checks passed" if not failed else
                 f"{len(failed)} failed: {', '.join(failed)}")
    return "\n".join(lines)


def report_json(checks: list[Check]) -> str:
    return json.dumps({"ok": all(c.ok for c in checks),
                       "checks": [asdict(c) for c in checks]}, indent=2)
