"""The sidecar's HTTP endpoints: metrics, liveness, readiness, health, dashboard, diagnostics.

Owns: the HTTP handler (stdlib ``BaseHTTPRequestHandler``: no HTTP parsing here; the threads,
the header deadline and TLS are ``sidecar.http.server``'s), routing, the access rules (the
``Host`` check, the token) and the static dashboard files. Must not touch: the loop's
state directly: every request asks the loop thread for a snapshot by message, with a deadline
(``sidecar.observability.metrics.ask``); the loop never waits on an HTTP client.

Access (``python3.http.host``)::

    endpoint                      on loopback     beyond loopback
    /livez, /readyz               open            open
    /health, /metrics             open            token
    /dashboard (its files)        open            open      (no data; the login is there)
    /api/dashboard                open            token or session
    /api/diagnostics/<command>    token           token     (can show configuration)
    /api/session, /api/logs, POST actions (sidecar/http/actions.py): token or session + CSRF

The token is the sidecar's own (``Authorization: Bearer <token>``, compared in constant time).
Before any of it, a request whose ``Host`` is not the bound address, ``localhost``,
``127.0.0.1``, ``[::1]`` or one of ``python3.http.allowed-hosts`` is answered 421 (a page whose
DNS name was rebound to this address reads nothing).
"""

from __future__ import annotations

import concurrent.futures
import hmac
import io
import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from prometheus_client.exposition import choose_encoder

from bridge import protocol
from bridge.loopback import is_loopback_host
from sidecar.http import actions as http_actions
from sidecar.http.server import SEND_TIMEOUT, BoundedHTTPServer, DeadlineReader, SendAll
from sidecar.observability import views
from sidecar.observability.diagnostics import Pending
from sidecar.observability.metrics import LoopUnresponsive, ask

log = logging.getLogger("py3sidecar.http")

