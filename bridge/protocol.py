"""The envelope every transport carries, and the error kinds.

Owns: the request/reply shapes, request validation, error kinds and the exceptions that
stand for them. Must not touch: sockets, processes or msgpack framing (see ``codec``).
The wire format is documented in ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

VERSION = 1

OPS = ("execute", "call", "ping", "health", "diag", "breaker", "quarantine")
WORKER_OPS = ("execute", "call")

# Error kinds, one per failure a caller can meet.
USER = "user"
TIMEOUT = "timeout"
CRASHED = "crashed"
OVERLOADED = "overloaded"
CIRCUIT_OPEN = "circuit_open"
UNAVAILABLE = "unavailable"
BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
INTERNAL = "internal"
QUARANTINED = "quarantined"  # this very request crashed its worker repeatedly: refused for a TTL
FORBIDDEN = "forbidden"  # a relayed request the sidecar's access policy does not grant (unrun)
ERROR_KINDS = (USER, TIMEOUT, CRASHED, OVERLOADED, CIRCUIT_OPEN, UNAVAILABLE, BAD_REQUEST,
               UNAUTHORIZED, INTERNAL, QUARANTINED, FORBIDDEN)

# The mark a relaying front (the gateway's message handler) puts on what it relays; the sidecar
# applies python3.access.routed to marked requests only (docs/protocol.md, "routed").
ROUTED_KEYS = ("route", "project", "user", "session")
ROUTED_VALUE_MAX = 256


class SidecarError(Exception):
    """Base of every error a py3sidecar call can raise; ``kind`` is the wire error kind."""

    kind = INTERNAL

    def __init__(self, message: str, *, remote_type: str | None = None,
                 traceback: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remote_type = remote_type
        self.traceback = traceback
        self.details = details or {}

    def __str__(self) -> str:
        if self.remote_type:
            return f"{self.remote_type}: {self.message}"
        return self.message


class PythonError(SidecarError):
    """The user's code raised; ``remote_type`` and ``traceback`` are the worker's."""
    kind = USER

    def __str__(self) -> str:
        text = f"{self.remote_type or 'Exception'}: {self.message}"
        if self.traceback:
            text += "\n\nRemote traceback:\n" + self.traceback.rstrip()
        return text


class CallTimeout(SidecarError):
    kind = TIMEOUT


class WorkerCrashed(SidecarError):
    kind = CRASHED


class Overloaded(SidecarError):
    kind = OVERLOADED


class CircuitOpen(SidecarError):
    kind = CIRCUIT_OPEN


class Unavailable(SidecarError):
    kind = UNAVAILABLE


class BadRequest(SidecarError):
    kind = BAD_REQUEST


class Unauthorized(SidecarError):
    kind = UNAUTHORIZED


class InternalError(SidecarError):
    kind = INTERNAL


class Quarantined(SidecarError):
    """This request (same op, code or target, arguments) kept crashing workers: refused, unrun.

    ``details``: ``fingerprint``, ``label``, ``crashes``, ``since``, ``expires``, ``retry_after``.
    """
    kind = QUARANTINED


class Forbidden(SidecarError):
    """A request relayed by the gateway's message handler that the sidecar does not grant to
    that route (``python3.access.routed``); the message names the setting to change. Unrun."""
    kind = FORBIDDEN


EXCEPTIONS: dict[str, type[SidecarError]] = {
    cls.kind: cls for cls in (PythonError, CallTimeout, WorkerCrashed, Overloaded, CircuitOpen,
                              Unavailable, BadRequest, Unauthorized, InternalError, Quarantined,
                              Forbidden)
}


def error(kind: str, message: str, *, type: str | None = None, traceback: str | None = None,
          **extra: Any) -> dict[str, Any]:
    """Build the ``error`` member of a failure reply."""
    err: dict[str, Any] = {"kind": kind, "type": type, "message": message, "traceback": traceback}
    err.update(extra)
    return err


def error_reply(request_id: Any, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": error(kind, message, **extra)}


def exception_from_error(err: Any) -> SidecarError:
    """Turn a reply's ``error`` member into the matching exception."""
    if not isinstance(err, dict):
        return InternalError(f"malformed error in reply: {err!r}")
    cls = EXCEPTIONS.get(err.get("kind"), InternalError)
    details = {k: v for k, v in err.items() if k not in ("kind", "type", "message", "traceback")}
    return cls(str(err.get("message") or err.get("kind")), remote_type=err.get("type"),
               traceback=err.get("traceback"), details=details)


