"""``py3sidecar ignition-bundle OUT``: everything an integrator drops into an Ignition gateway.

Owns: copying the Jython script library (``ignition-scripts/``) as a project folder and as a
project zip the gateway imports, collecting the jars the library needs, writing a systemd unit
for the sidecar. Must not touch: the sidecar's runtime (it only writes files).

Layout of OUT::

    project/                      the Ignition project folder (project.json + ignition/...)
    py3sidecar-project.zip        the same, as Gateway > Config > Projects > Import takes it
    jars/py4j<version>.jar        from the installed py4j package (Py4J transport)
    jars/msgpack-core.jar         msgpack-java (the library's codec), from /usr/share/java
    jars/py3sidecar-gateway.jar   the library's Java helper (codec hot paths), built from
                                  ignition-scripts/java by sidecar.gateway_jar (optional)
    jars/jeromq.jar               only with --zmq (ZeroMQ transport)
    systemd/py3sidecar.service    runs `py3sidecar serve` as the gateway's user
    grafana/py3sidecar.json       a Grafana dashboard over the sidecar's /metrics
    config.yml                    a starting config for /etc/py3sidecar/config.yml
    gateway-events/               message handler, timer and startup bodies (8.1: paste them)
    INSTALL.txt                   the steps, complete on their own
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = PROJECT_ROOT / "ignition-scripts"
JAVA_DIR = Path("/usr/share/java")
PROJECT_NAME = "py3sidecar"

PROJECT_JSON = {
    "title": "py3sidecar",
    "description": "python3.* script library: call CPython 3 through the py3sidecar service",
    "parent": "",
    "enabled": True,
    "inheritable": True,
}

SYSTEMD_UNIT = """\
[Unit]
Description=py3sidecar: CPython 3 workers for the Ignition gateway
After=network.target
# Start before the gateway so its first python3.* call finds the sidecar.
Before=ignition.service
# Restart=always below, but a sidecar that cannot start at all (a bad config) must not loop
# for ever: past 10 starts in 60 s systemd stops trying (`systemctl reset-failed py3sidecar`).
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
# The sidecar says READY=1 once it serves, STOPPING=1 when it stops, and WATCHDOG=1 from its
# event loop every WatchdogSec/2: a loop frozen for WatchdogSec is killed and restarted.
Type=notify
NotifyAccess=main
WatchdogSec=10
# The gateway reads the token file: run the sidecar as the gateway's user.
User={user}
Group={user}
StateDirectory=py3sidecar
StateDirectoryMode=0700
Environment=PY3SIDECAR_RUNTIME_DIR=/var/lib/py3sidecar/runtime
ExecStart={python} -m sidecar serve --config /etc/py3sidecar/config.yml
# SIGTERM drains calls in flight (python3.shutdown.drain-timeout), then stops the workers.
KillSignal=SIGTERM
TimeoutStopSec=30
# Whatever ends it (user code's os.kill(os.getppid(), 9), the OOM killer, a frozen loop, an
# operator's kill), it comes back; its workers die with it (PR_SET_PDEATHSIG).
Restart=always
RestartSec=1
# Held client connections must not exhaust descriptors (systemd's default soft limit is 1024).
LimitNOFILE=65536
NoNewPrivileges=true
# With python3.worker.user / python3.worker.group set, workers run as that account (user code
# can then neither signal the sidecar nor read its token); the sidecar needs these to start and
# stop them (each worker drops every capability before it runs user code):
#AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL

[Install]
WantedBy=multi-user.target
"""

CONFIG_YML = """\
# py3sidecar configuration; `py3sidecar config --print-default` shows every key.
python3:
  pool:
    initial-size: 2
    max-size: 4
  worker:
    paths: []              # your own Python 3 script folders
    preload: []            # modules imported at worker start (e.g. [pandas])
  bridge:
    py4j:
      enabled: true
      host: 127.0.0.1
      python-port: 25334   # py3sidecar.settings.PY4J_PYTHON_PORT (None: from connection.json)
    zmq:
      enabled: true
      endpoint: tcp://127.0.0.1:5557
"""

INSTALL_TXT = """\
py3sidecar for Ignition - install
=================================
Everything below runs on the gateway host, as root unless it says otherwise. The unit in
systemd/ runs the sidecar as {user}, the OS account of the Ignition service (set it with
`ignition-bundle --user`), so that the gateway can read the sidecar's token.

1. The sidecar's Python (a virtualenv the gateway's user can read, NOT under /root):
     python3 -m venv /opt/py3sidecar/venv
     /opt/py3sidecar/venv/bin/pip install py3sidecar      # plus your own packages (pandas...)
   The unit below runs {python}; write it again with
   `py3sidecar ignition-bundle OUT --python /opt/py3sidecar/venv/bin/python` if that is not it.
2. Folders and config:
     mkdir -p /etc/py3sidecar && cp config.yml /etc/py3sidecar/config.yml
   The unit's StateDirectory creates /var/lib/py3sidecar (mode 0700, owned by {user}); the
   sidecar writes its token (mode 0600) and connection.json into /var/lib/py3sidecar/runtime.
   Your own CPython modules: a folder readable by {user}, listed in python3.worker.paths of
   config.yml (edits there are picked up by themselves: python3.worker.reload).
