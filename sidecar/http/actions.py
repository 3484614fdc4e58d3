"""The HTTP front's operator actions: sessions, CSRF, and the POST endpoints that act.

Owns: the browser session (the token entered once at ``POST /api/session`` buys a cookie that
is ``HttpOnly``, ``SameSite=Strict`` and ``Secure`` under HTTPS, and a CSRF token the page sends
as ``X-CSRF-Token`` on every POST), who may act (a Bearer token, or a session plus its CSRF
token), parsing the JSON bodies, and the endpoints below. Must not touch: the loop's state:
every action runs in the loop thread through ``sidecar.observability.metrics.ask``
(``sidecar.operator.operations``), pip runs in this HTTP thread (``sidecar.operator.packages``); the
server itself (``sidecar.http.handler``).

    POST /api/session                          {"token"} -> cookie + {"csrf"}
    POST /api/session/logout
    POST /api/pools/<pool>/workers/<id>/restart
    POST /api/pools/<pool>/recycle
    POST /api/pools/<pool>/size                {"target": n}
    POST /api/pools/<pool>/breaker             {"state": "open"|"closed"}
    POST /api/pools/<pool>/packages            {"action", "args", "timeout"}
    POST /api/quarantine/clear                 {"fingerprint"} (optional: all)
    POST /api/console                          {"pool", "code", "timeout"}
        (sidecar.operator.console)
    GET  /api/session | /api/logs | /api/pools/<pool>/packages

Refusals: no credentials 401; a session without its CSRF token, or with a wrong one, 403.
"""

from __future__ import annotations

import hmac
import json
import secrets
import ssl
import threading
import time
from http.cookies import CookieError, SimpleCookie
from typing import Any

from sidecar.observability import log_ring
from sidecar.observability.metrics import LoopUnresponsive, ask
from sidecar.operator import operations
from sidecar.operator.console import run_console
from sidecar.operator.operations import ActionError, audit_action
from sidecar.operator.packages import PIP_TIMEOUT, PackageManager

COOKIE = "py3sidecar_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = 8 * 3600.0   # seconds a session lasts without use
MAX_SESSIONS = 64          # the oldest is dropped beyond this
MAX_BODY = 8 << 20         # bytes of a POST body (console code included)
ACT_WAIT = 5.0             # seconds an action waits for the loop thread


class Sessions:
    """Session id -> (CSRF token, last use); thread-safe (the HTTP threads share it)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.by_id: dict[str, list[Any]] = {}
        self.lock = threading.Lock()

    def create(self) -> tuple[str, str]:
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.lock:
            while len(self.by_id) >= MAX_SESSIONS:
                self.by_id.pop(min(self.by_id, key=lambda k: self.by_id[k][1]))
            self.by_id[sid] = [csrf, self.clock()]
        return sid, csrf

    def csrf_of(self, sid: str | None) -> str | None:
        if not sid:
            return None
        with self.lock:
            entry = self.by_id.get(sid)
            if entry is None:
                return None
            if self.clock() - entry[1] > SESSION_TTL:
                del self.by_id[sid]
                return None
            entry[1] = self.clock()
            return entry[0]

    def drop(self, sid: str | None) -> None:
        with self.lock:
            self.by_id.pop(sid or "", None)


class Operator:
    """What the front keeps for the actions: the sessions, pip's lock, the log ring."""

    def __init__(self) -> None:
        self.sessions = Sessions()
        self.packages = PackageManager()
        self.ring = log_ring.install()


_operator_lock = threading.Lock()


def operator_of(front: Any) -> Operator:
    with _operator_lock:
        if getattr(front, "operator", None) is None:
            front.operator = Operator()
        return front.operator


def install(front: Any) -> None:
    """At the front's start: the log ring begins keeping lines from here on."""
    operator_of(front)


def reply(handler: Any, status: int, value: Any, extra: dict[str, str] | None = None) -> None:
    try:
        body = json.dumps(value, default=str, allow_nan=False).encode()
    except ValueError:  # NaN/inf in a console value: null, which browsers can parse
        from sidecar.http.handler import _finite

        body = json.dumps(_finite(value), default=str).encode()
    handler.send_body(status, body, "application/json", extra)


# ---------------------------------------------------------------- who is asking
def session_id(handler: Any) -> str | None:
    try:
        cookie = SimpleCookie(handler.headers.get("Cookie") or "")
    except CookieError:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else None


