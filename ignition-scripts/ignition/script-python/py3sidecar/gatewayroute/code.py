"""py3sidecar.gatewayroute - python3.* from the Designer, the Script Console and Vision clients.

Those scopes run in a JVM on the operator's PC: the sidecar, its token and the gateway's jars are
not there. So the python3 library sends such calls to the gateway instead, with
system.util.sendRequest(project, MESSAGE_HANDLER, payload), and the gateway message handler
(shipped in the bundle; its body is `return py3sidecar.gatewayroute.handle(payload)`) makes the
call on the gateway and returns its outcome. The caller sees the same values, the same typed
errors (python3.PythonError, Timeout, ...) and the same timeouts as a gateway script.

Gateway and Perspective scripts (they run on the gateway) call the sidecar directly.

Security: whoever can open a client of the project can call its message handlers (Ignition
gives sendRequest no client permission). So the handler does not relay what it is sent: it
builds the request itself from the fields each op has (a client's token, op, pool or mark
never reach the sidecar), and marks it `routed` (ROUTE, the project that ran the handler, the
user and session the client claims: Ignition hands a gateway message handler only the payload,
so those two are prefixed 'claimed:'). The sidecar grants a marked request only what
python3.access.routed allows (else python3.Forbidden); gateway scripts are unmarked and keep
full access. See INSTALL.txt "Security: the gateway route".
"""
import java.lang
from java.util.concurrent import ArrayBlockingQueue, ThreadPoolExecutor, TimeUnit

_SCOPE_DIRECT = 'direct'
_SCOPE_GATEWAY = 'gateway'
ROUTE = 'message-handler'  # routed.route: the sidecar's policy for what this handler relays
# The members each op may carry through the handler; nothing else of a payload is relayed.
_FIELDS = {'execute': ('code', 'vars', 'pool'), 'call': ('target', 'args', 'kwargs', 'pool'),
           'ping': (), 'health': (), 'diag': ('command', 'args')}
_CONTROL_OPS = ('ping', 'health', 'diag')
_CLAIM_MAX = 200
# Extra seconds sendRequest waits past the call's own deadline: the gateway answers `timeout`
# itself when the call runs too long; this is only the backstop for a gateway that is gone.
_ROUTE_GRACE_S = 5


def _settings():
    return py3sidecar.settings  # noqa: F821 (project library global)


def _system_flags():
    """Vision/Designer system flags, or None in gateway scope (where the function is absent)."""
    for ns in ('vision', 'util'):
        fn = getattr(getattr(system, ns, None), 'getSystemFlags', None)  # noqa: F821
        if fn is not None:
            return fn()
    return None


def route():
    """'direct' (this JVM talks to the sidecar) or 'gateway' (through the message handler)."""
    forced = getattr(py3sidecar.settings, 'ROUTE', 'auto')  # noqa: F821 (once per call: inline)
    if forced in (_SCOPE_DIRECT, _SCOPE_GATEWAY):
        return forced
    return _SCOPE_DIRECT if _system_flags() is None else _SCOPE_GATEWAY


def _project():
    name = getattr(_settings(), 'GATEWAY_PROJECT', None)
    return name or system.util.getProjectName()  # noqa: F821


def request(op, fields, timeout_ms, control):
    """Client side: one python3 request through the gateway. Returns the reply dict the direct
    route returns (value, stdout, stderr, worker, ms, sidecar) or raises its typed error."""
    p3 = python3  # noqa: F821 (project library global)
    s = _settings()
    if timeout_ms is None:
        timeout_ms = s.CONTROL_TIMEOUT_MS if control else s.DEFAULT_TIMEOUT_MS
    timeout_ms = int(timeout_ms)
    payload = {'op': op, 'fields': fields, 'timeoutMs': timeout_ms, 'control': bool(control),
               'caller': _caller()}
    wait_s = int((timeout_ms + s.CLIENT_GRACE_MS) / 1000.0) + _ROUTE_GRACE_S
    handler = getattr(s, 'MESSAGE_HANDLER', 'py3sidecar')
    try:
        outcome = system.util.sendRequest(_project(), handler, payload,  # noqa: F821
                                          timeoutSec=wait_s)
    except (Exception, java.lang.Throwable), e:
        text = '%s' % (e,)
        if 'imeout' in text:
            raise p3.Timeout('no answer from the gateway within %d s (python3 call through the '
                             'message handler %r): %s' % (wait_s, handler, text))
        raise p3.Unavailable('the gateway did not take the python3 call (message handler %r of '
                             'project %r): %s. Is the handler installed? See INSTALL.txt.'
                             % (handler, _project(), text))
    if not hasattr(outcome, 'get') or outcome.get('ok') is None:
        raise p3.InternalError('the gateway message handler %r answered %r, not a python3 '
                               'outcome: its body must be `return '
                               'py3sidecar.gatewayroute.handle(payload)`' % (handler, outcome))
    if not outcome.get('ok'):
        error = dict(outcome.get('error') or {})
        cls = p3._KIND_CLASSES.get(error.get('kind'), p3.InternalError)
        raise cls(error.get('message') or '', error.get('type'), error.get('traceback'),
                  dict(error.get('details') or {}))
    return dict(outcome.get('reply') or {})


