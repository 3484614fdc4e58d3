"""``py3sidecar ignition-bundle OUT``: everything an integrator drops into an Ignition gateway.

Owns: putting the bundle together: the two Ignition projects (``sidecar/deploy/gateway_project.py``)
as folders and zips, the jars the library needs, the host files (``sidecar/deploy/bundle_texts.py``)
and INSTALL.txt (``sidecar/deploy/bundle_install_text.py``). Must not touch: the sidecar's runtime
(it only writes files), the host (``py3sidecar install`` copies from here:
``sidecar/install/plan.py``).

Layout of OUT::

    project/                      the script library py3sidecar (inheritable)
    py3sidecar-project.zip        the same, as the gateway imports it
    gateway-project/              py3sidecar-gateway, its runnable child, with the 8.3 event
                                  resources (timer, message handler, startup)
    py3sidecar-gateway-project.zip       the same (8.3)
    py3sidecar-gateway-project-8.1.zip   project.json only (8.1: paste the events in)
    jars/py4j<version>.jar        from the installed py4j package (Py4J transport)
    jars/msgpack-core.jar         msgpack-java (the library's codec), from /usr/share/java
    jars/py3sidecar-gateway.jar   the library's Java helper (codec hot paths), built from
                                  ignition-scripts/java by sidecar.deploy.gateway_jar (optional)
    jars/jeromq.jar               only with --zmq (ZeroMQ transport)
    systemd/py3sidecar.service    runs `py3sidecar serve` as its own account
    grafana/py3sidecar.json       a Grafana dashboard over the sidecar's /metrics
    config.yml                    a starting config for /etc/py3sidecar/config.yml
    ignition-site.json            a starting /etc/py3sidecar/ignition-site.json (site settings)
    gateway-events/               message handler, timer and startup bodies (8.1: paste them)
    INSTALL.txt                   the steps, complete on their own
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.deploy import gateway_project as gp
from sidecar.deploy.bundle_install_text import INSTALL_TXT
from sidecar.deploy.bundle_texts import (
    DEFAULT_GATEWAY_UNIT,
    DEFAULT_SIDECAR_USER,
    DEFAULT_TOKEN_GROUP,
    DEFAULT_WORKER_USER,
    config_yml,
    systemd_unit,
)

PROJECT_ROOT = gp.PROJECT_ROOT
SCRIPTS = gp.SCRIPTS
JAVA_DIR = Path("/usr/share/java")
PROJECT_NAME = gp.LIBRARY_NAME
PROJECT_JSON = gp.LIBRARY_JSON
LIBRARY_ZIP = "py3sidecar-project.zip"
GATEWAY_ZIPS = {"8.3": "py3sidecar-gateway-project.zip",
                "8.1": "py3sidecar-gateway-project-8.1.zip"}
SITE_SETTINGS = {"CONNECTION_FILE": "/var/lib/py3sidecar/runtime/connection.json"}
__all__ = ["build_bundle", "systemd_unit", "py4j_jar", "BundleReport", "DEFAULT_GATEWAY_UNIT"]


@dataclass
class BundleReport:
    out: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the unit would not run as written


def py4j_jar() -> Path:
    from py4j.java_gateway import find_jar_path

    path = find_jar_path()
    if not path:
        raise FileNotFoundError("the py4j jar (share/py4j/py4j*.jar of the installed py4j "
                                "package) was not found; reinstall py4j")
    return Path(path)


def build_bundle(out: str | Path, *, zmq: bool = False, user: str = DEFAULT_SIDECAR_USER,
                 python: str | None = None, java_dir: Path = JAVA_DIR, check: bool = True,
                 gateway_unit: str = DEFAULT_GATEWAY_UNIT,
                 worker_user: str = DEFAULT_WORKER_USER,
                 group: str = DEFAULT_TOKEN_GROUP) -> BundleReport:
    """Writes the bundle into ``out`` (created; existing bundle files are replaced). ``user``:
    the sidecar's own account; ``group``: the token group the gateway's account joins."""
    out = Path(out)
    report = BundleReport(out)
    out.mkdir(parents=True, exist_ok=True)
    write_project(out, report)
    write_jars(out / "jars", report, zmq=zmq, java_dir=java_dir)
    write_host_files(out, report, user=user, python=python, gateway_unit=gateway_unit,
                     worker_user=worker_user, group=group)
    if check:
        from sidecar.deploy.bundle_checks import check_interpreter

        report.warnings += check_interpreter(python or sys.executable, user)
    report.files += [out / "config.yml", out / "INSTALL.txt"]
    return report


def write_project(out: Path, report: BundleReport) -> None:
    """The two Ignition projects: folders to copy and zips to import (the 8.1 child is only
    its project.json: 8.1 gateway events are pasted into the Designer)."""
    library = gp.write_library(out / "project")
    report.files += [library, gp.zip_project(library, out / LIBRARY_ZIP)]
    scratch = gp.write_gateway_project(out / ".gateway-project-8.1", "8.1")
    report.files.append(gp.zip_project(scratch, out / GATEWAY_ZIPS["8.1"]))
    shutil.rmtree(scratch)
    folder = gp.write_gateway_project(out / "gateway-project", "8.3")
    report.files += [folder, gp.zip_project(folder, out / GATEWAY_ZIPS["8.3"])]


def write_jars(jars: Path, report: BundleReport, *, zmq: bool, java_dir: Path) -> None:
    """The gateway's jars: py4j always, msgpack-core, the helper jar (built when stale), JeroMQ
    with ``--zmq``; a missing one is a note that says which Debian package has it."""
    if jars.exists():
        shutil.rmtree(jars)
    jars.mkdir()
    src = py4j_jar()
    shutil.copy2(src, jars / src.name)
    report.files.append(jars / src.name)
    wanted = [("msgpack-core.jar", "libmsgpack-java", "the python3 library's codec")]
    if zmq:
        wanted.append(("jeromq.jar", "libjeromq-java", "TRANSPORT = 'zmq'"))
    for name, package, why in wanted:
        jar = java_dir / name
        if jar.exists():
            shutil.copy2(jar.resolve(), jars / name)
            report.files.append(jars / name)
        else:
            report.notes.append(
                f"{name} ({why}) is not in {java_dir}: install the Debian package {package} "
                f"and run this again, or put that jar into {jars} yourself")
    from sidecar.deploy import gateway_jar

    try:
        helper = gateway_jar.ensure_jar(java_dir=java_dir)
    except gateway_jar.BuildError as exc:
        report.notes.append(f"{exc}. Without {gateway_jar.JAR_NAME} the python3 library runs its "
                            "pure-Jython codec: the same calls, slower (Datasets most)")
    else:
        shutil.copy2(helper, jars / helper.name)
        report.files.append(jars / helper.name)
    if not zmq:
        report.notes.append("JeroMQ not included (the default transport is py4j); add --zmq "
                            "for TRANSPORT = 'zmq'")


def write_host_files(out: Path, report: BundleReport, *, user: str, python: str | None,
                     gateway_unit: str = DEFAULT_GATEWAY_UNIT,
                     worker_user: str = DEFAULT_WORKER_USER,
                     group: str = DEFAULT_TOKEN_GROUP) -> None:
    """What goes on the gateway host: systemd unit, Grafana dashboard, config, site settings,
    install notes, gateway event scripts."""
    systemd = out / "systemd"
    systemd.mkdir(exist_ok=True)
    unit = systemd / "py3sidecar.service"
    unit.write_text(systemd_unit(user, python, group=group, gateway_unit=gateway_unit,
                                 worker_user=worker_user))
    report.files.append(unit)
    grafana = out / "grafana" / "py3sidecar.json"  # import into Grafana over Prometheus
    grafana.parent.mkdir(exist_ok=True)
    shutil.copy2(Path(__file__).parents[1] / "observability" / "grafana" / "py3sidecar.json",
                 grafana)
    report.files.append(grafana)
    (out / "config.yml").write_text(config_yml(worker_user, group))
    (out / "ignition-site.json").write_text(json.dumps(SITE_SETTINGS, indent=2) + "\n")
    report.files.append(out / "ignition-site.json")
    (out / "INSTALL.txt").write_text(install_text(user=user, python=python,
                                                  worker_user=worker_user, group=group))
    events = out / "gateway-events"
    if events.exists():
        shutil.rmtree(events)
    shutil.copytree(SCRIPTS / "gateway-events", events)
    report.files.append(events)


def install_text(*, user: str = DEFAULT_SIDECAR_USER, python: str | None = None,
                 worker_user: str = DEFAULT_WORKER_USER, group: str = DEFAULT_TOKEN_GROUP) -> str:
    return INSTALL_TXT.format(user=user, python=python or sys.executable,
                              worker_user=worker_user, group=group)