def has_session(handler: Any) -> bool:
    """A valid session cookie (enough for GET; a POST needs its CSRF token too)."""
    return operator_of(handler.front).sessions.csrf_of(session_id(handler)) is not None


def is_https(handler: Any) -> bool:
    return isinstance(handler.connection, ssl.SSLSocket)


def credentials(handler: Any, post: bool) -> str | None:
    """'bearer' or 'session' when the request may act; else answers 401/403 and None."""
    if handler.front.authorized(handler.headers.get("Authorization")):
        return "bearer"  # tools: a header a cross-site page cannot send without CORS
    csrf = operator_of(handler.front).sessions.csrf_of(session_id(handler))
    if csrf is None:
        reply(handler, 401, {"error": {"kind": "unauthorized", "message": (
            "log in first: POST /api/session with the sidecar's token (the page asks for it), "
            "or send 'Authorization: Bearer <token>'")}},
            extra={"WWW-Authenticate": 'Bearer realm="py3sidecar"'})
        return None
    if post and not hmac.compare_digest((handler.headers.get(CSRF_HEADER) or "").encode(),
                                        csrf.encode()):
        reply(handler, 403, {"error": {"kind": "forbidden", "message": (
            f"a session's POST needs its CSRF token in the {CSRF_HEADER} header (given by "
            "POST /api/session and GET /api/session)")}})
        return None
    return "session"


