"""py3sidecar.client - the gateway's side of python3.*: one shared connection and failover.

Owns: the _Connection kept in system.util.getGlobals() (one py3sidecar.endpoints.Sidecar per
entry of the failover list, request ids, the failover loop across them with the caller's time
budget, the direct route's async executor), re-creating it when the settings module was
re-executed, and turning error replies into python3's exception classes. Must not touch: the
public API and the exception classes (python3), each sidecar's settings, transport and breaker
(py3sidecar.endpoints), the wire and the sockets (py3sidecar.transport), value encoding
(py3sidecar.codec), the Designer/Vision route (py3sidecar.gatewayroute).

Gateway scope only (resource scope "G", like the transport it drives): the python3 facade calls
direct_request() when py3sidecar.gatewayroute.route() says 'direct'. Exceptions are looked up as
python3.<Class> at call time, so a project save (which re-executes every module) is followed.
"""
import threading

import java.lang
from java.lang import System
from java.util.concurrent import ThreadPoolExecutor, TimeUnit, ArrayBlockingQueue
from java.util.concurrent.atomic import AtomicLong

try:  # the helper jar (optional): a call's exchange with a sidecar in Java, same behaviour
    from com.py3sidecar.gateway import Caller as _Caller, FastCall as _FastCall
    from com.py3sidecar.gateway.Link import Failed as _Failed
except ImportError:
    _Caller = _FastCall = _Failed = None

_GLOBALS_KEY = 'py3sidecar.connection'
_PROTOCOL_VERSION = 1


_KIND_TEXT = {
    'timeout': 'Python 3 call timed out',
    'crashed': 'the Python 3 worker crashed',
    'overloaded': 'the Python 3 sidecar is overloaded',
    'circuit_open': 'the Python 3 sidecar is refusing calls (circuit open)',
    'unavailable': 'the Python 3 sidecar is unavailable',
    'bad_request': 'bad request to the Python 3 sidecar',
    'unauthorized': 'the Python 3 sidecar rejected the token (check py3sidecar.settings TOKEN/TOKEN_FILE)',
    'internal': 'internal error in the Python 3 sidecar',
    'quarantined': 'the Python 3 sidecar refuses this request (quarantined: it kept crashing workers)',
    'forbidden': 'the Python 3 sidecar does not grant this to calls from the Designer or Vision clients',
}


def _error_from_reply(error):
    p3 = python3  # noqa: F821 (project library global: the exception classes)
    kind = error.get('kind') or 'internal'
    cls = p3._KIND_CLASSES.get(kind, p3.InternalError)
    message = error.get('message') or ''
    if cls is not p3.PythonError:
        prefix = _KIND_TEXT.get(kind, kind)
        message = '%s: %s' % (prefix, message) if message else prefix
    details = dict((k, v) for k, v in error.items()
                   if k not in ('kind', 'type', 'message', 'traceback'))
    return cls(message, error.get('type'), error.get('traceback'), details)

# ---------------------------------------------------------------------------
# The shared connection
# ---------------------------------------------------------------------------


_FAILOVER_KINDS = ('unavailable', 'circuit_open')
_RETRY = object()  # _Connection._attempt: try the same sidecar again (its transport was rebuilt)
_NEXT = object()   # _Connection._attempt: not served there; the error is in _Tries.error
_UNSENT = object()  # _Connection.caller: the Java side sent nothing (the Jython encoder's turn)


class _Tries(object):
    """What one call's attempts learned so far, across the failover list."""

    def __init__(self, timeout_ms, client_timeout_ms, started=None):
        self.timeout_ms = timeout_ms
        self.client_timeout_ms = client_timeout_ms
        self.started = System.nanoTime() if started is None else started
        self.problems = []
        self.error = None     # the error of the last attempt (raised as is with one sidecar)
        self.spent = False    # the caller's time ran out
        self.retried = False

    def left(self, env):
        """Milliseconds left of the caller's time for a later attempt (env's timeout set to
        match), or None when too little is left to try."""
        wait_ms = self.client_timeout_ms - (System.nanoTime() - self.started) / 1000000.0
        grace = self.client_timeout_ms - (self.timeout_ms or self.client_timeout_ms)
        if wait_ms < 1 or self.timeout_ms is not None and wait_ms - grace < 1:
            return None
        if self.timeout_ms is not None:
            env['timeout'] = (wait_ms - grace) / 1000.0
        return wait_ms