3. The service:
     cp systemd/py3sidecar.service /etc/systemd/system/
     systemctl daemon-reload && systemctl enable --now py3sidecar
   Check it from the shell, as the gateway's user, with the runtime folder:
     sudo -u {user} env PY3SIDECAR_RUNTIME_DIR=/var/lib/py3sidecar/runtime \\
       {python} -m sidecar ping
     (prints the sidecar's pid and "state": "running"; `... -m sidecar health` for the pool)
4. Jars: copy jars/*.jar into <ignition>/lib/core/gateway/ and restart the gateway.
   (py3sidecar-gateway.jar is optional: the python3 library's codec in Java, Datasets above
   all; without it the library runs its pure-Jython codec.)
5. Project: Gateway webpage > Config > Projects > Import: py3sidecar-project.zip (name it
   py3sidecar, inheritable), and make your projects inherit from it - or copy project/ into
   <ignition>/data/projects/py3sidecar/. Settings: project library py3sidecar/settings
   (CONNECTION_FILE = /var/lib/py3sidecar/runtime/connection.json: ports and token file are
   read from it).
6. Gateway events (Designer > Project Browser > Scripting > Gateway Events of the py3sidecar
   project). On Ignition 8.1 these live in a binary resource: create them by hand, pasting the
   bodies from gateway-events/ of this bundle:
   - Message > new handler `py3sidecar`: body `return py3sidecar.gatewayroute.handle(payload)`
     (gateway-events/message-handler-py3sidecar.py). Designer, Script Console and Vision
     client code reach the sidecar only through this handler.
   - Timer > `py3sidecar-healthpoll`: 10000 ms, Fixed Delay, Dedicated thread, Enabled; body
     `py3sidecar.healthpoll.run()` (gateway-events/timer-healthpoll.py). Writes the health tags.
   - Startup: gateway-events/startup.py (warms the shared connection).
   On Ignition 8.3 the project already holds the timer as a resource
   (ignition/timer/py3sidecar-healthpoll); add the message handler and startup script as above.
   Security: the gateway route. Whoever can open a Vision client or the Designer of a project
   can call its message handlers (Ignition puts no client permission on sendRequest), so the
   sidecar grants what the handler relays only what python3.access.routed in config.yml
   allows: ping and health; `call` of the targets listed in allow-targets (e.g.
   ["mymodule:predict", "plant.models.*"]); execute (any code, as the sidecar's user) only with
   execute: true; diag, breaker and quarantine only with diag: true. Anything else raises
   python3.Forbidden, naming the key to set (the Script Console test of step 7 needs
   "statistics:mean" listed, or run it from a gateway script). Gateway scripts keep full
   access. The handler marks what it relays (route, project, and the user and client id the
   client claims, kept as "claimed:...": Ignition gives a handler only the payload); a client
   can neither send nor strip the mark. Restrict the handler itself as well: Ignition's message
   handler settings (Designer > Gateway Events > Message > modify `py3sidecar`) have a
   Security option naming the security zones and roles allowed to request it - allow only
   those that need python3 from a client. (Documented for 8.x message handlers; not checked
   on an 8.3 gateway: verify the option is there on yours.)
7. Test:
   - a gateway script, or the Script Console (it runs in the Designer and calls through the
     message handler of step 6; save the project first):
       print python3.call("statistics:mean", [[1, 2, 3]])      ->  2
       print python3.ping()
   - errors arrive as python3.PythonError (your code raised), python3.Timeout, ...; see the
     python3 library's docstrings.
"""


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


def systemd_unit(user: str = "ignition", python: str | None = None) -> str:
    """The unit file's text: runs ``python -m sidecar serve`` as ``user``."""
    return SYSTEMD_UNIT.format(user=user, python=python or sys.executable)


def build_bundle(out: str | Path, *, zmq: bool = False, user: str = "ignition",
                 python: str | None = None, java_dir: Path = JAVA_DIR,
                 check: bool = True) -> BundleReport:
    """Writes the bundle into ``out`` (created; existing bundle files are replaced)."""
    out = Path(out)
    report = BundleReport(out)
    out.mkdir(parents=True, exist_ok=True)
    write_project(out, report)
    write_jars(out / "jars", report, zmq=zmq, java_dir=java_dir)
    write_host_files(out, report, user=user, python=python)
    if check:
        from sidecar.bundle_checks import check_interpreter

        report.warnings += check_interpreter(python or sys.executable, user)
    report.files += [out / "config.yml", out / "INSTALL.txt"]
    return report


def write_project(out: Path, report: BundleReport) -> None:
    """The Ignition project: a folder to copy and the same as a zip to import."""
    project = out / "project"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(SCRIPTS / "ignition", project / "ignition",
                    ignore=shutil.ignore_patterns("*.class", "__pycache__", "*$py.class"))
    (project / "project.json").write_text(json.dumps(PROJECT_JSON, indent=2) + "\n")
    report.files.append(project)
    archive = out / "py3sidecar-project.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(project.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(project).as_posix())
    report.files.append(archive)


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
    from sidecar import gateway_jar

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


def write_host_files(out: Path, report: BundleReport, *, user: str,
                     python: str | None) -> None:
    """What goes on the gateway host: systemd unit, Grafana dashboard, config, install notes,
    gateway event scripts."""
    systemd = out / "systemd"
    systemd.mkdir(exist_ok=True)
    unit = systemd / "py3sidecar.service"
    unit.write_text(systemd_unit(user, python))
    report.files.append(unit)
    grafana = out / "grafana" / "py3sidecar.json"  # import into Grafana over Prometheus
    grafana.parent.mkdir(exist_ok=True)
    shutil.copy2(Path(__file__).with_name("grafana") / "py3sidecar.json", grafana)
    report.files.append(grafana)
    (out / "config.yml").write_text(CONFIG_YML)
    (out / "INSTALL.txt").write_text(INSTALL_TXT.format(user=user,
                                                        python=python or sys.executable))
    events = out / "gateway-events"
    if events.exists():
        shutil.rmtree(events)
    shutil.copytree(SCRIPTS / "gateway-events", events)
    report.files.append(events)