def optional_string(req: dict[str, Any], key: str, default: str) -> str:
    """``req[key]`` when it is a string, ``default`` when absent or null; else ``BadRequest``
    (an op's own members: a list or a map there once answered ``internal``)."""
    value = req.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string, got {type(value).__name__} "
                         f"{_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_routed(routed: Any) -> None:
    """The relay's mark: a map of ROUTED_KEYS to short strings or null, ``route`` a string.
    (Messages are built only on failure: a relayed call pays a few hundred nanoseconds.)"""
    if not (isinstance(routed, dict) and isinstance(routed.get("route"), str)
            and all(k in ROUTED_KEYS for k in routed)):
        raise BadRequest(f"'routed' must be a map with a 'route' string and only "
                         f"{', '.join(ROUTED_KEYS)}, got {_shown(routed)}")
    for key, value in routed.items():
        if not (value is None or (isinstance(value, str) and len(value) <= ROUTED_VALUE_MAX)):
            raise BadRequest(f"'routed.{key}' must be a string of at most {ROUTED_VALUE_MAX} "
                             f"characters or null, got {_shown(value)}")


def validate_request(req: Any, *, max_timeout: float) -> dict[str, Any]:
    """Check a decoded request's shape; raise ``BadRequest`` naming the bad member.

    Returns the request itself (validated in place, no copy: this is the hot path, so each
    message is built only when its check fails).
    """
    if not isinstance(req, dict):
        raise BadRequest(f"a request must be a map, got {type(req).__name__}")
    get = req.get
    rid = get("id")
    if not (rid is None or isinstance(rid, (int, str))):
        raise BadRequest(f"'id' must be an integer or a string, got {type(rid).__name__}")
    if get("v", VERSION) != VERSION:
        raise BadRequest(f"unsupported protocol version 'v'={_shown(get('v'))}; "
                         f"this sidecar speaks {VERSION}")
    op = get("op")
    if op not in OPS:
        raise BadRequest(f"unknown 'op' {_shown(op)}; expected one of {', '.join(OPS)}")
    timeout = get("timeout")
    if timeout is not None and not (isinstance(timeout, (int, float))
                                    and not isinstance(timeout, bool)
                                    and 0 < timeout <= max_timeout):
        raise BadRequest(f"'timeout' must be a number of seconds in (0, {max_timeout:g}], "
                         f"got {_shown(timeout)}")
    pool = get("pool")
    if not (pool is None or isinstance(pool, str)):
        raise BadRequest(f"'pool' must be the name of one of the sidecar's pools, "
                         f"got {_shown(pool)}")
    routed = get("routed")
    if routed is not None:
        _check_routed(routed)
    if op == "call":
        _check_call(get)
    elif op == "execute":
        _check_execute(get)
    return req


def _check_call(get: Callable[[str], Any]) -> None:
    target = get("target")
    if not (isinstance(target, str) and ":" in target):
        raise BadRequest(f"'target' must look like 'package.module:function', "
                         f"got {_shown(target)}")
    args = get("args")
    if not (args is None or isinstance(args, (list, tuple))):
        raise BadRequest("'args' must be a list")
    kwargs = get("kwargs")
    if not (kwargs is None or (isinstance(kwargs, dict)
                               and all(isinstance(k, str) for k in kwargs))):
        raise BadRequest("'kwargs' must be a map from argument names (strings) to values")


def _check_execute(get: Callable[[str], Any]) -> None:
    code = get("code")
    if not isinstance(code, str):
        raise BadRequest(f"'code' must be a string, got {type(code).__name__}")
    variables = get("vars")
    if not (variables is None or (isinstance(variables, dict)
                                  and all(isinstance(k, str) for k in variables))):
        raise BadRequest("'vars' must be a map from variable names (strings) to values")