def read_body(handler: Any) -> dict[str, Any]:
    length = handler.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY:
        raise ActionError(413 if length.isdigit() else 400,
                          f"a POST body must have a Content-Length of at most {MAX_BODY} bytes")
    raw = handler.rfile.read(int(length)) if int(length) else b""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ActionError(400, f"the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ActionError(400, "the body must be a JSON object")
    return body


# ---------------------------------------------------------------- GET
def is_open(path: str) -> bool:
    """Served without the token even beyond loopback: the page's static files (they hold no
    data) and the session endpoint (which checks the token itself), so a browser can log in."""
    return path in ("/", "/dashboard", "/api/session") or path.startswith("/dashboard/")


def serves_get(path: str) -> bool:
    return path in ("/api/session", "/api/logs") or (
        path.startswith("/api/pools/") and path.endswith("/packages"))


def handle_get(handler: Any, path: str, query: dict[str, str]) -> None:
    operator = operator_of(handler.front)
    if path == "/api/session":
        csrf = operator.sessions.csrf_of(session_id(handler))
        reply(handler, 200, {"authenticated": csrf is not None, "csrf": csrf,
                                "https": is_https(handler)})
        return
    if credentials(handler, post=False) is None:
        return
    try:
        if path == "/api/logs":
            count, level, after = log_ring.parse_query(query)
            reply(handler, 200, operator.ring.lines(count, level, after))
            return
        pool = pool_segment(path.removeprefix("/api/pools/").removesuffix("/packages"))
        python = ask(handler.front.service.loop, lambda: pool_python(handler, pool), ACT_WAIT)
        reply(handler, 200, {"pool": pool,
                                "packages": operator.packages.list(pool, python)})
    except ValueError as exc:
        reply(handler, 400, {"error": {"kind": "bad_request", "message": str(exc)}})
    except ActionError as exc:
        reply(handler, exc.status, {"error": {"kind": "refused", "message": exc.message}})


def pool_segment(text: str) -> str:
    if not text or "/" in text:
        raise ActionError(404, f"no pool named {text!r} in this path")
    return text


def pool_python(handler: Any, pool: str) -> list[str]:
    """Loop thread: the pool's interpreter command."""
    return list(operations.local_pool(handler.front.service, pool).pool.settings.python)


# ---------------------------------------------------------------- POST
def handle_post(handler: Any, path: str) -> None:
    service = handler.front.service
    peer = handler.client_address[0]
    if path == "/api/session":
        login(handler, peer)
        return
    if path == "/api/session/logout":
        operator_of(handler.front).sessions.drop(session_id(handler))
        reply(handler, 200, {"authenticated": False}, extra={"Set-Cookie": cookie(
            handler, "", 0)})
        return
    how = credentials(handler, post=True)
    if how is None:
        audit_action(service, action_name(path), None, "unauthorized", peer)
        return
    pool: str | None = None
    try:
        body = read_body(handler)
        action, pool, run = route(handler, path, body)
    except ActionError as exc:
        audit_action(service, action_name(path), pool, "refused", peer, status=exc.status,
                     via=how)
        reply(handler, exc.status, {"error": {"kind": "refused", "message": exc.message}})
        return
    started = time.monotonic()
    try:
        status, value = run()
    except ActionError as exc:
        status, value = exc.status, {"error": {"kind": "refused", "message": exc.message}}
    except LoopUnresponsive as exc:
        status, value = 503, {"error": {"kind": "unavailable", "message": str(exc)}}
    details = {"via": how, "status": status,
               "duration_ms": round((time.monotonic() - started) * 1000, 1)}
    if action == "console":
        details["code_sha256"] = value.pop("code_sha256", None)
    audit_action(service, action, pool, "ok" if status == 200 else "failed", peer, **details)
    reply(handler, status, value)


def action_name(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    return parts[-1] if parts else "?"


def route(handler: Any, path: str, body: dict[str, Any]) -> tuple[str, str | None, Any]:
    """(action, pool, run) where ``run()`` gives (status, value); ActionError for a bad path."""
    service = handler.front.service
    loop = service.loop

    def in_loop(fn: Any) -> Any:
        return lambda: (200, ask(loop, fn, ACT_WAIT))
    if path == "/api/console":
        return "console", body.get("pool") or "primary", lambda: run_console(service, body)
    if path == "/api/quarantine/clear":
        fingerprint = body.get("fingerprint")
        return "quarantine_clear", None, in_loop(
            lambda: operations.clear_quarantine(service, fingerprint))
    parts = path.removeprefix("/api/pools/").split("/") if path.startswith("/api/pools/") \
        else []
    if len(parts) == 4 and parts[1] == "workers" and parts[3] == "restart":
        pool, worker = parts[0], parts[2]
        return "restart_worker", pool, in_loop(
            lambda: operations.restart_worker(service, pool, worker))
    if len(parts) == 2:
        pool, verb = parts
        if verb == "recycle":
            return "recycle", pool, in_loop(lambda: operations.recycle(service, pool))
        if verb == "size":
            return "size", pool, in_loop(
                lambda: operations.resize(service, pool, body.get("target")))
        if verb == "breaker":
            return "breaker", pool, in_loop(
                lambda: operations.set_breaker(service, pool, body.get("state")))
        if verb == "packages":
            return "packages", pool, lambda: run_packages(handler, pool, body)
    raise ActionError(404, f"no action {path}; there are /api/pools/<pool>/workers/<id>/restart, "
                      "/api/pools/<pool>/{recycle,size,breaker,packages}, /api/quarantine/clear, "
                      "/api/console, /api/session")


def run_packages(handler: Any, pool: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """pip in this thread (never the loop's); the pool's workers renewed after a change."""
    service = handler.front.service
    action = body.get("action") or "list"
    timeout = body.get("timeout") or PIP_TIMEOUT
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ActionError(400, f"'timeout' must be a positive number of seconds, got {timeout!r}")
    python = ask(service.loop, lambda: pool_python(handler, pool), ACT_WAIT)
    result = operator_of(handler.front).packages.run(pool, python, action, body.get("args", []),
                                                     float(timeout))
    if result["ok"] and action in ("install", "uninstall"):
        result["renewing"] = ask(service.loop, lambda: operations.recycle(service, pool),
                                 ACT_WAIT)["renewing"]
    return (200 if result["ok"] else 422), result


def cookie(handler: Any, value: str, max_age: int) -> str:
    attributes = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict",
                  f"Max-Age={max_age}"]
    if is_https(handler):
        attributes.append("Secure")
    return "; ".join(attributes)


def login(handler: Any, peer: str) -> None:
    service = handler.front.service
    try:
        body = read_body(handler)
    except ActionError as exc:
        reply(handler, exc.status, {"error": {"kind": "bad_request", "message": exc.message}})
        return
    token = body.get("token")
    if not isinstance(token, str) or not hmac.compare_digest(token.strip().encode(),
                                                             service.token_bytes):
        audit_action(service, "login", None, "unauthorized", peer)
        reply(handler, 401, {"error": {"kind": "unauthorized", "message": (
            "that is not the sidecar's token; it is in the sidecar's token file on its host "
            "(python3.bridge.token-file)")}})
        return
    sid, csrf = operator_of(handler.front).sessions.create()
    audit_action(service, "login", None, "ok", peer)
    reply(handler, 200, {"authenticated": True, "csrf": csrf, "https": is_https(handler)},
                      extra={"Set-Cookie": cookie(handler, sid, int(SESSION_TTL))})
