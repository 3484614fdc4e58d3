"""Another tree's sidecar and client (the "before" of a before/after figure), run beside ours.

A sidecar from TREE (``PYTHONPATH=TREE``, as ``hop_before_after.BeforeSidecar``) is started
without this tree's client: 9f4ee9f's front is NULL ZeroMQ, today's client speaks PLAIN or
CURVE, so its readiness is learnt by TREE's own client, in ``benchmarks/client_driver.py`` run
with ``PYTHONPATH=TREE``. This tree's client is run the same way (a driver process with
``PYTHONPATH`` = this tree) so both clients are measured alike: the parent reads each driver's
CPU from ``/proc/<pid>/task/*/schedstat`` around a ``CALL N`` it sends.

Owns: starting those processes and the tree check. Must not touch: the library (it only runs
the trees' processes and their clients).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sidecar.testing import PROJECT_ROOT, SidecarProcess, wait_until

DRIVER = Path(__file__).resolve().parent / "client_driver.py"
PEER_DRIVER = DRIVER.parent / "peer_driver.py"
BEFORE_COMMIT = "9f4ee9f"


def before_tree_problem(tree: str | None) -> str | None:
    """Why TREE cannot be the before column (None: it can)."""
    if not tree:
        return "no --before tree given"
    root = Path(tree)
    if not (root / "sidecar" / "__main__.py").is_file() or not (root / "bridge").is_dir():
        return (f"{tree} holds no sidecar/ and bridge/ (make one with `git archive "
                f"{BEFORE_COMMIT} | tar -x -C {tree}`): the before column is skipped")
    return None


class TreeSidecar(SidecarProcess):
    """A sidecar run from TREE; readiness is left to TREE's client (``TreeClient``)."""

    def __init__(self, tree: str | Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tree = str(Path(tree).resolve())

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["PYTHONPATH"] = self.tree
        return env

    def start(self, timeout: float = 20.0) -> "TreeSidecar":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir))
        try:
            wait_until(lambda: self._read_connection() or self.proc.poll() is not None,
                       timeout, message="the before sidecar's connection file")
        except BaseException:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"the sidecar of {self.tree} exited with "
                               f"{self.proc.returncode}:\n{self.log()[-3000:]}")
        self.connection = self._read_connection() or {}
        return self

    def _read_connection(self) -> dict[str, Any] | None:
        import json

        try:
            data = json.loads(self.connection_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("pid") == self.proc.pid else None


class Driver:
    """A caller process on stdin/stdout (``client_driver.serve``'s commands), ``ready`` awaited."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, what: str,
                 timeout: float = 90.0, log: Any = None) -> None:
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.proc.pid
        self.timeout = timeout
        line = self._line()
        if line != "ready":
            self.close()
            raise RuntimeError(f"{what} did not get ready: {line!r}"
                               + (f"\nsidecar log:\n{log()[-2000:]}" if log else ""))

    def _line(self) -> str:
        import threading

        timer = threading.Timer(self.timeout, self.proc.kill)  # every wait has a deadline
        timer.start()
        try:
            return self.proc.stdout.readline().strip()
        finally:
            timer.cancel()

    def command(self, text: str) -> str:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._line()

    def calls(self, n: int) -> None:
        if self.command(f"CALL {n}") != "done":
            raise RuntimeError(f"client driver {self.pid} failed during CALL {n}")

    def rate(self, threads: int, seconds: float) -> float:
        return self.window(threads, seconds)[0]

    def window(self, threads: int, seconds: float) -> tuple[float, int, float]:
        """(calls/s, calls, seconds) of ``RATE threads seconds``."""
        rate, calls, elapsed = self.command(f"RATE {threads} {seconds}").split()
        return float(rate), int(calls), float(elapsed)

    def cpu_ns(self) -> int:
        """The driver's own CPU time (every thread it ever ran), ns."""
        return int(self.command("CPU"))

    def replies(self, n: int, size: int) -> None:
        if self.command(f"BYTES {n} {size}") != "done":
            raise RuntimeError(f"client driver {self.pid} failed during BYTES {n} {size}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


class TreeClient(Driver):
    """``benchmarks/client_driver.py`` with ``PYTHONPATH=tree``, calling ``sidecar``."""

    def __init__(self, tree: str | Path, sidecar: SidecarProcess, workers: int,
                 own_tree: bool = False, timeout: float = 90.0, ready_s: float = 60.0,
                 endpoint: str | None = None) -> None:
        argv = [sys.executable, str(DRIVER), endpoint or sidecar.endpoint, sidecar.token,
                str(workers)]
        if own_tree:  # today's client learns PLAIN/CURVE from the connection file
            argv.append(str(sidecar.connection_file))
        env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()),
                   PY3SIDECAR_BENCH_READY_S=str(ready_s))
        super().__init__(argv, env, str(sidecar.workdir), f"the client of {tree}", timeout,
                         sidecar.log)


class PeerCaller(Driver):
    """``benchmarks/peer_driver.py``: ProcessPoolExecutor (``ppe``) or multiprocessing.Pool
    (``mp_pool``) of ``workers``, driven by the same commands; its workers are its children."""

    def __init__(self, kind: str, workers: int, timeout: float = 90.0) -> None:
        super().__init__([sys.executable, str(PEER_DRIVER), kind, str(workers)],
                         dict(os.environ), str(DRIVER.parent), f"the {kind} caller", timeout)


def start_pair(tree: str, config: dict[str, Any], workers: int
               ) -> tuple[dict[str, SidecarProcess], dict[str, TreeClient]]:
    """{"after": ..., "before": ...} sidecars (ours, TREE's) and their own trees' clients."""
    sidecars: dict[str, SidecarProcess] = {}
    clients: dict[str, TreeClient] = {}
    try:
        sidecars["after"] = SidecarProcess(config, ready_workers=workers).start()
        clients["after"] = TreeClient(PROJECT_ROOT, sidecars["after"], workers, own_tree=True)
        unix = (sidecars["after"].connection.get("unix") or {}).get("endpoint")
        if unix:  # the same sidecar through its Unix socket (python3.bridge.unix)
            clients["after_unix"] = TreeClient(PROJECT_ROOT, sidecars["after"], workers,
                                               own_tree=True, endpoint=unix)
        sidecars["before"] = TreeSidecar(tree, config).start()
        clients["before"] = TreeClient(tree, sidecars["before"], workers)
    except BaseException:
        stop_pair(sidecars, clients)
        raise
    return sidecars, clients


def stop_pair(sidecars: dict[str, SidecarProcess], clients: dict[str, TreeClient]) -> None:
    for client in clients.values():
        client.close()
    for sidecar in sidecars.values():
        sidecar.stop()
