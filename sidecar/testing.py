"""Run a real sidecar process for tests, benchmarks and integration checks.

Owns: starting ``python -m sidecar serve`` on a free loopback port with its own runtime folder
and config, waiting (with a deadline) until it answers, and stopping it. Must not touch the
sidecar's internals: everything goes through the process and the wire.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bridge.client import Client
from bridge.protocol import SidecarError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.01,
               message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not reached within {timeout:g}s")
        time.sleep(interval)


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class SidecarProcess:
    """A real ``py3sidecar serve`` in a child process.

    ``overrides`` is merged under ``python3:`` of the config file it writes.
    """

    def __init__(self, overrides: dict | None = None, *, workdir: str | None = None,
                 ready_workers: int | None = None, py4j_port: int | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="py3sidecar-test-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        # Never the fixed default 25334: tests run side by side. 0 = the sidecar picks one
        # (read it from ``py4j_port`` after start, learnt from the connection file).
        py4j_port = free_port() if py4j_port is None else py4j_port
        base = {"bridge": {"zmq": {"endpoint": self.endpoint},
                           "py4j": {"python-port": py4j_port}},
                "shutdown": {"drain-timeout": "2s"}, "logging": {"level": "INFO"},
                # Never the fixed default 5558 either: the URL is in the connection file.
                "http": {"port": 0}}
        self.config = {"python3": deep_merge(base, overrides or {})}
        self.config_path = self.workdir / "config.yml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.runtime_dir = self.workdir / "runtime"
        self.log_path = self.workdir / "sidecar.log"
        self.ready_workers = ready_workers
        self.preexec_fn = preexec_fn  # e.g. to start it with a lower resource limit
        self.proc: subprocess.Popen | None = None
        self.connection: dict[str, Any] = {}
        self._clients: list[Client] = []
        self._probe: Client | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PY3SIDECAR_RUNTIME_DIR"] = str(self.runtime_dir)
        env.pop("PY3SIDECAR_TOKEN", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    @property
    def token(self) -> str:
        return (self.runtime_dir / "token").read_text().strip()

    @property
    def connection_file(self) -> Path:
        return self.runtime_dir / "connection.json"

    @property
    def py4j_port(self) -> int | None:
        """The port the Py4J front listens on (None when it is disabled)."""
        return (self.connection.get("py4j") or {}).get("python_port")

    @property
    def http_url(self) -> str | None:
        """The HTTP endpoints' base URL (None when disabled or not bound)."""
        return (self.connection.get("http") or {}).get("url")

    def _read_connection(self) -> dict[str, Any] | None:
        from bridge.connection import read_connection_file

        data = read_connection_file(self.connection_file)
        # A file left by a killed predecessor names another pid: wait for this one's.
        return data if data and data.get("pid") == self.proc.pid else None

    def command(self) -> list[str]:
        """How the sidecar is started (a test may run it through setpriv, say)."""
        return [sys.executable, "-m", "sidecar", "serve", "--config", str(self.config_path)]

    def start(self, timeout: float = 20.0) -> "SidecarProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(self.workdir),
            preexec_fn=self.preexec_fn)
        wait_until(lambda: self._read_connection() or self.proc.poll() is not None,
                   timeout, message="connection file")
        if self.proc.poll() is not None:
            raise RuntimeError(f"sidecar exited with {self.proc.returncode}:\n{self.log()}")
        self.connection = self._read_connection() or {}
        want = self.ready_workers
        if want is None:
            want = self.config["python3"].get("pool", {}).get("initial-size", 2)
        probe = self.probe()
        try:
            wait_until(lambda: self._ready_workers(probe) >= want, timeout,
                       message=f"{want} ready workers")
        except BaseException:
            self.stop()  # a sidecar that never got ready must not outlive the failed test
            raise
        return self

    def probe(self) -> Client:
        """The one client the helpers below share (not one per helper call)."""
        if self._probe is None:
            self._probe = self.client(timeout=5.0)
        return self._probe

    def _ready_workers(self, client: Client) -> int:
        if self.proc.poll() is not None:
            raise RuntimeError(f"sidecar exited with {self.proc.returncode}:\n{self.log()}")
        try:
            pool = client.health()["pool"]
        except SidecarError:
            return -1
        # Members only: a warm spare is "idle" in workers_by_state but serves no call.
        return sum(1 for w in pool["workers"]
                   if w["role"] == "member" and w["state"] in ("idle", "busy"))

    def client(self, timeout: float = 10.0, **kwargs: Any) -> Client:
        kwargs.setdefault("connection_file", str(self.connection_file))  # CURVE: its key
        client = Client(self.endpoint, self.token, timeout=timeout, **kwargs)
        self._clients.append(client)
        return client

    def authenticate(self, sock: Any) -> Any:
        """Gives a test's raw ZeroMQ socket the handshake's credentials (PLAIN with the token,
        or CURVE with the server key from the connection file): call before ``connect``."""
        from bridge.zmq_auth import client_security

        key = ((self.connection.get("zmq") or {}).get("curve") or {}).get("server-key")
        client_security(self.token, key).apply(sock)
        return sock

    def pool(self) -> dict[str, Any]:
        return self.probe().health()["pool"]

    def wait_full_strength(self, size: int, timeout: float = 10.0) -> dict[str, Any]:
        probe = self.probe()
        wait_until(lambda: self._ready_workers(probe) >= size, timeout,
                   message=f"pool back to {size} ready workers")
        return probe.health()["pool"]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._probe = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "SidecarProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
