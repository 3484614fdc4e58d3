"""The host files of the bundle and of ``py3sidecar install``: the systemd unit and config.yml.

Owns: their text and the values filled in (the interpreter that runs the command, the sidecar's
account and token group, the gateway unit it starts before, the worker account). Must not touch:
where they are written (``sidecar/deploy/bundle.py``, ``sidecar/install/plan.py``).
"""

from __future__ import annotations

import sys

DEFAULT_SIDECAR_USER = "py3sidecar"
DEFAULT_WORKER_USER = "py3sidecar-worker"
DEFAULT_TOKEN_GROUP = "py3sidecar-clients"
DEFAULT_GATEWAY_UNIT = "Ignition-Gateway.service"  # the Linux installer's, usually (reported)
STATE_DIR = "/var/lib/py3sidecar"

SYSTEMD_UNIT = """\
[Unit]
Description=py3sidecar: CPython 3 workers for the Ignition gateway
After=network.target
# Start before the gateway so its first python3.* call finds the sidecar.
Before={gateway_unit}
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
# Its own account, not the gateway's (whose data/ folder holds the config database and the
# certificates). Group: the token group; the gateway's user is a member, so it reads the token
# (mode 0640, python3.bridge.token-group) and connection.json, and nobody else does.
User={user}
Group={group}
StateDirectory=py3sidecar
StateDirectoryMode=0750
Environment=PY3SIDECAR_RUNTIME_DIR={state_dir}/runtime
ExecStart={python} -m sidecar serve --config {config}
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
# Workers run as python3.worker.user ({worker_user}): user code can neither signal the
# sidecar nor read its token. Starting and stopping them needs these (each worker drops every
# capability before it runs user code):
{caps}AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL

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
    user: {worker_user}   # user code runs as this account (`py3sidecar install` creates it)
    group: {worker_user}
  bridge:
    token-group: {group}   # the token file is 0640 in this group (the gateway's user is in it)
    py4j:
      enabled: true
      host: 127.0.0.1
      python-port: 25334   # py3sidecar.settings.PY4J_PYTHON_PORT (None: from connection.json)
    zmq:
      enabled: true
      endpoint: tcp://127.0.0.1:5557
"""


def systemd_unit(user: str = DEFAULT_SIDECAR_USER, python: str | None = None, *,
                 group: str | None = None, gateway_unit: str = DEFAULT_GATEWAY_UNIT,
                 worker_user: str = DEFAULT_WORKER_USER, state_dir: str = STATE_DIR,
                 config: str = "/etc/py3sidecar/config.yml") -> str:
    """The unit file's text: runs ``python -m sidecar serve`` (default: this interpreter)."""
    return SYSTEMD_UNIT.format(user=user, group=group or user, python=python or sys.executable,
                               gateway_unit=gateway_unit, worker_user=worker_user or "unset",
                               caps="" if worker_user else "#", state_dir=state_dir,
                               config=config)


def config_yml(worker_user: str = DEFAULT_WORKER_USER, group: str = DEFAULT_TOKEN_GROUP) -> str:
    return CONFIG_YML.format(worker_user=worker_user or "''", group=group or "''")
