"""``py3sidecar install`` / ``uninstall``: put the sidecar and the bundle on an Ignition host,
and take exactly that away again.

Owns: the install plan (accounts, folders, files, projects, the unit), the manifest that records
every file, folder, account, group and group membership it made (and every file it replaced,
kept aside to be put back), upgrades (``install`` again: what it wrote is replaced, the site
settings file is kept) and uninstall (the manifest's entries, in reverse). Must not touch: the
system itself (every change goes through ``sidecar.install.seam.Host``), detection
(``sidecar.install.detect``), the bundle's contents (``sidecar.deploy.bundle``).

    install --ignition-home DIR
      detect (version, gateway unit, gateway user) -> accounts (group, sidecar, worker; the
      gateway's user joins the group) -> /etc/py3sidecar (config.yml, ignition-site.json once)
      -> /var/lib/py3sidecar/runtime (0750, sidecar:group) -> the unit -> jars into
      DIR/lib/core/gateway -> projects into DIR/data/projects/<name> (or REST import on 8.3)
      -> systemctl daemon-reload, enable --now -> install-manifest.json
"""

from __future__ import annotations

import datetime
import grp
import hashlib
import json
import os
import pwd
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.deploy import bundle_texts as texts
from sidecar.deploy import gateway_project as gp
from sidecar.install.detect import Detected, detect, owner_of
from sidecar.install.seam import Host

MANIFEST = "/etc/py3sidecar/install-manifest.json"
ETC = "/etc/py3sidecar"
SITE_FILE = "/etc/py3sidecar/ignition-site.json"
DEFAULT_SYSTEMD_DIR = "/etc/systemd/system"
UNIT_NAME = "py3sidecar.service"


class InstallError(RuntimeError):
    """Install cannot go on; the message says what to pass or fix."""


@dataclass
class Options:
    ignition_home: Path
    ignition_version: str | None = None
    gateway_user: str | None = None
    gateway_unit: str | None = None
    systemd_dir: Path | None = None
    sidecar_user: str = texts.DEFAULT_SIDECAR_USER
    worker_user: str = texts.DEFAULT_WORKER_USER
    token_group: str = texts.DEFAULT_TOKEN_GROUP
    python: str = sys.executable
    no_start: bool = False
    api_token: str | None = None
    gateway_url: str = "http://127.0.0.1:8088"
    zmq: bool = False


@dataclass
class Manifest:
    """What install made. Paths are as on this host (the root prefix included)."""
    path: Path
    data: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        try:
            return cls(path, json.loads(path.read_text()))
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError) as exc:
            raise InstallError(f"cannot read the install manifest {path}: {exc}") from None

    def entries(self, kind: str) -> list:
        return self.data.setdefault(kind, [])

    def owns(self, kind: str, value) -> bool:
        return value in self.entries(kind)

    def add(self, kind: str, value) -> None:
        if value not in self.entries(kind):
            self.entries(kind).append(value)

    def save(self, host: Host) -> None:
        if host.dry_run:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _exists_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _exists_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _member(user: str, group: str) -> bool:
    account = pwd.getpwnam(user)
    entry = grp.getgrnam(group)
    return account.pw_gid == entry.gr_gid or user in entry.gr_mem


