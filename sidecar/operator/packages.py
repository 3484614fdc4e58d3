"""Packages per pool: pip in the pool's own virtualenv, one operation at a time, bounded in time.

Owns: deciding whether a pool's interpreter may be changed (only a virtualenv of its own, never
the sidecar's environment), running ``python -m pip`` there (list, install, uninstall, download)
in the calling thread (an HTTP thread, never the loop's), a lock so that operations run one at a
time, the time bound, and pip's output line by line in the sidecar's log. Must not touch: the
pool (the caller renews its workers after a change, in the loop thread), HTTP.

Air-gapped plants: ``download -d DIR`` on a machine with an index makes a wheelhouse; carried
in, ``install --no-index --find-links DIR NAME`` takes it. pip installs into a temporary
location and moves into place only when everything resolved, so a failed install (a missing
wheel, say) leaves the virtualenv as it was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from sidecar.operator.operations import ActionError
from sidecar.routing.registry import PRIMARY

log = logging.getLogger("py3sidecar.packages")

ACTIONS = ("list", "install", "uninstall", "download")
CHANGES = ("install", "uninstall")   # after these, the pool's workers are renewed
PIP_TIMEOUT = 600.0    # seconds an install/download may take (default)
LIST_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
TAIL_LINES = 60        # pip's last lines, in the answer (all of them go to the log)


def virtualenv_key(pool: str) -> str:
    return ("python3.worker.virtualenv" if pool == PRIMARY
            else f"python3.pools.{pool}.worker.virtualenv")


def pool_interpreter(pool: str, python: list[str]) -> list[str]:
    """The command that runs the pool's interpreter, if it is a virtualenv of the pool's own;
    ActionError 400 with advice otherwise."""
    exe = shutil.which(python[0]) or python[0]
    venv = Path(os.path.abspath(exe)).parent.parent
    advice = (f"make a virtualenv for it (`python3 -m venv /opt/py3sidecar/venvs/{pool}`, then "
              f"install msgpack there) and set {virtualenv_key(pool)} to that folder")
    if not (venv / "pyvenv.cfg").is_file():
        raise ActionError(400, f"pool {pool!r} runs {exe}, which is not a virtualenv: its "
                          f"packages are not the pool's own to change; {advice}")
    own = Path(os.path.abspath(sys.prefix))
    if venv == own or (own.exists() and os.path.samefile(venv, own)):
        raise ActionError(400, f"pool {pool!r} runs the sidecar's own environment ({own}): "
                          f"installing there would change the sidecar itself; {advice}")
    return [exe, *python[1:]]


def pip_environment() -> dict[str, str]:
    """pip sees the virtualenv alone: not the sidecar's PYTHONPATH, user site or pip config."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP") and not k.startswith("PIP_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1", PIP_NO_INPUT="1")
    return env


def check_arguments(action: str, args: Any) -> list[str]:
    if action not in ACTIONS:
        raise ActionError(400, f"unknown packages action {action!r}; expected one of "
                          f"{', '.join(ACTIONS)}")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ActionError(400, "'args' must be a list of strings (pip's arguments)")
    if action in ("install", "uninstall", "download") and not [a for a in args
                                                               if not a.startswith("-")]:
        raise ActionError(400, f"packages {action} needs at least one package (or -r FILE)")
    if action == "download" and not any(a in ("-d", "--dest") or a.startswith("--dest=")
                                        or a.startswith("-d") and len(a) > 2 for a in args):
        raise ActionError(400, "packages download needs -d DIR: the wheelhouse folder to fill")
    return list(args)


class PackageManager:
    """One per sidecar: ``run(pool, python, action, args)`` in the caller's thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: str = ""

    def list(self, pool: str, python: list[str]) -> list[dict[str, str]]:
        command = [*pool_interpreter(pool, python), "-m", "pip", "list", "--format", "json"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=pip_environment(),
                                  timeout=LIST_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ActionError(504, f"pip list in pool {pool!r} did not finish within "
                              f"{LIST_TIMEOUT:g}s") from None
        if done.returncode != 0:
            raise ActionError(500, f"pip list in pool {pool!r} failed ({done.returncode}): "
                              f"{done.stderr.strip()[-500:]}")
        return [{"name": p["name"], "version": p["version"]} for p in json.loads(done.stdout)]

    def run(self, pool: str, python: list[str], action: str, args: Any,
            timeout: float = PIP_TIMEOUT) -> dict[str, Any]:
        args = check_arguments(action, args)
        interpreter = pool_interpreter(pool, python)
        if action == "list":
            return {"ok": True, "pool": pool, "packages": self.list(pool, python)}
        if action == "uninstall" and "-y" not in args and "--yes" not in args:
            args = ["-y", *args]
        if not self.lock.acquire(blocking=False):
            raise ActionError(409, f"a package operation is running ({self.running}); they "
                              "run one at a time: try again when it has finished")
        try:
            self.running = f"pip {action} in pool {pool!r}"
            return self._pip(pool, [*interpreter, "-m", "pip", action, *args], action,
                             min(max(timeout, 1.0), MAX_TIMEOUT))
        finally:
            self.running = ""
            self.lock.release()

    def _pip(self, pool: str, command: list[str], action: str, timeout: float) -> dict[str, Any]:
        log.info("packages: pool %s: %s", pool, " ".join(command))
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace",
                                env=pip_environment(), start_new_session=True)

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip()
                if line:
                    tail.append(line)
                    log.info("pip %s [%s]: %s", action, pool, line)
        reader = threading.Thread(target=read, name="py3sidecar-pip", daemon=True)
        reader.start()
        timed_out = False
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                code = proc.wait(5.0)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                code = proc.wait(5.0)
        reader.join(5.0)
        ok = code == 0 and not timed_out
        if timed_out:
            message = (f"pip {action} in pool {pool!r} did not finish within {timeout:g}s and "
                       "was stopped; pip moves files into place last, so the virtualenv keeps "
                       "what it had")
        elif ok:
            message = f"pip {action} in pool {pool!r} succeeded"
        else:
            message = (f"pip {action} in pool {pool!r} failed (exit {code}); the virtualenv "
                       "keeps what it had: see pip's output")
        (log.info if ok else log.error)("packages: %s", message)
        return {"ok": ok, "pool": pool, "action": action, "returncode": code,
                "timed_out": timed_out, "message": message, "output": list(tail)}