class _Connection(object):
    def __init__(self, settings_get):
        self.settings_get = settings_get  # identity tells a re-executed settings module apart
        self.cfg = cfg = settings_get()
        self.ids = AtomicLong()
        self.closed = False
        self.codec = py3sidecar.codec  # noqa: F821 (project library global)
        self.transport_mod = py3sidecar.transport  # noqa: F821
        self.sidecars = []
        try:
            for sc in py3sidecar.endpoints.sidecars(cfg):
                self.sidecars.append(py3sidecar.endpoints.Sidecar(sc, _PROTOCOL_VERSION))
        except Exception:
            for sc in self.sidecars:
                sc.close()
            raise
        self.single = len(self.sidecars) == 1
        # the helper jar's path of a call to the first sidecar (None: every call in Jython)
        self.caller = None if _Caller is None else _Caller(
            self, self.sidecars[0], self.ids, self.codec, self.transport_mod.PROBE_ID, _UNSENT,
            _PROTOCOL_VERSION)
        self.active = None
        self.executor = ThreadPoolExecutor(
            max(1, cfg['async_threads']), max(1, cfg['async_threads']), 30, TimeUnit.SECONDS,
            ArrayBlockingQueue(max(1, cfg['async_queue'])),
            py3sidecar.background.DaemonThreads('python3-async'))  # noqa: F821
        self.executor.allowCoreThreadTimeOut(True)

    def request(self, op, fields, timeout_ms, client_timeout_ms, routed=None):
        """One call, tried on each sidecar in order until one serves it (see the settings'
        FAILOVER_SIDECARS). Returns the reply map (with 'sidecar': who answered). `routed`: the
        gateway route's mark (py3sidecar.gatewayroute), set last so no field can replace it."""
        first = None  # the first sidecar's attempt made in Java: (gen, outcome, transport)
        if self.caller is not None:
            first = self.caller(op, fields, timeout_ms, client_timeout_ms, routed)
            if type(first) is dict:
                return first  # served (see com.py3sidecar.gateway.Caller)
        if first is None:
            rid, started = self.ids.incrementAndGet(), System.nanoTime()
        else:
            rid, started, first = first[3], first[4], first[:3]
        env = {'v': _PROTOCOL_VERSION, 'id': rid, 'op': op}
        if timeout_ms is not None:
            env['timeout'] = timeout_ms / 1000.0
        env.update(fields)
        env['op'] = op
        if routed is not None:
            env['routed'] = routed
        else:
            env.pop('routed', None)
        t = _Tries(timeout_ms, client_timeout_ms, started)
        last = len(self.sidecars) - 1
        i = 0
        while i <= last:
            sc = self.sidecars[i]
            if first is not None:
                (gen, done, used), first = first, None
            else:
                gen, done, used = sc.breaker.acquire(), None, None
            if gen is None:
                gen = sc.restarted()
                if gen is None:
                    t.error = self._skipped(sc)
                    t.problems.append(t.error.message)
                    i += 1
                    continue
            wait_ms = client_timeout_ms
            if i or t.retried:  # a later attempt: only what is left of the caller's time
                wait_ms = t.left(env)
                if wait_ms is None:
                    sc.breaker.release(gen)
                    t.spent = True
                    t.problems.append('%s: not tried, the call\'s time was spent' % sc.name)
                    break
            got = self._attempt(sc, gen, env, wait_ms, t, done, used)
            if got is _RETRY:
                continue
            if got is not _NEXT:
                reply = self._answer(sc, got, env, i < last, t)
                if reply is not None:
                    return reply
            i += 1
        raise self._exhausted(t)

    def _attempt(self, sc, gen, env, wait_ms, t, done=None, used=None):
        """Sends env to sc: the decoded reply (its id checked), or _RETRY (same sidecar, rebuilt
        transport) or _NEXT (not served: the error is in t); raises what no failover can help.
        `done`: the outcome of this attempt already made in Java (self.caller) on transport
        `used`: the reply that is not ok (recorded), a Link.Failed, or _UNSENT."""
        codec, transport = self.codec, self.transport_mod
        p3 = python3  # noqa: F821 (project library global: the exception classes)
        if type(done) is dict:
            return done  # a reply that is not ok (recorded already): _answer reads it
        payload = None
        if done is None or done is _UNSENT:
            payload, done = self._payload(sc, gen, env), None
        tr = sc.transport if used is None else used
        try:
            if done is not None:  # the Java attempt's transport failure, as a Jython one's
                raise transport.failed(tr, done)
            reply = self._send(sc, tr, payload, wait_ms, env['id'])
        except codec.CodecError, e:
            sc.breaker.record(gen, True)  # it answered, with bytes we cannot read
            raise p3.InternalError('cannot read the reply of the Python 3 sidecar: %s' % e)
        except transport.DeadlineHit, e:
            sc.breaker.record(gen, False, 'no reply before the client-side deadline')
            t.error = p3.Timeout('Python 3 call timed out: no reply within %d ms (client-side '
                                 'deadline; %s)' % (wait_ms, e), details={'client_side': True})
            t.problems.append('%s: %s' % (sc.name, t.error.message))
            t.spent = True
            return _NEXT
        except transport.AuthFailed, e:
            sc.breaker.release(gen)
            if not t.retried and sc.refresh(tr):
                t.retried = True
                return _RETRY
            raise p3.Unauthorized('the Python 3 sidecar%s rejected the token (check '
                                  'py3sidecar.settings TOKEN/TOKEN_FILE): %s'
                                  % (self._called(sc), e), details={'sent': False,
                                                                   'sidecar': sc.name})
        except transport.NotConnected, e:
            if not t.retried and sc.refresh(tr):
                sc.breaker.release(gen)
                t.retried = True
                return _RETRY
            sc.breaker.record(gen, False, str(e))
            t.error = p3.Unavailable('the Python 3 sidecar is unavailable: %s' % e,
                                     details={'sent': False, 'sidecar': sc.name})
            t.problems.append('%s: %s' % (sc.name, e))
            return _NEXT
        except transport.LinkLost, e:  # a ReplyMismatch too: out of step, the socket dropped
            sc.breaker.record(gen, False, str(e))
            what = 'the link' if isinstance(e, transport.ReplyMismatch) else 'the connection'
            t.error = p3.Unavailable('the Python 3 sidecar is unavailable: %s broke, the call '
                                     'may or may not have run: %s' % (what, e),
                                     details={'sent': True, 'sidecar': sc.name})
            t.problems.append('%s: %s' % (sc.name, e))
            return _NEXT
        sc.breaker.record(gen, True)  # it answered: alive, whatever the answer says
        return reply

    def _payload(self, sc, gen, env):
        """env with sc's token, encoded; TypeConversionError (the permit released) when a value
        cannot cross."""
        codec = self.codec
        if sc.token:
            env['token'] = sc.token
        else:
            env.pop('token', None)
        try:
            return codec.encode_request(env)
        except codec.EncodeError, e:
            sc.breaker.release(gen)
            raise python3.TypeConversionError(  # noqa: F821 (project library global)
                str(e), details={'path': e.path, 'type': e.type_name})

    def _send(self, sc, tr, payload, wait_ms, rid):
        """sc's decoded reply to payload, its id checked (_read_reply's rule): in Java when the
        helper jar drives tr (its link) and the codec's helper is on, else in Jython."""
        link = getattr(tr, 'link', None) if _FastCall is not None else None
        if link is None or self.codec._fast is None:
            return sc.send(payload, wait_ms, lambda raw: self._read_reply(raw, rid))
        try:
            return _FastCall.exchange(link, payload, max(1, int(wait_ms)), rid,
                                      self.transport_mod.PROBE_ID, self.codec._BASIC_FACTORY)
        except _Failed, f:
            raise self.transport_mod.failed(tr, f)

    def _read_reply(self, raw, rid):
        """The transport's check, run before a socket goes back to its pool: the decoded
        reply; None for the answer to a link check (py3sidecar.transport.PROBE_ID); raises
        ReplyMismatch for a reply that is not this request's (a success must name it; only a
        failure may say id null: the sidecar could not read the request)."""
        transport = self.transport_mod
        reply = self.codec.decode(raw)
        if not isinstance(reply, dict):
            raise self.codec.DecodeError('the sidecar sent a reply that is not a map')
        got = reply.get('id')
        if got == rid or got is None and not reply.get('ok'):
            return reply
        if got == transport.PROBE_ID:
            return None
        if got is None:
            raise transport.ReplyMismatch('the sidecar answered with a success that names no '
                                          'request (reply id null, this call\'s is %r): the '
                                          'link is out of step, its socket was dropped' % rid)
        raise transport.ReplyMismatch('the sidecar\'s reply is for another call (reply id %r, '
                                      'this call\'s is %r): the link is out of step, its '
                                      'socket was dropped' % (got, rid))

    def _answer(self, sc, reply, env, more, t):
        """The reply of sc: returned when it is a value, None when it says to try the next
        sidecar (more of them left, and it answered unavailable/circuit_open), else raised."""
        self.active = sc
        if reply.get('ok'):
            reply['sidecar'] = sc.name
            return reply
        err = reply.get('error') or {}
        if more and err.get('kind') in _FAILOVER_KINDS:
            t.problems.append('%s answered %s: %s' % (sc.name, err.get('kind'),
                                                       err.get('message')))
            t.error = None
            return None
        exc = _error_from_reply(err)
        exc.details['sidecar'] = sc.name
        if t.problems:
            exc.details['failover'] = t.problems
        raise exc

    def _exhausted(self, t):
        """The error when no sidecar served the call."""
        p3 = python3  # noqa: F821 (project library global: the exception classes)
        if self.single and t.error is not None:
            return t.error
        sidecars = self.sidecars
        retry = [s.breaker.retry_after_ms() for s in sidecars if s.breaker.state == 'open']
        details = {'sent': False, 'sidecars': [s.name for s in sidecars],
                   'failover': t.problems, 'retry_after_ms': int(min(retry)) if retry else None}
        if t.spent:
            details['client_side'] = True
            return p3.Timeout('Python 3 call timed out: no sidecar answered in time: %s'
                              % '; '.join(t.problems), details=details)
        return p3.Unavailable('the Python 3 sidecar is unavailable: no sidecar could serve this '
                              'call: %s' % '; '.join(t.problems), details=details)

    def _called(self, sc):
        return '' if self.single else ' %r' % sc.name

    def _skipped(self, sc):
        """The error for a sidecar whose client breaker is open (no network touched)."""
        b = sc.breaker
        return python3.Unavailable('the Python 3 sidecar is unavailable: the sidecar%s failed '
                                   'moments ago (%s); this gateway tries it again in %d ms '
                                   '(client circuit breaker)' % (' %r' % sc.name, b.last_error,
                                                                 b.retry_after_ms()),
                                   details={'sent': False, 'sidecar': sc.name,
                                            'retry_after_ms': int(b.retry_after_ms())})

    def status(self):
        active = self.active
        return [sc.status(active) for sc in self.sidecars]

    def close(self):
        self.closed = True
        try:
            self.executor.shutdownNow()
        except java.lang.Exception:
            pass
        for sc in self.sidecars:
            sc.close()


