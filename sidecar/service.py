"""The sidecar service: wires the loop, the pool and the fronts; answers the sidecar's own ops.

Owns: request admission (size, decoding, token, validation, refusing quarantined requests and
what the gateway route is not granted),
routing ``execute``/``call`` to the pool and answering ``ping``/``health``/``diag``/``breaker``/
``quarantine`` itself, start-up and graceful shutdown.
Must not touch: worker processes (the pool), sockets (the fronts), YAML (the config).

Every front (ZeroMQ, Py4J) calls ``dispatch(payload, reply)`` in the loop thread, which leads to
exactly one ``reply`` per request.
"""

from __future__ import annotations

import gc
import hmac
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bridge import protocol
from bridge.accept_guard import raise_open_files_limit
from bridge.codec import pack_raw, unpack_raw
from bridge.connection import (
    connection_file_for,
    remove_connection_file,
)
from bridge.loopback import is_loopback  # config --check runs the same test
from bridge.preauth import (
    ELEMENT_BUDGET,
    EnvelopeHead,
    Unreadable,
    peek_envelope,
    token_near_start_matches,
)
from bridge.py4j_server import Py4JFront
from bridge.tls import server_context
from bridge.token import check_token_strength, ensure_token
from bridge.zmq_server import ZmqFront
from sidecar import runtime_folder
from sidecar.alerts.manager import build_alerts
from sidecar.config import settings
from sidecar.config.model import Config
from sidecar.http.handler import HttpFront
from sidecar.loop import Loop
from sidecar.observability.audit import OPERATOR_OPS, build_audit
from sidecar.observability.collector import SidecarCollector, scrape_view
from sidecar.observability.diagnostics import Diagnostics, Pending
from sidecar.observability.emf import build_emf, own_rss
from sidecar.observability.metrics import Metrics
from sidecar.observability.redaction import redact_secrets
from sidecar.observability.views import alert_state
from sidecar.platform.sd_notify import SystemdNotify
from sidecar.process.stacks import remove_stack_root
from sidecar.routing.chain import build_chain
from sidecar.routing.lean import Lane
from sidecar.routing.quarantine import Quarantine, quarantine_op, refusal
from sidecar.routing.registry import build_pools
from sidecar.unix_front import SOCKET_NAME, UnixFront

# The loop's garbage is nearly all freed by reference counting; what a call leaves for the
# cycle collector is a few objects. The default first generation (700 allocations) ran a
# collection every few calls: 3-4% of the sidecar's CPU per call (perf, docs/performance.md).
GC_THRESHOLDS = (20000, 10, 10)

log = logging.getLogger("py3sidecar.service")