def _call_first(*names):
    """The value of the first of system.<ns>.<fn> (names 'ns.fn') this scope has, else None."""
    for name in names:
        ns, fn = name.split('.')
        f = getattr(getattr(system, ns, None), fn, None)  # noqa: F821 (Ignition global)
        if f is not None:
            try:
                return f()
            except (Exception, java.lang.Throwable):
                return None
    return None


def _caller():
    """Client side: who this client says it is (8.3 system.vision.*, 8.1 system.security /
    system.util); the gateway can only take it as a claim."""
    return {'user': _call_first('vision.getUsername', 'security.getUsername'),
            'session': _call_first('vision.getClientId', 'util.getClientId')}


def _claimed(value):
    if value is None or not isinstance(value, basestring):
        return None
    return 'claimed:' + value[:_CLAIM_MAX]


def _mark(payload):
    """Gateway side: the `routed` mark of what this handler relays. `project` is the project
    whose handler runs (the gateway's own knowledge); user and session only as claimed."""
    caller = payload.get('caller')
    caller = caller if hasattr(caller, 'get') else {}
    project = None
    try:
        project = system.util.getProjectName()  # noqa: F821 (Ignition global)
    except (Exception, java.lang.Throwable):
        pass
    return {'route': ROUTE, 'project': project if isinstance(project, basestring) else None,
            'user': _claimed(caller.get('user')), 'session': _claimed(caller.get('session'))}


def _fields(op, payload):
    """The op's own members of the client's fields, nothing else (no token, op, v, id, mark)."""
    sent = payload.get('fields')
    sent = sent if hasattr(sent, 'get') else {}
    fields = {}
    for key in _FIELDS[op]:
        value = sent.get(key)
        if value is not None:
            fields[key] = value
    return fields


def handle(payload):
    """Gateway side (the message handler's body): runs the request, returns its outcome as a
    dict that crosses back to the caller; never raises. The request is built here, from the
    op's fields of the payload, and marked `routed` (see the module's docstring)."""
    p3 = python3  # noqa: F821
    try:
        op = payload.get('op')
        if op not in _FIELDS:
            raise p3.BadRequest('unknown python3 op %r through the gateway route' % (op,))
        timeout_ms = payload.get('timeoutMs')
        if timeout_ms is not None:
            try:
                timeout_ms = int(timeout_ms)
            except (TypeError, ValueError):
                raise p3.BadRequest('timeoutMs must be a number of milliseconds, not %r'
                                    % (timeout_ms,))
        reply = py3sidecar.client.direct_request(  # noqa: F821
            op, _fields(op, payload), timeout_ms, control=op in _CONTROL_OPS,
            routed=_mark(payload))
        keep = ('value', 'stdout', 'stderr', 'worker', 'ms', 'sidecar')
        return {'ok': True, 'reply': dict((k, reply.get(k)) for k in keep if k in reply)}
    except p3.Python3Error, e:
        # message as the caller's exception will show it (already prefixed by the library)
        return {'ok': False, 'error': {'kind': e.kind, 'message': e.message,
                                       'type': e.remoteType, 'traceback': e.traceback,
                                       'details': dict(e.details or {})}}
    except (Exception, java.lang.Throwable), e:
        return {'ok': False, 'error': {'kind': 'internal',
                                       'message': 'gateway route: %s' % (e,)}}


_EXECUTOR_KEY = 'py3sidecar.route.executor'


def executor():
    """The async executor of the gateway route (executeAsync/callAsync in the Designer or a
    Vision client): kept in the globals, one per JVM, threads from py3sidecar.background's
    daemon factory."""
    g = system.util.getGlobals()  # noqa: F821
    ex = g.get(_EXECUTOR_KEY)
    if ex is None or ex.isShutdown():
        s = _settings()
        threads = py3sidecar.background.DaemonThreads('python3-route-async')  # noqa: F821
        ex = ThreadPoolExecutor(max(1, s.ASYNC_THREADS), max(1, s.ASYNC_THREADS), 30,
                                TimeUnit.SECONDS, ArrayBlockingQueue(max(1, s.ASYNC_QUEUE)),
                                threads)
        ex.allowCoreThreadTimeOut(True)
        g[_EXECUTOR_KEY] = ex
    return ex
