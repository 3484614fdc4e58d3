"""Covers: ignition-scripts/ignition/script-python/py3sidecar/unixlink,
    ignition-scripts/ignition/script-python/py3sidecar/endpoints,
    ignition-scripts/java/com/py3sidecar/gateway/UnixPool.java,
    ignition-scripts/java/com/py3sidecar/gateway/UnixConnection.java.

TRANSPORT = 'unix' from real Jython 2.7 (the helper jar's UnixPool) against a real sidecar's
Unix-socket front: values both ways (the helper jar's Caller serves a success without a Jython
attempt), each error kind, the call's deadline (a TEST DOUBLE of a front that reads and never
answers: the connection is closed at the deadline), a sidecar killed mid-call (``sent: True``),
a restart between calls (the pooled connection's request goes out once more on a fresh one),
a wrong token, and a connection file without a Unix endpoint (the error names TRANSPORT and
the front's ``unix.error``); also: 8 MiB frames leave no JDK direct buffer of that size on the
thread, project saves leak no sockets, and a transport closed under a call (a save) ends it as
``LinkLost``, over ZeroMQ's PLAIN dealer too. Cases: tests/jython/jy/cases_unix.py, in one
JVM; and in a JVM without the helper jar, the error that names TRANSPORT and the jar
(cases_unix_nojar.py).
"""
from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from sidecar.testing import SidecarProcess, wait_until

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_unix.py"
NOJAR_CASES = jvm.JY / "cases_unix_nojar.py"
CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
          "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False},
          "health": {"enabled": False}}


class SilentFront:
    """TEST DOUBLE of the Unix-socket front: accepts, reads every request, never answers;
    counts the connections the client closed (what a deadline must do)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.closed_by_client = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self.drain, args=(conn,), daemon=True).start()

    def drain(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            while conn.recv(65536):
                pass
            self.closed_by_client += 1
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture(scope="module")
def unix_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("jy_unix")
    sidecar = SidecarProcess(CONFIG, workdir=str(work / "sidecar"))
    sidecar.start()
    silent = SilentFront(str(work / "silent.sock"))
    token_file = str(sidecar.runtime_dir / "token")
    files = {}
    for name, unix in (("silent", {"path": silent.path, "endpoint": f"unix:{silent.path}"}),
                       ("disabled", None),
                       ("failing", {"path": str(work / "x.sock"),
                                    "error": "cannot listen on x.sock (Address in use)"})):
        path = work / f"{name}.json"
        path.write_text(json.dumps({"version": 1, "pid": 1, "token_file": token_file,
                                    "zmq": None, "py4j": None, "unix": unix}))
        files[name] = str(path)

    def control(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "info":
            return {"files": files, "connection_file": str(sidecar.connection_file)}
        if cmd in ("kill", "busy"):  # once a call is running in the worker (then SIGKILL)
            wait_until(lambda: any(w["state"] == "busy" for w in sidecar.pool()["workers"]),
                       10, message="a busy worker")
            if cmd == "busy":
                return None
            sidecar.proc.kill()
            sidecar.proc.wait(10)
            sidecar.stop()
            return None
        if cmd == "restart":
            sidecar.stop()
            sidecar.start()
            return sidecar.connection["unix"]
        if cmd == "idle":
            return all(w["state"] != "busy" for w in sidecar.pool()["workers"])
        if cmd == "closed-by-client":
            return silent.closed_by_client
        raise ValueError(f"unknown control command {cmd!r}")

    settings = {"CONNECTION_FILE": str(sidecar.connection_file), "CONNECT_TIMEOUT_MS": 1000,
                "TRANSPORT": "unix"}
    try:
        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps(settings)}, timeout=120,
                                control=control)
    finally:
        silent.close()
        sidecar.stop()
    return results


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_unix(unix_run, name):
    jvm.assert_case_passed(unix_run, "cases_unix", name)


@pytest.fixture(scope="module")
def nojar_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("jy_unix_nojar")
    connection = work / "connection.json"
    connection.write_text(json.dumps({"version": 1, "pid": 1, "token_file": None, "zmq": None,
                                      "py4j": None, "unix": {"path": str(work / "s.sock"),
                                                             "endpoint": f"unix:{work}/s.sock"}}))
    settings = {"CONNECTION_FILE": str(connection), "TRANSPORT": "unix", "TOKEN": "t",
                "CONNECT_TIMEOUT_MS": 500, "CONTROL_TIMEOUT_MS": 500}
    return jvm.run_cases([NOJAR_CASES], {"PY3_SETTINGS": json.dumps(settings)}, timeout=90,
                         jars=jvm.gateway_jars(helper=False, basic_dataset=False))


@pytest.mark.parametrize("name", jvm.case_names(NOJAR_CASES))
def test_jython_unix_without_the_helper_jar(nojar_run, name):
    jvm.assert_case_passed(nojar_run, "cases_unix_nojar", name)