VERSION = "0.1.0"


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        bridge = config.python3.bridge
        self.loop = Loop()
        # Before any worker is spawned: takes systemd's variables out of their environment.
        self.notify = SystemdNotify.from_environ()
        self.token, self.token_file = ensure_token(bridge.token, bridge.token_file,
                                                   bridge.token_group.strip())
        self.stack_root = self.clean_runtime_folder()
        self.token_bytes = self.token.encode()
        self.max_message = bridge.max_message_size
        self.default_timeout = config.python3.worker.call_timeout
        self.max_timeout = config.python3.worker.max_call_timeout
        # Every pool in one registry (sidecar/pool/interface.py), "primary" (python3.pool, ...)
        # first, then python3.pools: each a local pool or a Dask cluster (routing/registry.py).
        self.pools = build_pools(self.loop, config, str(self.stack_root or ""))
        self.primary: Any = self.pools.primary  # a SupervisedPool: its supervision's parts
        self.pool = self.primary.pool
        # What requests relayed by the gateway's message handler may do (python3.access.routed).
        self.route_policy = settings.route_policy(config.python3.access.routed)
        # execute/call go to the chain in front of the pools (breakers, fallbacks) or, on the
        # lean path, to the primary itself (``self.lane``); poison ones are refused before.
        self.quarantine = Quarantine(settings.quarantine_config(config.python3.quarantine),
                                     clock=self.loop.clock)
        # One chain routes every call: by its `pool` member, to that pool's strategies.
        self.chain = build_chain(self.loop, config, self.pools,  # python3.fallback
                                 self.quarantine)
        # python3.alerts: fed by the pool, recovery and breaker events; delivery in its own thread
        self.alerts = build_alerts(self.loop, config)
        self.wire_alerts()  # subscribes to the pools before the metrics do, as it always has
        self.wire_metrics()  # python3.http: /metrics, /health, /dashboard (sidecar/http/handler.py)
        # sidecar/observability/audit.py
        self.audit = build_audit(config, self.token_file, self.metrics.registry)
        http = config.python3.http
        self.http = HttpFront(  # python3.http.tls: HTTPS; the pool, header deadline, hosts
            self, http.host, http.port, max_connections=http.max_connections,
            header_timeout=http.header_timeout, allowed_hosts=http.allowed_hosts,
            tls_context=server_context(http.tls.cert_file, http.tls.key_file)
            if http.tls.enabled else None) if http.enabled else None
        self.http_error = ""
        self.fronts = self.build_fronts(bridge)
        # Tells clients (the Jython library, tests) the endpoints actually bound: see
        # bridge/connection.py.
        self.connection_file = connection_file_for(self.token_file)
        self.started_at = time.time()
        self.state = "created"
        # the diag op's commands and the call history, over every pool
        self.diagnostics = Diagnostics(
            self.loop, self.pools, self.diag_config,
            performance_factor=lambda: self.primary.watchdog.health.performance_factor)
        # python3.monitoring.cloudwatch: EMF records from the same snapshot as `health`
        self.emf = build_emf(
            self.loop, settings.emf_settings(config.python3.monitoring.cloudwatch),
            lambda: {**self.op_health({}), "sidecar_rss": own_rss()})
        self.local_ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ping": self.op_ping, "health": self.op_health, "diag": self.op_diag,
            "breaker": self.op_breaker,
            "quarantine": lambda request: quarantine_op(self.quarantine, request)}
        self.lane = Lane(self.chain, self.metrics, self.diagnostics.history, self.audit,
                         self.loop.clock)  # routes what dispatch admits: lean or the chain

    def wire_alerts(self) -> None:
        """What the alert manager watches, and where its notifications are noted."""
        for supervised in self.pools.of_kind("local"):  # every local pool: crashes, starts
            self.alerts.watch_pool(supervised.local, supervised.recovery)
        self.alerts.watch_breakers(self.chain.breakers())
        self.alerts.watch_quarantine(self.quarantine)
        self.alerts.listeners.append(self.note_alert)
        self.alerts.channels.sent_listeners.append(
            lambda channel, level, outcome: outcome == "sent"
            and self.metrics.record_alert(channel, level))

    def build_fronts(self, bridge: Any) -> list[Any]:
        """The fronts of ``python3.bridge``; a weak token beyond loopback stops the start."""
        fronts: list[Any] = []
        if bridge.zmq.enabled:
            fronts.append(ZmqFront(self.loop, self.dispatch, bridge.zmq.endpoint,
                                   self.max_message, security=self.zmq_security(bridge.zmq),
                                   on_refusal=self.front_refused))
        if bridge.py4j.enabled:  # the gateway's Jython side (python3 script library)
            fronts.append(Py4JFront(self.loop, self.dispatch, bridge.py4j.host,
                                    bridge.py4j.java_port, bridge.py4j.python_port,
                                    auth_token=self.token, max_message_bytes=self.max_message,
                                    max_connections=bridge.py4j.max_connections,
                                    idle_timeout=bridge.py4j.idle_timeout,
                                    tls_context=server_context(  # python3.bridge.py4j.tls
                                        bridge.py4j.tls.cert_file, bridge.py4j.tls.key_file)
                                    if bridge.py4j.tls.enabled else None,
                                    pass_peer=True, on_refusal=self.front_refused))
        if bridge.unix.enabled:  # local CPython clients: read by the loop itself, no libzmq
            fronts.append(UnixFront(self.loop, self.dispatch, bridge.unix.path or
                                    connection_file_for(self.token_file).parent / SOCKET_NAME,
                                    self.max_message, bridge.unix.max_connections,
                                    on_refusal=self.front_refused, group=bridge.token_group))
        check_token_strength(self.token, runtime_folder.token_source(bridge.token, self.token_file),
                             [e for e in (getattr(f, "endpoint", "") for f in fronts)
                              if e and not is_loopback(e)])
        return fronts

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        before, after = raise_open_files_limit()  # systemd's soft 1024 is a thousand idle peers
        if after != before:
            log.info("open-files limit raised from %d to %d (the hard limit)", before, after)
        # Authentication cannot be switched off: every front checks the token on every request,
        # so listening beyond loopback is never token-less. Say so where it matters.
        for front in self.fronts:
            endpoint = getattr(front, "endpoint", "")
            if endpoint and not is_loopback(endpoint):
                log.warning("listening beyond loopback on %s: anyone holding the token can run "
                            "Python as this user", endpoint)
        self.audit.open()  # a file that cannot be opened is logged; the sidecar serves on
        self.alerts.start()
        self.emf.start()
        self.pools.start()
        self.chain.start()
        self.pools.start_supervision()
        for front in self.fronts:
            front.start()
        self.start_http()
        self.write_connection_file()
        # What start-up built lives as long as the sidecar: out of the collector's sight, so a
        # collection during a call scans only what calls allocate (docs/performance.md).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.state = "running"
        self.notify.ready()  # Type=notify: systemd counts the sidecar started from here
        self.notify.start_watchdog(self.loop)
        log.info("py3sidecar %s serving (pid %d, %d workers starting, token file %s)", VERSION,
                 os.getpid(), self.pool.target_size, self.token_file or "<from config/env>")

    def request_stop(self) -> None:
        """Safe from signal handlers and other threads."""
        self.loop.stop()

    def run(self) -> None:
        """Serve until ``request_stop()``, then drain and stop (the foreground ``serve``)."""
        if self.state != "running":
            self.start()
        try:
            self.loop.run()
            self.drain()
        finally:
            self.close()

    def drain(self) -> None:
        self.state = "draining"
        self.notify.stopping()
        drain = self.config.python3.shutdown.drain_timeout
        log.info("shutting down: draining calls in flight (up to %gs)", drain)
        self.pools.begin_shutdown()
        self.chain.begin_shutdown()
        deadline = self.loop.clock() + drain
        self.loop.run(until=lambda: not (self.pools.busy() or self.chain.busy())
                      or self.loop.clock() >= deadline)

    def zmq_security(self, zmq_config: Any) -> Any:
        return runtime_folder.zmq_server_security(self.token, self.token_file, zmq_config)

    def clean_runtime_folder(self) -> Path | None:
        return runtime_folder.clean(self.token_file)

    def write_connection_file(self) -> None:
        runtime_folder.write_connection(self.connection_file, self.token_file, self.fronts,
                                        self.http, self.http_error,
                                        self.config.python3.bridge.py4j.tls.cert_file)

    def close(self) -> None:
        remove_connection_file(self.connection_file, os.getpid())
        # Answer what is left first, while the fronts can still deliver the answers; then stop
        # the fronts (ZeroMQ lingers up to a second for replies libzmq has not sent yet).
        self.diagnostics.close()  # diag commands waiting on workers answer with what they have
        self.pools.terminate()
        self.chain.terminate()
        self.alerts.close()
        self.emf.stop()
        if self.stack_root is not None:
            remove_stack_root(self.stack_root)
        for front in self.fronts:
            front.stop()
        if self.http is not None:
            self.http.stop()
        self.audit.close()  # the last lines, written within a deadline
        context = zmq.Context.instance()
        context.destroy(linger=1000)  # waits (bounded) until queued replies have left
        self.notify.stop_watchdog()
        self.loop.close()
        self.state = "stopped"
        log.info("py3sidecar stopped")

    def wire_metrics(self) -> None:
        """Observation hooks (sidecar/observability/metrics.py): one per call, the rest read at
        scrape time."""
        self.metrics = Metrics(self.loop.clock)
        self.recent_alerts: deque[dict[str, Any]] = deque(maxlen=50)  # the alert manager's
        for _, pool in self.pools.local_pools():
            pool.observe_queue_wait = self.metrics.observe_queue_wait
            pool.listen(lambda event, pool=pool: None if pool.closing
                        else self.metrics.on_pool_event(event))
        self.metrics.gather = lambda: scrape_view(self.op_health({}))
        self.metrics.registry.register(SidecarCollector(self.metrics))
        self.metrics.start_lag_probe(self.loop)

    def note_alert(self, notification: Any) -> None:
        """An alert notification went out: kept for the dashboard and the health-poll tags."""
        self.recent_alerts.append({"at": time.time(), "level": notification.level.name,
                                   "title": notification.title, "key": notification.group,
                                   "resolved": notification.kind == "resolved"})

    def start_http(self) -> None:
        """Observability must not stop the sidecar serving: a port in use is logged, shown in
        connection.json (``http.error``), and the calls are served regardless."""
        if self.http is None:
            return
        try:
            self.http.start()
        except OSError as exc:
            self.http_error = (f"cannot listen on {self.http.url} ({exc.strerror}); set "
                               "python3.http.port to a free port (0: any)")
            log.error("HTTP endpoints not served: %s", self.http_error)

    # ------------------------------------------------------------ admission (loop thread)
    def dispatch(self, payload: bytes, reply: Callable[[bytes], None], peer: str = "") -> None:
        # The fast path (every call): size, token bytes, decode, token, validate, submit. Only
        # refusals and the sidecar's own ops leave it for the methods below.
        self.admitting = peer, None  # whom a refusal answers, for its audit line
        if len(payload) > self.max_message:
            self.refuse(reply, None, protocol.BAD_REQUEST,
                        f"the request is {len(payload)} bytes, above the limit of "
                        f"{self.max_message} (python3.bridge.max-message-size); send less "
                        "data per call")
            return
        # Nothing is decoded before the token is checked: a bounded walk of the headers finds
        # it (bridge/preauth.py), and an unauthenticated reply echoes only a short id.
        if not token_near_start_matches(payload, self.token_bytes) and not self.token_found(
                payload, reply):
            return
        request = self.authenticated_envelope(payload, reply)
        if request is None:
            return
        rid = request.get("id")
        if not isinstance(rid, (int, str)):
            rid = None
        self.admitting = peer, request
        try:
            protocol.validate_request(request, max_timeout=self.max_timeout)
        except protocol.BadRequest as exc:
            self.refuse(reply, rid, protocol.BAD_REQUEST, exc.message)
            return
        # Relayed by the gateway's message handler: only what python3.access.routed grants.
        if request.get("routed") is not None and (refused := self.route_policy.refusal(request)):
            self.refuse(reply, rid, protocol.FORBIDDEN, refused)
            return
        op = request["op"]
        if op not in protocol.WORKER_OPS:
            self.run_local_op(op, rid, request, reply)
            return
        held = self.quarantine.check(request)  # one dict lookup while nothing is held
        if held is not None:
            self.refuse_quarantined(op, rid, held, reply)
            return
        pool = request.get("pool")
        if pool is not None and pool not in self.chain.routes:
            self.refuse(reply, rid, protocol.BAD_REQUEST,
                        f"no pool named {pool!r}; there are: {', '.join(self.chain.routes)} "
                        "(python3.pools)")
            return
        # The primary can serve it now: one object, one sink; else the chain (routing/lean.py).
        self.lane.submit(op, rid, payload, request, request.get("timeout") or
                         self.default_timeout, reply, peer, pool)

    def authenticated_envelope(self, payload: bytes,
                               reply: Callable[[bytes], None]) -> dict[str, Any] | None:
        """The decoded envelope, once its own ``token`` member is the sidecar's; else None and
        the request refused (the fast path's decode and second token check)."""
        try:
            request = unpack_raw(payload)
        except Exception as exc:  # msgpack raises several types for junk
            self.refuse(reply, None, protocol.BAD_REQUEST,
                        f"the request is not a msgpack envelope ({type(exc).__name__}: {exc}); "
                        "see docs/protocol.md")
            return None
        token = request.get("token") if isinstance(request, dict) else None
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(),
                                                                 self.token_bytes):
            # The walk found the right token bytes but the decoded envelope disagrees (e.g. a
            # duplicate key): the envelope is what counts.
            rid = request.get("id") if isinstance(request, dict) else None
            self.refuse(reply, rid if isinstance(rid, (int, str)) else None,
                        protocol.UNAUTHORIZED, self.unauthorized_message(None))
            return None
        return request

    def front_refused(self, kind: str, peer: str) -> None:
        """A front refused a peer before any request (a wrong token at the ZeroMQ handshake or
        in py4j's auth command, a malformed ZeroMQ message): counted and audited."""
        self.metrics.count_refused(kind)
        self.audit.record(kind, peer)

    def refuse(self, reply: Callable[[bytes], None], rid: Any, kind: str, message: str) -> None:
        self.metrics.count_refused(kind)
        self.audit.record(kind, *self.admitting)  # before the reply: it may dispatch again
        reply(pack_raw(protocol.error_reply(rid, kind, message)))

    def token_found(self, payload: bytes, reply: Callable[[bytes], None]) -> bool:
        """The token was not where clients put it: walk the envelope's head; False (and the
        request refused) unless the right token is there."""
        try:
            head = peek_envelope(payload)
        except Unreadable as exc:
            self.refuse(reply, None, protocol.BAD_REQUEST,
                        f"the request is not a msgpack envelope ({exc}); see docs/protocol.md")
            return False
        if not head.token_matches(self.token_bytes):
            self.refuse(reply, head.request_id, protocol.UNAUTHORIZED,
                        self.unauthorized_message(head))
            return False
        return True

    def refuse_quarantined(self, op: str, rid: Any, held: Any,
                           reply: Callable[[bytes], None]) -> None:
        message, details = refusal(held)
        self.metrics.record_quarantined(1)
        self.metrics.count(op, protocol.QUARANTINED)
        self.audit.record(protocol.QUARANTINED, *self.admitting)
        reply(pack_raw(protocol.error_reply(rid, protocol.QUARANTINED, message, **details)))

    def run_local_op(self, op: str, rid: Any, request: dict[str, Any],
                     reply: Callable[[bytes], None]) -> None:
        """``ping``, ``health``, ``diag``, ``breaker``, ``quarantine``: answered here."""
        handler = self.local_ops.get(op)
        if handler is None:
            self.refuse(reply, rid, protocol.BAD_REQUEST,
                        f"op {op!r} is not offered by this sidecar")
            return
        try:
            value = handler(request)
        except protocol.SidecarError as exc:
            self.refuse(reply, rid, exc.kind, exc.message)
            return
        except Exception as exc:
            log.exception("op %s failed", op)
            self.refuse(reply, rid, protocol.INTERNAL, f"{type(exc).__name__}: {exc}")
            return
        self.metrics.count(op)
        if op in OPERATOR_OPS:  # diag, breaker, quarantine (ping and health are probes)
            self.audit.record(None, *self.admitting)
        if isinstance(value, Pending):  # diag commands that wait on workers (bounded)
            value.then(lambda done: reply(pack_raw({"id": rid, "ok": True, "value": done})))
            return
        reply(pack_raw({"id": rid, "ok": True, "value": value}))

    def unauthorized_message(self, head: EnvelopeHead | None) -> str:
        # Told to a peer that has not authenticated: nothing of this host's layout (no path);
        # the operator finds the token file in the sidecar's start-up log line.
        if head is not None and head.over_budget:
            return (f"no token among the first {ELEMENT_BUDGET} values of the request; send "
                    "'token' before large members (docs/protocol.md)")
        sent = "a wrong" if head is None or head.token is not None else "no"
        return (f"{sent} token was sent; send the sidecar's token (its operator finds where it "
                "is kept, python3.bridge.token-file, in the sidecar's log at start-up)")

    # ------------------------------------------------------------ the sidecar's own ops
    def op_ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": VERSION, "state": self.state,
                "uptime": time.time() - self.started_at, "workers": self.pool.live_count()}

    def op_health(self, request: dict[str, Any]) -> dict[str, Any]:
        breakers = {name: b.snapshot() for name, b in self.chain.breakers().items()}
        open_breakers = {n for n, b in breakers.items() if b.get("state") in ("open",
                                                                              "forced_open")}
        pools = self.pools.views(open_breakers)  # every pool, the primary first
        pool = pools.pop("primary")
        return {"status": pool["status"], "reason": pool["status_reason"],
                "checked_at": self.loop.clock(), "sidecar": self.op_ping(request), "pool": pool,
                "pools": pools,  # the named ones (python3.pools), as they always were
                # the primary's, at the top level as they always were
                "recovery": pool.pop("recovery"), "watchdog": pool.pop("watchdog"),
                "breakers": breakers, "fallback": self.chain.snapshot(),
                "quarantine": self.quarantine.snapshot(), "reload": pool.pop("reload"),
                "audit": self.audit.snapshot(),  # sidecar/observability/audit.py
                "alerts": self.alerts.snapshot(), "cloudwatch": self.emf.view(),
                "monitoring": {**self.metrics.recent_summary(),  # sidecar/observability/metrics.py
                               "alerts": alert_state(self.recent_alerts)}}

    def op_breaker(self, request: dict[str, Any]) -> dict[str, Any]:
        """``breaker`` op: ``command`` open|close|disable|status, optional ``name``."""
        command = protocol.optional_string(request, "command", "") or "status"
        breakers = self.chain.breakers()
        name = protocol.optional_string(request, "name", "") or "primary"
        if name not in breakers:
            raise protocol.BadRequest(f"no circuit breaker named {name!r}; there are: "
                                      f"{', '.join(breakers) or 'none'}")
        breaker = breakers[name]
        actions = {"open": breaker.force_open, "close": breaker.reset,
                   "disable": breaker.disable, "status": lambda: None}
        if command not in actions:
            raise protocol.BadRequest(f"unknown breaker command {command!r}; expected one of "
                                      f"{', '.join(actions)}")
        actions[command]()
        return {"breakers": {n: b.snapshot() for n, b in breakers.items()},
                "events": self.chain.events[-10:]}

    def op_diag(self, request: dict[str, Any]) -> Any:
        """``diag`` op: ``command`` (and ``args``); the table is in
        sidecar/observability/diagnostics.py. The value may be a ``Pending`` (performance, threads,
        memory --top): ``.then(callback)``."""
        return self.diagnostics.run(request)

    def diag_config(self) -> dict[str, Any]:
        # sidecar/observability/redaction.py
        return redact_secrets(self.config.model_dump(by_alias=True))