_lock = threading.Lock()


def _globals():
    return system.util.getGlobals()  # noqa: F821 (Ignition global)


def _connection():
    g = system.util.getGlobals()  # noqa: F821 (Ignition global; _globals() inlined: every call)
    conn = g.get(_GLOBALS_KEY)
    settings_get = py3sidecar.settings.get  # noqa: F821
    if conn is not None and not conn.closed and conn.settings_get is settings_get:
        return conn
    with _lock:
        conn = g.get(_GLOBALS_KEY)
        if conn is not None and not conn.closed and conn.settings_get is settings_get:
            return conn
        if conn is not None:
            conn.close()
        conn = _Connection(settings_get)
        g[_GLOBALS_KEY] = conn
        return conn


def direct_request(op, fields, timeout_ms=None, control=False, routed=None):
    """One request from this JVM to the sidecars (gateway scope, and the gateway's message
    handler): the reply map (with 'sidecar': who answered), or python3's typed error. `routed`
    is the message handler's mark (the sidecar then grants only python3.access.routed); gateway
    scripts never pass it and keep full access."""
    conn = _connection()
    cfg = conn.cfg
    if timeout_ms is None:
        timeout_ms = cfg['control_timeout_ms'] if control else cfg['default_timeout_ms']
    timeout_ms = int(timeout_ms)
    if timeout_ms <= 0:
        raise python3.BadRequest('timeout must be a positive number of milliseconds, not %r'
                                 % timeout_ms)
    client_ms = timeout_ms + cfg['client_grace_ms']
    send_timeout = None if control else timeout_ms
    try:
        return conn.request(op, fields, send_timeout, client_ms, routed)
    except python3.Unavailable, e:
        # Closed by a library reload while this call was on its way: it was certainly not
        # run; once more on the fresh connection.
        if not conn.closed or e.details.get('sent') is not False:
            raise
        return _connection().request(op, fields, send_timeout, client_ms, routed)


def status():
    """python3.clientStatus(): each sidecar's client breaker, in failover order."""
    return _connection().status()


def executor():
    """The async executor of the direct route (executeAsync/callAsync on the gateway)."""
    return _connection().executor


def close():
    """Closes the shared connection (the next call opens a new one)."""
    g = _globals()
    with _lock:
        conn = g.pop(_GLOBALS_KEY, None)
    if conn is not None:
        conn.close()