class Installer:
    def __init__(self, options: Options, host: Host) -> None:
        self.o = options
        self.host = host
        self.manifest = Manifest.load(host.path(MANIFEST))
        self.previous = {f["path"]: f for f in self.manifest.entries("files")}
        self.manifest.data["files"] = []
        self.found: Detected | None = None

    # plan ---------------------------------------------------------------------------------
    def run(self) -> Manifest:
        o, host = self.o, self.host
        home = o.ignition_home
        if not (home / "data").is_dir():
            raise InstallError(f"{home} is not an Ignition install folder (it has no data/): "
                               "pass --ignition-home with the gateway's folder (often "
                               "/usr/local/bin/ignition)")
        systemd_dir = o.systemd_dir or host.path(DEFAULT_SYSTEMD_DIR)
        self.found = found = detect(home, systemd_dir, version=o.ignition_version,
                                    gateway_unit=o.gateway_unit, gateway_user=o.gateway_user)
        if found.version not in ("8.1", "8.3"):
            raise InstallError(f"cannot tell the Ignition version of {home} "
                               f"({found.how['version']}): pass --ignition-version 8.1 or 8.3")
        if not found.gateway_user or not _exists_user(found.gateway_user):
            raise InstallError(f"the gateway's account is not known ({found.how['gateway_user']}"
                               f"{': ' + found.gateway_user if found.gateway_user else ''}): "
                               "pass --gateway-user (the User= of its systemd unit)")
        if found.gateway_user == o.sidecar_user:
            raise InstallError("the sidecar must not run as the gateway's account (user code "
                               "would reach data/: the config database, the certificates): "
                               "pass another --sidecar-user")
        unit_name = found.gateway_unit or texts.DEFAULT_GATEWAY_UNIT
        self.manifest.data.update({
            "version": 1, "ignition_home": str(home), "ignition_version": found.version,
            "gateway_unit": unit_name, "gateway_user": found.gateway_user,
            "sidecar_user": o.sidecar_user, "worker_user": o.worker_user,
            "token_group": o.token_group, "python": o.python, "systemd_dir": str(systemd_dir),
            "detected": found.how,
            "installed_at": datetime.datetime.now(datetime.UTC).isoformat()})
        self.make_accounts(found.gateway_user)
        bundle_dir = Path(tempfile.mkdtemp(prefix="py3sidecar-install-"))
        try:
            from sidecar.deploy.bundle import build_bundle

            build_bundle(bundle_dir, zmq=o.zmq, user=o.sidecar_user, python=o.python,
                         check=False, gateway_unit=unit_name, worker_user=o.worker_user,
                         group=o.token_group)
            self.write_host_files(bundle_dir, systemd_dir, unit_name)
            self.copy_jars(bundle_dir / "jars", home / "lib" / "core" / "gateway")
            self.put_projects(bundle_dir, home, found.version)
        finally:
            shutil.rmtree(bundle_dir, ignore_errors=True)
        host.systemctl("daemon-reload")
        host.systemctl("enable", UNIT_NAME) if o.no_start else host.systemctl(
            "enable", "--now", UNIT_NAME)
        self.manifest.add("units", UNIT_NAME)
        self.drop_stale_files()
        self.manifest.save(host)
        return self.manifest

    # accounts -----------------------------------------------------------------------------
    def make_accounts(self, gateway_user: str) -> None:
        o, host = self.o, self.host
        if not _exists_group(o.token_group):
            host.add_group(o.token_group)
            self.manifest.add("groups", o.token_group)
        for name in (o.sidecar_user, o.worker_user):
            if name and not _exists_user(name):
                host.add_system_user(name)
                self.manifest.add("users", name)
        for user in (o.sidecar_user, gateway_user):
            if user == "root":
                continue
            if host.dry_run and not (_exists_user(user) and _exists_group(o.token_group)):
                host.add_to_group(user, o.token_group)  # printed only
                continue
            if not _member(user, o.token_group):
                host.add_to_group(user, o.token_group)
                self.manifest.add("memberships", [user, o.token_group])

    # files --------------------------------------------------------------------------------
    def keep_aside(self, target: Path) -> None:
        """A file or folder install did not make is moved aside, to be put back by uninstall."""
        if not target.exists() and not target.is_symlink():
            return
        owned = str(target) in self.previous or self.manifest.owns("trees", str(target))
        if owned:
            return
        backups = self.host.path(ETC) / "replaced"
        backup = backups / hashlib.sha256(str(target).encode()).hexdigest()[:16]
        self.host.echo(f"keeping {target} aside in {backup} (uninstall puts it back)")
        if not self.host.dry_run:
            backups.mkdir(parents=True, exist_ok=True)
            shutil.move(str(target), str(backup))
        self.manifest.add("replaced", {"path": str(target), "backup": str(backup)})

    def make_dir(self, path: Path, mode: int, user: str | None = None,
                 group: str | None = None) -> None:
        missing = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for folder in reversed(missing):
            folder_mode = mode if folder == path else 0o755  # parents: as mkdir -p makes them
            self.host.echo(f"$ mkdir -m {folder_mode:o} {folder}")
            if not self.host.dry_run:
                folder.mkdir(mode=folder_mode)
                os.chmod(folder, folder_mode)
            self.manifest.add("dirs", str(folder))
        if (user or group) and path.exists():
            self.host.chown(path, user, group)
        if path.exists() and not self.host.dry_run:
            os.chmod(path, mode)

    def write_file(self, target: Path, source: Path | None = None, text: str | None = None,
                   mode: int = 0o644, user: str | None = None, group: str | None = None) -> None:
        self.make_dir(target.parent, 0o755)
        self.keep_aside(target)
        self.host.echo(f"write {target}")
        if not self.host.dry_run:
            tmp = target.with_name(f".{target.name}.py3sidecar.tmp")
            if source is not None:
                shutil.copyfile(source, tmp)
            else:
                tmp.write_text(text or "")
            os.chmod(tmp, mode)
            os.replace(tmp, target)
            if user or group:
                self.host.chown(target, user, group)
        self.manifest.entries("files").append(
            {"path": str(target), "sha256": None if self.host.dry_run else sha256(target)})

    def write_host_files(self, bundle: Path, systemd_dir: Path, gateway_unit: str) -> None:
        o, host = self.o, self.host
        etc = host.path(ETC)
        self.make_dir(etc, 0o755)
        state = host.path(texts.STATE_DIR)
        self.make_dir(state, 0o750, o.sidecar_user, o.token_group)
        self.make_dir(state / "runtime", 0o750, o.sidecar_user, o.token_group)
        self.write_file(etc / "config.yml", bundle / "config.yml")
        site = host.path(SITE_FILE)
        if site.exists():
            host.echo(f"keeping the site settings {site} (an upgrade never replaces them)")
            if str(site) in self.previous:  # still ours: uninstall removes it
                self.manifest.entries("files").append(self.previous[str(site)])
        else:
            settings = {"CONNECTION_FILE": str(state / "runtime" / "connection.json")}
            self.write_file(site, text=json.dumps(settings, indent=2) + "\n")
            self.manifest.data["site_settings"] = str(site)
        unit = texts.systemd_unit(o.sidecar_user, o.python, group=o.token_group,
                                  gateway_unit=gateway_unit, worker_user=o.worker_user,
                                  state_dir=str(state), config=str(etc / "config.yml"))
        self.write_file(systemd_dir / UNIT_NAME, text=unit)

    def copy_jars(self, jars: Path, target: Path) -> None:
        self.make_dir(target, 0o755)
        owner = owner_of(target)
        for jar in sorted(jars.glob("*.jar")):
            self.write_file(target / jar.name, jar, user=owner)
            self.manifest.add("jars", str(target / jar.name))

    def put_projects(self, bundle: Path, home: Path, version: str) -> None:
        from sidecar.deploy.bundle import GATEWAY_ZIPS, LIBRARY_ZIP

        zips = {gp.LIBRARY_NAME: bundle / LIBRARY_ZIP,
                gp.GATEWAY_PROJECT_NAME: bundle / GATEWAY_ZIPS[version]}
        if self.o.api_token and version == "8.3":
            from sidecar.install.rest import import_project

            for name, archive in zips.items():  # the library first: the child names it
                self.host.echo(f"POST {self.o.gateway_url}/data/api/v1/projects/import/{name}")
                if not self.host.dry_run:
                    import_project(self.o.gateway_url, self.o.api_token, name, archive)
                self.manifest.add("imported", name)
            return
        projects = home / "data" / "projects"
        self.make_dir(projects, 0o755)
        owner = owner_of(projects) or self.found.gateway_user
        sources = {gp.LIBRARY_NAME: lambda p: gp.write_library(p),
                   gp.GATEWAY_PROJECT_NAME: lambda p: gp.write_gateway_project(p, version)}
        for name, write in sources.items():
            target = projects / name
            self.keep_aside(target)
            self.host.echo(f"write the project {target} (chown -R {owner})")
            if not self.host.dry_run:
                if target.exists():
                    shutil.rmtree(target)
                write(target)
                owner_ids = pwd.getpwnam(owner)
                for path in [target, *target.rglob("*")]:
                    os.chown(path, owner_ids.pw_uid, owner_ids.pw_gid)
            self.manifest.add("trees", str(target))

    def drop_stale_files(self) -> None:
        """Files the previous install wrote that this one did not (a jar renamed by an
        upgrade): removed, so uninstall later finds nothing it does not list."""
        now = {f["path"] for f in self.manifest.entries("files")}
        for path in self.previous:
            if path not in now and Path(path).exists():
                self.host.echo(f"$ rm {path}   (written by the previous install)")
                if not self.host.dry_run:
                    Path(path).unlink()


