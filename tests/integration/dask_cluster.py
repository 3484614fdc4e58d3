"""A real Dask cluster on loopback for tests and benchmarks: a ``dask scheduler`` and N
``dask worker`` processes (no nanny, one thread each), every wait with a deadline.

Owns: starting, finding and stopping those processes. Must not touch: the sidecar.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DASK = str(Path(sys.executable).parent / "dask")
ENV = {**os.environ,
       "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",  # a lost worker: KilledWorker at once
       "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s",
       "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class Cluster:
    """``tls``: (ca, cert, key) PEM paths: every process talks tls:// with those files."""

    def __init__(self, workers: int = 2, log_dir: Path | None = None,
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{self.port}"
        self.n_workers = workers
        self.log_dir = log_dir
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.log", "ab") if self.log_dir else subprocess.DEVNULL  # noqa: SIM115
        return subprocess.Popen([DASK, *args], env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        ca, cert, key = self.tls
        return ["--tls-ca-file", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)]

    def security(self):
        if self.tls is None:
            return None
        from distributed.security import Security

        ca, cert, key = self.tls
        return Security(tls_ca_file=str(ca), tls_client_cert=str(cert), tls_client_key=str(key),
                        require_encryption=True)

    def start_scheduler(self) -> None:
        protocol = ["--protocol", "tls", *self.tls_args()] if self.tls else []
        self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--no-dashboard", *protocol], "scheduler")
        wait_port(self.port, time.monotonic() + 30)

    def start_worker(self) -> subprocess.Popen:
        worker = self._spawn(["worker", self.address, "--nthreads", "1", "--no-nanny",
                              "--no-dashboard", "--host", "127.0.0.1", *self.tls_args()],
                             f"worker{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def start(self) -> Cluster:
        self.start_scheduler()
        for _ in range(self.n_workers):
            self.start_worker()
        self.wait_workers(self.n_workers, time.monotonic() + 60)
        return self

    def wait_workers(self, n: int, deadline: float) -> None:
        from distributed import Client

        with Client(self.address, timeout=10, security=self.security()) as client:
            client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            stop(self.scheduler)

    def close(self) -> None:
        for proc in self.workers:
            stop(proc)
        self.stop_scheduler()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
