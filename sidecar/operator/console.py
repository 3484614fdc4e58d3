"""The console: ``POST /api/console`` runs code as ``execute`` does, through the same dispatch.

Owns: turning ``{"pool", "code", "timeout"}`` into a bridge envelope signed with the sidecar's
own token, handing it to ``Service.dispatch`` in the loop thread (so admission, the quarantine,
the breaker, metrics, the call history and the audit all apply as to any client's ``execute``),
waiting (bounded) for its one reply, and the answer ``{"ok", "value", "stdout", "stderr",
"error"}``. Must not touch: workers or pools (the dispatch path does), HTTP (``http_actions``).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
from typing import Any

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.observability.metrics import ask
from sidecar.operator.operations import ActionError
from sidecar.routing.registry import PRIMARY

REPLY_GRACE = 10.0  # seconds beyond the call's timeout (queue wait, a worker's start)
DISPATCH_WAIT = 5.0
_ids = itertools.count(1)


def console_request(service: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The envelope of ``execute`` for a console body; ActionError 400 for a bad one."""
    code, pool, timeout = body.get("code"), body.get("pool") or PRIMARY, body.get("timeout")
    if not isinstance(code, str) or not code.strip():
        raise ActionError(400, "'code' must be the Python code to run (a non-empty string)")
    if not isinstance(pool, str):
        raise ActionError(400, f"'pool' must be a pool's name, got {pool!r}")
    if timeout is None:
        timeout = service.default_timeout
    if (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
            or not 0 < timeout <= service.max_timeout):
        raise ActionError(400, f"'timeout' must be a number of seconds in (0, "
                          f"{service.max_timeout:g}] (python3.worker.max-call-timeout), got "
                          f"{timeout!r}")
    # The token first, as clients send it: the sidecar checks it before decoding the rest.
    request = {"token": service.token, "v": protocol.VERSION, "id": f"console-{next(_ids)}",
               "op": "execute", "code": code, "timeout": timeout}
    if pool != PRIMARY:
        request["pool"] = pool
    return request


def run_console(service: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """HTTP thread: (status, answer). A user error is a 200 with ``ok: false``: the console
    ran; the traceback is in ``error``."""
    request = console_request(service, body)
    answer: concurrent.futures.Future = concurrent.futures.Future()
    payload = pack_raw(request)
    ask(service.loop, lambda: service.dispatch(payload, answer.set_result), DISPATCH_WAIT)
    try:
        raw = answer.result(request["timeout"] + REPLY_GRACE)
    except concurrent.futures.TimeoutError:
        raise ActionError(504, f"no reply within {request['timeout'] + REPLY_GRACE:g}s") from None
    reply = unpack_raw(raw)
    error = reply.get("error")
    return 200, {"ok": bool(reply.get("ok")), "value": reply.get("value"),
                 "stdout": reply.get("stdout", ""), "stderr": reply.get("stderr", ""),
                 "error": error, "worker": reply.get("worker"), "via": reply.get("via"),
                 "ms": reply.get("ms"),
                 "code_sha256": hashlib.sha256(request["code"].encode()).hexdigest()}