STATIC = Path(__file__).with_name("dashboard")
ASK_WAIT = 2.0         # seconds an endpoint waits for the loop thread
DIAGNOSTICS_WAIT = 10.0  # diagnostics may run longer (e.g. a benchmark on idle workers)
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def host_name(header: str) -> str:
    """``Host`` without its port, lower-case (``[::1]:5558`` -> ``[::1]``)."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class HttpFront:
    """``start()`` binds and serves in a daemon thread; ``url`` is what was bound."""

    def __init__(self, service: Any, host: str, port: int, *, max_connections: int = 16,
                 header_timeout: float = 5.0, allowed_hosts: list[str] | tuple[str, ...] = (),
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.loopback = is_loopback_host(host)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.tls_context = tls_context
        bound = host.lower().strip("[]")
        self.allowed = {name.lower() for name in (
            *LOOPBACK_NAMES, f"[{bound}]" if ":" in bound else bound, *allowed_hosts)}
        self.server: BoundedHTTPServer | None = None
        self.thread: threading.Thread | None = None
        http_actions.install(self)  # sessions, pip's lock and the log ring (GET /api/logs)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls_context else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("SidecarHTTPServer", (BoundedHTTPServer,),
                            {"address_family": family})
        self.server = server_class((self.host, self.port), Handler,
                                   workers=self.max_connections,
                                   header_timeout=self.header_timeout,
                                   tls_context=self.tls_context)
        self.server.front = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.5}, name="py3sidecar-http", daemon=True)
        self.thread.start()
        if not self.loopback:
            log.warning("HTTP endpoints listen beyond loopback on %s: all but /livez and "
                        "/readyz need the token%s", self.url, "" if self.tls_context else
                        ", which crosses the network in clear: set python3.http.tls")
        log.info("HTTP endpoints on %s (/metrics /livez /readyz /health /dashboard)", self.url)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # ------------------------------------------------------------ access
    def host_allowed(self, header: str | None) -> bool:
        """A request without ``Host`` (not a browser's) passes; else its name must be ours, or
        the entry with its port (``name:port``) must be listed."""
        if header is None:
            return True
        return host_name(header) in self.allowed or header.strip().lower() in self.allowed

    def needs_token(self, path: str) -> bool:
        if path in ("/livez", "/readyz") or http_actions.is_open(path):
            return False
        if path.startswith("/api/diagnostics"):
            return True
        return not self.loopback

    def authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.service.token_bytes)


class Handler(BaseHTTPRequestHandler):
    server_version = "py3sidecar"
    protocol_version = "HTTP/1.1"

    @property
    def front(self) -> HttpFront:
        return self.server.front  # type: ignore[attr-defined]

    def setup(self) -> None:
        """Reads through a ``DeadlineReader``: the first request's line and headers by the
        deadline set at accept (``python3.http.header-timeout``), each next one's by a new one."""
        self.connection = self.request
        self.reader = DeadlineReader(self.connection)
        self.reader.deadline = self.server.local.deadline  # type: ignore[attr-defined]
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = SendAll(self.connection)

    def handle_one_request(self) -> None:
        if self.reader.deadline is None:  # a kept-alive connection: the next request's clock
            self.reader.deadline = time.monotonic() + self.front.header_timeout
        super().handle_one_request()

    def parse_request(self) -> bool:
        """The headers are in: stop their clock; refuse a foreign ``Host`` before any handler
        runs (DNS rebinding)."""
        if not super().parse_request():
            return False
        self.reader.deadline = None
        self.connection.settimeout(SEND_TIMEOUT)
        host = self.headers.get("Host")
        if not self.front.host_allowed(host):
            self.close_connection = True
            self.send_text(421, f"misdirected: this sidecar does not answer to the host "
                           f"{host_name(host or '')!r}; if that name is really this sidecar's, "
                           "add it to python3.http.allowed-hosts")
            return False
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        if self.front.needs_token(path) and not self.front.authorized(
                self.headers.get("Authorization")) and not http_actions.has_session(self):
            # No path for a peer without the token: its operator finds it in the start-up log.
            self.send_text(401, "unauthorized: send 'Authorization: Bearer <token>' with the "
                           "sidecar's token (python3.bridge.token-file; where it is kept is in "
                           "the sidecar's log at start-up)",
                           extra={"WWW-Authenticate": 'Bearer realm="py3sidecar"'})
            return
        try:
            self.route(path, dict(parse_qsl(parts.query)))
        except LoopUnresponsive as exc:
            self.send_text(503, f"unavailable: {exc}")
        except BrokenPipeError:
            pass
        except Exception as exc:  # one clear 500 instead of a dropped connection
            log.exception("HTTP %s failed", path)
            self.send_text(500, f"internal error: {type(exc).__name__}: {exc}")

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name): the operator's actions
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            http_actions.handle_post(self, path)
        except BrokenPipeError:
            pass
        except Exception as exc:
            log.exception("HTTP POST %s failed", path)
            self.send_text(500, f"internal error: {type(exc).__name__}: {exc}")

    def route(self, path: str, query: dict[str, str]) -> None:
        service = self.front.service
        loop = service.loop
        if path == "/livez":
            ask(loop, lambda: None, ASK_WAIT)  # raises LoopUnresponsive -> 503
            self.send_text(200, "ok: the event loop is answering")
        elif path == "/readyz":
            ready, reason = ask(loop, lambda: views.gather_readiness(service.state,
                                                                     service.pools), ASK_WAIT)
            self.send_text(200 if ready else 503, reason)
        elif path == "/health":
            health, lag = ask(loop, lambda: (service.op_health({}), service.metrics.loop_lag),
                              ASK_WAIT)
            status, doc = views.health_document(health, lag)
            self.send_json(status, doc, "application/health+json")
        elif path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept"))
            self.send_body(200, encoder(service.metrics.registry), content_type)
        elif path in ("/", "/dashboard"):
            self.send_static("index.html")
        elif path.startswith("/dashboard/"):
            self.send_static(path.removeprefix("/dashboard/"))
        elif path == "/api/dashboard":
            gathered = ask(loop, lambda: views.gather_dashboard(
                service.op_health({}), service.metrics, service.recent_alerts), ASK_WAIT)
            self.send_json(200, views.dashboard_document(gathered))
        elif path.startswith("/api/diagnostics/"):
            self.diagnostics(path.removeprefix("/api/diagnostics/"), query)
        elif http_actions.serves_get(path):  # the operator's console (sidecar/http/actions.py)
            http_actions.handle_get(self, path, query)
        else:
            self.send_text(404, f"no endpoint {path}; there are /metrics /livez /readyz "
                           "/health /dashboard /api/dashboard /api/diagnostics/<command>")

    def diagnostics(self, command: str, query: dict[str, str]) -> None:
        """The same function the bridge's ``diag`` op runs, so every command is here too."""
        service = self.front.service
        # The query string holds the command's options, as the bridge's ``args`` map does.
        request: dict[str, Any] = {"command": command,
                                   "args": {k: _plain(v) for k, v in query.items()}}
        answer: concurrent.futures.Future = concurrent.futures.Future()
        host, port = self.client_address[:2]
        peer, seen = f"http:{host}:{port}", {"op": "diag", "command": command}

        def start() -> None:  # loop thread; a Pending (workers asked) completes there later
            try:
                value = service.op_diag(request)
            except protocol.SidecarError as exc:  # an operator action: audited either way
                service.audit.record(exc.kind, peer, seen)
                raise
            service.audit.record(None, peer, seen)
            if isinstance(value, Pending):
                value.then(answer.set_result)
            else:
                answer.set_result(value)
        try:
            ask(service.loop, start, DIAGNOSTICS_WAIT)
            value = answer.result(DIAGNOSTICS_WAIT)
        except protocol.SidecarError as exc:
            self.send_json(400, {"error": {"kind": exc.kind, "message": exc.message}})
            return
        except concurrent.futures.TimeoutError:
            self.send_text(503, f"diagnostics {command!r} did not finish within "
                           f"{DIAGNOSTICS_WAIT:g}s")
            return
        self.send_json(200, {"command": command, "value": value})

    # ------------------------------------------------------------ answers
    def send_static(self, name: str) -> None:
        file = (STATIC / name).resolve()
        if file.parent != STATIC.resolve() or not file.is_file():
            self.send_text(404, f"no dashboard file {name}")
            return
        self.send_body(200, file.read_bytes(), STATIC_TYPES.get(file.suffix,
                                                                "application/octet-stream"))

    def send_json(self, status: int, value: Any, content_type: str = "application/json") -> None:
        try:
            body = json.dumps(value, default=str, allow_nan=False).encode()
        except ValueError:  # NaN/inf (e.g. a mean of nothing): null, which browsers can parse
            body = json.dumps(_finite(value), default=str).encode()
        self.send_body(status, body, content_type)

    def send_text(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        self.send_body(status, (text + "\n").encode(), "text/plain; charset=utf-8", extra)

    def send_body(self, status: int, body: bytes, content_type: str,
                  extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value: str) -> Any:
    """Query values as the ``diag`` op would get them over the bridge: ints and booleans."""
    if value.lstrip("-").isdigit():
        return int(value)
    return {"true": True, "false": False}.get(value.lower(), value)