def install(options: Options, host: Host) -> Manifest:
    return Installer(options, host).run()


def uninstall(host: Host, *, keep_site_settings: bool = False) -> Manifest:
    """Removes what the manifest lists, puts back what install had set aside."""
    manifest = Manifest.load(host.path(MANIFEST))
    if not manifest.data:
        raise InstallError(f"no install manifest at {host.path(MANIFEST)}: nothing to remove "
                           "(was py3sidecar installed with another --root?)")
    data = manifest.data
    for unit in data.get("units", []):
        try:
            host.systemctl("disable", "--now", unit)
        except Exception as exc:  # a unit that is gone already must not stop the removal
            host.echo(f"(systemctl: {exc})")
    remove_files(host, data, keep_site_settings)
    remove_dirs(host, data)
    remove_accounts(host, data)
    if data.get("units"):
        host.systemctl("daemon-reload")
    for name in data.get("imported", []):
        host.echo(f"note: delete the project {name} in the gateway's web page (Platform > "
                  "System > Projects): it was imported over REST")
    return manifest


def remove_files(host: Host, data: dict, keep_site_settings: bool) -> None:
    """Files and project folders install wrote; then what it had set aside goes back."""
    site = data.get("site_settings")
    for entry in reversed(data.get("files", [])):
        path = Path(entry["path"])
        if keep_site_settings and str(path) == site:
            host.echo(f"keeping {path} (--keep-site-settings)")
            continue
        host.echo(f"$ rm {path}")
        if not host.dry_run and (path.exists() or path.is_symlink()):
            path.unlink()
    for tree in reversed(data.get("trees", [])):
        host.echo(f"$ rm -r {tree}")
        if not host.dry_run and Path(tree).exists():
            shutil.rmtree(tree)
    for entry in reversed(data.get("replaced", [])):
        host.echo(f"put back {entry['path']}")
        if not host.dry_run and Path(entry["backup"]).exists():
            shutil.move(entry["backup"], entry["path"])
    replaced = host.path(ETC) / "replaced"
    if not host.dry_run and replaced.is_dir() and not any(replaced.iterdir()):
        replaced.rmdir()
    manifest_path = host.path(MANIFEST)
    if not host.dry_run and manifest_path.exists():
        manifest_path.unlink()


def remove_dirs(host: Host, data: dict) -> None:
    """Folders install made, deepest first: the sidecar's state folder with what the sidecar
    wrote into it (token, connection file); any other only when empty."""
    state = str(host.path(texts.STATE_DIR))
    for folder in sorted(data.get("dirs", []), key=len, reverse=True):
        path = Path(folder)
        if not path.is_dir():
            continue
        if folder.startswith(state):
            host.echo(f"$ rm -r {path}")
            if not host.dry_run:
                shutil.rmtree(path, ignore_errors=True)
        elif not any(path.iterdir()):
            host.echo(f"$ rmdir {path}")
            if not host.dry_run:
                path.rmdir()


def remove_accounts(host: Host, data: dict) -> None:
    for user, group in data.get("memberships", []):
        if user not in data.get("users", []) and group not in data.get("groups", []):
            host.remove_from_group(user, group)
    for user in data.get("users", []):
        host.remove_user(user)
    for group in data.get("groups", []):
        if _exists_group(group):
            host.remove_group(group)
