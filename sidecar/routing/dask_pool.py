"""A pool backed by a Dask cluster: calls run on Dask workers instead of local processes.

Owns: one ``distributed.Client`` (asynchronous, on a private asyncio loop in its own thread),
connecting and re-connecting to the scheduler, submitting each call's request envelope as
``sidecar.worker.main.run_request`` (the local worker's execution and reply building), mapping
Dask's failures to the protocol's error kinds, the calls in flight and the cluster health snapshot.
Must not touch: config parsing and routing (``sidecar.config.model``/``sidecar.service``), local
worker processes, the fronts. The sidecar's loop thread never blocks here: it only hands work to
the Dask thread (``call_soon_threadsafe`` on the asyncio loop) and receives answers back the
same way (``Loop.call_soon_threadsafe``); every Dask object is touched on the Dask thread only.

Why an asynchronous Client on our own thread rather than a synchronous Client: with one thread
that owns every Dask object there are no locks, no callbacks in Dask's executor threads, and
connecting, cancelling and the periodic ``scheduler_info`` all run there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge import protocol
from bridge.codec import pack_raw, splice_success, unpack_raw
from sidecar.supervision.health import HEALTHY, UNHEALTHY
from sidecar.worker.main import run_request

if TYPE_CHECKING:
    from sidecar.loop import Loop
    from sidecar.pool.call import Call

log = logging.getLogger("py3sidecar.dask")

HEALTH_INTERVAL = 1.0  # seconds between scheduler_info refreshes and reconnect attempts
DASK_WORKER_ID = -1  # the reply's ``worker`` member: not a local worker


@dataclass(frozen=True)
class DaskPoolSettings:
    name: str
    address: str
    connect_timeout: float = 5.0
    max_in_flight: int = 1000
    tls_ca_file: str = ""    # a tls:// address: distributed's Security from these three
    tls_cert_file: str = ""
    tls_key_file: str = ""

    def security(self) -> Any:
        """``distributed.security.Security`` for a ``tls://`` scheduler (encryption required,
        the cluster's CA trusted, this client's certificate shown), else None."""
        if not self.address.startswith("tls://"):
            return None
        from distributed.security import Security

        return Security(tls_ca_file=self.tls_ca_file, tls_client_cert=self.tls_cert_file,
                        tls_client_key=self.tls_key_file, require_encryption=True)


class DaskPool:
    """A ``sidecar.pool.interface.ManagedPool`` of kind ``dask``: ``submit``,
    ``begin_shutdown``/``busy``/``terminate``, ``snapshot``/``view`` for a Dask cluster."""

    kind = "dask"
    local = None  # no worker process here: the scheduler restarts and sizes its workers

    def __init__(self, loop: Loop, settings: DaskPoolSettings) -> None:
        self.name = settings.name
        self.loop = loop
        self.settings = settings
        self.in_flight: dict[int, Call] = {}  # loop thread only
        self.futures: dict[int, Any] = {}  # Dask thread only
        self.seq = 0
        self.closing = False
        self.connected = False  # written by the Dask thread, read by the loop thread
        self.last_error = ""
        self.health: dict[str, Any] = {"workers": 0, "memory": 0, "memory_limit": 0,
                                       "tasks_running": 0}
        self.counters = {"accepted": 0, "succeeded": 0, "failed": 0}
        self.client: Any = None  # Dask thread only
        self.aloop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()
        self.close_requested = False  # Dask thread

    # ------------------------------------------------------------ loop thread
    def start(self) -> None:
        ready = threading.Event()
        self.thread = threading.Thread(target=self._thread_main, args=(ready,),
                                       name=f"dask-pool-{self.name}", daemon=True)
        self.thread.start()
        ready.wait(5.0)  # only the asyncio loop's creation: connecting happens on that thread

    def submit(self, call: Call) -> None:
        self.counters["accepted"] += 1
        if self.closing:
            self._refuse(call, protocol.UNAVAILABLE, "the sidecar is shutting down; retry "
                         "against its replacement")
        elif not self.connected or self.aloop is None:
            self._refuse(call, protocol.UNAVAILABLE,
                         f"the Dask scheduler {self.settings.address} of pool {self.name!r} "
                         f"is not connected{': ' + self.last_error if self.last_error else ''}")
        elif len(self.in_flight) >= self.settings.max_in_flight:
            self._refuse(call, protocol.OVERLOADED,
                         f"{len(self.in_flight)} calls are in flight on Dask pool {self.name!r} "
                         f"(python3.pools.{self.name}.max-in-flight); retry later")
        else:
            self.seq += 1
            key = self.seq
            self.in_flight[key] = call
            call.timer = self.loop.call_at(call.deadline, lambda: self._expire(key))
            self._to_dask(self._run, key, call.payload, call.deadline - self.loop.clock())

    def begin_shutdown(self) -> None:
        self.closing = True

    def busy(self) -> bool:
        return bool(self.in_flight)

    def terminate(self) -> None:
        self.closing = True
        for key in list(self.in_flight):
            self._finish(key, None, protocol.UNAVAILABLE,
                         "the sidecar shut down while this call ran on Dask")
        if self.aloop is not None and self.thread is not None and self.thread.is_alive():
            self._to_dask(self._close)
            self.stopped.wait(max(1.0, self.settings.connect_timeout))

    def start_supervision(self) -> None:
        """Nothing to start: the Dask thread watches the scheduler from ``start``."""

    def executor(self) -> DaskPool:
        return self

    def view(self, breaker_open: bool) -> dict[str, Any]:
        return dask_view(self.snapshot(), breaker_open)

    def worker_table(self) -> list[dict[str, Any]]:
        return []

    def memory(self, now: float) -> list[dict[str, Any]]:
        return []

    def readiness(self) -> tuple[bool, str]:
        view = self.view(False)
        return view["status"] == HEALTHY, view["status_reason"]

    def snapshot(self) -> dict[str, Any]:
        return {"kind": "dask", "name": self.name, "address": self.settings.address,
                "connected": self.connected, "in_flight": len(self.in_flight),
                "max_in_flight": self.settings.max_in_flight, "last_error": self.last_error,
                **self.health, **self.counters}

    def _refuse(self, call: Call, kind: str, message: str) -> None:
        self.counters["failed"] += 1
        call.fail(kind, message)

    def _expire(self, key: int) -> None:
        call = self.in_flight.get(key)
        if call is None:
            return
        self._finish(key, None, protocol.TIMEOUT,
                     f"the call ran longer than its timeout of {call.timeout:g} s on Dask pool "
                     f"{self.name!r}; it was cancelled on the cluster")
        self._to_dask(self._cancel, key)

    def _finish(self, key: int, frame: bytes | None, kind: str | None, message: str) -> None:
        """Answer call ``key`` (loop thread): a reply frame from the worker, or an error."""
        call = self.in_flight.pop(key, None)
        if call is None:
            return  # already answered (timeout, terminate)
        if frame is None:
            self.counters["failed"] += 1
            call.fail(kind or protocol.INTERNAL, message, pool=self.name)
            return
        spliced = splice_success(frame, call.rid, DASK_WORKER_ID)
        if spliced is not None:
            self.counters["succeeded"] += 1
            call.answer(spliced[0])
            return
        reply = unpack_raw(frame)
        reply["id"] = call.rid
        reply["worker"] = DASK_WORKER_ID
        if reply.get("ok") is True:
            self.counters["succeeded"] += 1
            call.answer(pack_raw(reply))
            return
        self.counters["failed"] += 1
        call.answer(pack_raw(reply), (reply.get("error") or {}).get("kind", protocol.INTERNAL))

    def _to_dask(self, fn: Any, *args: Any) -> None:
        aloop = self.aloop
        if aloop is None or aloop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            aloop.call_soon_threadsafe(lambda: aloop.create_task(fn(*args)))

    def _to_loop(self, key: int, frame: bytes | None, kind: str | None, message: str) -> None:
        self.loop.call_soon_threadsafe(lambda: self._finish(key, frame, kind, message))

    # ------------------------------------------------------------ Dask thread
    def _thread_main(self, ready: threading.Event) -> None:
        aloop = asyncio.new_event_loop()
        asyncio.set_event_loop(aloop)
        self.aloop = aloop
        ready.set()
        try:
            aloop.run_until_complete(self._supervise())
        except Exception:
            log.exception("Dask pool %r: its thread failed", self.name)
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                aloop.run_until_complete(aloop.shutdown_asyncgens())
            aloop.close()
            self.stopped.set()

    async def _supervise(self) -> None:
        """Connect, then refresh health and re-connect (a restarted scheduler) until closed."""
        while not self.close_requested:
            if self.client is None or self.client.status in ("closed", "closing"):
                await self._connect()
            else:
                self.connected = self.client.status == "running"
                if self.connected:
                    await self._refresh_health()
            await asyncio.sleep(HEALTH_INTERVAL if self.connected else 0.2)

    async def _connect(self) -> None:
        from distributed import Client

        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close(timeout=1)
            self.client = None
        self.connected = False
        try:
            self.client = await Client(self.settings.address, asynchronous=True,
                                       timeout=self.settings.connect_timeout,
                                       set_as_default=False,
                                       security=self.settings.security())
        except Exception as exc:  # unreachable: retried by _supervise
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("Dask pool %r: cannot connect to %s: %s", self.name,
                        self.settings.address, self.last_error)
            await asyncio.sleep(HEALTH_INTERVAL)
            return
        self.last_error = ""
        self.connected = True
        await self._refresh_health()
        log.info("Dask pool %r: connected to %s", self.name, self.settings.address)

    async def _refresh_health(self) -> None:
        """The scheduler's identity (an asynchronous Client's ``scheduler_info()`` carries no
        per-worker figures), asked on the Dask thread with a deadline."""
        try:
            identity = await asyncio.wait_for(
                self.client.scheduler.identity(n_workers=-1), self.settings.connect_timeout)
            workers = (identity or {}).get("workers") or {}
        except Exception as exc:
            self.last_error = f"scheduler_info: {exc}"
            return
        memory = limit = running = 0
        for info in workers.values():
            metrics = info.get("metrics") or {}
            memory += int(metrics.get("memory") or 0)
            limit += int(info.get("memory_limit") or 0)
            running += int(metrics.get("executing") or
                           (metrics.get("task_counts") or {}).get("executing") or 0)
        self.health = {"workers": len(workers), "memory": memory, "memory_limit": limit,
                       "tasks_running": running}

    async def _run(self, key: int, payload: bytes, remaining: float) -> None:
        try:
            future = self.client.submit(run_request, payload, pure=False,
                                        key=f"py3sidecar-{self.name}-{key}-{time.time_ns()}")
        except Exception as exc:
            self._to_loop(key, None, protocol.UNAVAILABLE, f"could not submit to Dask: {exc}")
            return
        self.futures[key] = future
        try:
            frame = await future
        except BaseException as exc:  # noqa: BLE001 - each maps to an error kind
            kind, message = self._classify(exc)
            self._to_loop(key, None, kind, message)
            return
        finally:
            self.futures.pop(key, None)
        self._to_loop(key, frame, None, "")

    def _classify(self, exc: BaseException) -> tuple[str, str]:
        from distributed.scheduler import KilledWorker

        name = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KilledWorker):
            return protocol.CRASHED, (f"the Dask worker running this call died ({name}); "
                                      "the call may or may not have run")
        if isinstance(exc, asyncio.CancelledError | OSError) or "CommClosed" in name:
            return protocol.UNAVAILABLE, (f"the connection to the Dask scheduler "
                                          f"{self.settings.address} was lost ({name})")
        if isinstance(exc, ImportError) and "sidecar" in str(exc):
            return protocol.UNAVAILABLE, (f"py3sidecar is not importable on the Dask workers "
                                          f"({name}); install it there")
        return protocol.INTERNAL, f"the Dask task failed outside the user's code: {name}"

    async def _cancel(self, key: int) -> None:
        future = self.futures.pop(key, None)
        if future is not None and self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.cancel([future], force=True)

    async def _close(self) -> None:
        self.close_requested = True
        for key in list(self.futures):
            await self._cancel(key)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(timeout=1), 2.0)
            self.client = None
        self.connected = False


def dask_view(snapshot: dict[str, Any], breaker_open: bool) -> dict[str, Any]:
    """``health``'s view of a cluster: its snapshot with ``status`` and ``status_reason``."""
    if not snapshot["connected"]:
        status, reason = UNHEALTHY, (f"the scheduler {snapshot['address']} is not connected"
                                       + (f": {snapshot['last_error']}"
                                          if snapshot["last_error"] else ""))
    elif breaker_open:
        status, reason = UNHEALTHY, "the circuit breaker is open"
    elif snapshot["workers"] == 0:
        status, reason = UNHEALTHY, "the cluster has no workers"
    else:
        status, reason = HEALTHY, f"{snapshot['workers']} Dask worker(s) connected"
    return {**snapshot, "status": status, "status_reason": reason}
