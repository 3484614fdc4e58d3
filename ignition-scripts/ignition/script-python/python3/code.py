"""python3 - call CPython 3 from Ignition scripts through the py3sidecar service.

    python3.call("statistics:mean", [[1, 2, 3]])          # -> 2
    python3.execute("x * 2", {"x": 21})                   # -> 42
    python3.call("mymodule:predict", [dataset])            # Dataset in, Dataset (or value) out
    python3.callAsync("mymodule:slow", [1], onSuccess=f, onError=g)

Settings live in py3sidecar.settings (transport, ports, token, timeouts). Timeouts here are in
milliseconds, like Ignition's own functions. Errors are raised as the exception classes below,
all subclasses of python3.Python3Error; PythonError carries the remote type, message and
traceback of an exception raised by your CPython code.

Failover: py3sidecar.settings.FAILOVER_SIDECARS lists more sidecars, tried in order after the
local one when it cannot be reached (or answers `unavailable` / `circuit_open`); a client-side
circuit breaker per sidecar skips a dead one in microseconds. python3.clientStatus() shows
each sidecar's breaker and which one is active.

One connection per sidecar is shared by every gateway thread and kept in system.util.getGlobals(). Ignition
re-runs script libraries on every project save: each run closes the previous connection (its
sockets and async threads), so saves never leak.
"""
import threading

import java.io
import java.lang
from java.lang import System
from java.util.concurrent import ThreadPoolExecutor, TimeUnit, ArrayBlockingQueue, ThreadFactory, \
    RejectedExecutionException
from java.util.concurrent.atomic import AtomicLong

_GLOBALS_KEY = 'py3sidecar.connection'
_PROTOCOL_VERSION = 1


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class Python3Error(Exception):
    """Base class of every error raised by the python3 library."""
    kind = 'internal'

    def __init__(self, message, remoteType=None, traceback=None, details=None):
        Exception.__init__(self, message)
        self.message = message
        self.remoteType = remoteType
        self.traceback = traceback
        self.details = details or {}

    def __str__(self):
        return self.message


class PythonError(Python3Error):
    """Your CPython code raised: remoteType, message and traceback are the remote ones."""
    kind = 'user'

    def __str__(self):
        text = '%s: %s' % (self.remoteType or 'Exception', self.message)
        if self.traceback:
            text += '\n--- Python 3 traceback ---\n' + self.traceback
        return text


class Timeout(Python3Error):
    """The call ran past its timeout; the sidecar killed and replaced the worker."""
    kind = 'timeout'


class WorkerCrashed(Python3Error):
    """The worker process died while running the call (exit code / signal in details)."""
    kind = 'crashed'


class Overloaded(Python3Error):
    """Too many calls are waiting; try again later."""
    kind = 'overloaded'


class CircuitOpen(Python3Error):
    """The sidecar stopped accepting calls after repeated failures (retryAfter seconds)."""
    kind = 'circuit_open'

    @property
    def retryAfter(self):
        return self.details.get('retry_after')


class Unavailable(Python3Error):
    """The sidecar cannot be reached or has no worker to run the call."""
    kind = 'unavailable'


class BadRequest(Python3Error):
    """The request was malformed, too large, or held a value that cannot cross to Python 3."""
    kind = 'bad_request'


class Unauthorized(Python3Error):
    """The token in py3sidecar.settings does not match the sidecar's."""
    kind = 'unauthorized'


class InternalError(Python3Error):
    """A bug in the sidecar or in this library."""
    kind = 'internal'


class Quarantined(Python3Error):
    """This very request (same code or function, same arguments) crashed its worker again and
    again: the sidecar refuses it without running it until retryAfter seconds have passed or an
    operator clears it (`py3sidecar quarantine clear FINGERPRINT`). Other calls are served."""
    kind = 'quarantined'

    @property
    def retryAfter(self):
        return self.details.get('retry_after')

    @property
    def fingerprint(self):
        return self.details.get('fingerprint')


class TypeConversionError(BadRequest):
    """A value of a type that cannot cross to Python 3; the message names the type and position."""


_KIND_CLASSES = {
    'user': PythonError, 'timeout': Timeout, 'crashed': WorkerCrashed, 'overloaded': Overloaded,
    'circuit_open': CircuitOpen, 'unavailable': Unavailable, 'bad_request': BadRequest,
    'unauthorized': Unauthorized, 'internal': InternalError, 'quarantined': Quarantined,
}

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
}


def _error_from_reply(error):
    kind = error.get('kind') or 'internal'
    cls = _KIND_CLASSES.get(kind, InternalError)
    message = error.get('message') or ''
    if cls is not PythonError:
        prefix = _KIND_TEXT.get(kind, kind)
        message = '%s: %s' % (prefix, message) if message else prefix
    details = dict((k, v) for k, v in error.items()
                   if k not in ('kind', 'type', 'message', 'traceback'))
    return cls(message, error.get('type'), error.get('traceback'), details)


# ---------------------------------------------------------------------------
# The shared connection
# ---------------------------------------------------------------------------

class _DaemonThreads(ThreadFactory):
    def __init__(self, prefix):
        self.prefix = prefix
        self.count = AtomicLong()

    def newThread(self, runnable):
        t = java.lang.Thread(runnable, '%s-%d' % (self.prefix, self.count.incrementAndGet()))
        t.setDaemon(True)
        return t


def _read_file(path):
    try:
        f = open(path, 'r')
        try:
            return f.read()
        finally:
            f.close()
    except (IOError, OSError):
        return None


_SIDECAR_KEYS = ('name', 'transport', 'connection_file', 'py4j_host', 'py4j_python_port',
                 'zmq_endpoint', 'token', 'token_file')


def sidecars(cfg):
    """The sidecars in failover order, each a settings dict: the local one (the top-level
    settings of py3sidecar.settings, found through CONNECTION_FILE), then FAILOVER_SIDECARS."""
    first = dict(cfg)
    first['name'] = 'local'
    out = [first]
    names = set(['local'])
    for i, entry in enumerate(cfg.get('failover_sidecars') or []):
        where = 'py3sidecar.settings.FAILOVER_SIDECARS[%d]' % i
        if not isinstance(entry, dict):
            raise BadRequest('%s must be a dict (NAME, CONNECTION_FILE or PY4J_HOST/'
                             'PY4J_PYTHON_PORT/ZMQ_ENDPOINT, TOKEN or TOKEN_FILE), not %r'
                             % (where, entry))
        sc = dict(cfg)
        for k in _SIDECAR_KEYS:
            sc[k] = None
        sc['transport'] = cfg['transport']
        for k, v in entry.items():
            key = str(k).lower()
            if key not in _SIDECAR_KEYS:
                raise BadRequest('%s: unknown key %r (known: %s)'
                                 % (where, k, ', '.join(x.upper() for x in _SIDECAR_KEYS)))
            if key == 'transport' and v is None:
                continue
            sc[key] = v
        sc['name'] = sc['name'] or 'failover%d' % (i + 1)
        if sc['name'] in names:
            raise BadRequest('%s: the name %r is used twice' % (where, sc['name']))
        names.add(sc['name'])
        if not sc['connection_file'] and not (
                sc['transport'] == 'py4j' and sc['py4j_python_port']
                or sc['transport'] == 'zmq' and sc['zmq_endpoint']):
            raise BadRequest('%s (%s) says neither where the sidecar listens (PY4J_HOST and '
                             'PY4J_PYTHON_PORT, or ZMQ_ENDPOINT) nor its CONNECTION_FILE'
                             % (where, sc['name']))
        out.append(sc)
    return out


def resolve(cfg):
    """Settings with every None filled in from the sidecar's connection file (or defaults),
    and the token read: what a connection uses."""
    import json
    r = dict(cfg)
    info = {}
    path = cfg.get('connection_file')
    # Taken before the read: a sidecar that restarts while we read is noticed next time.
    r['connection_stamp'] = java.io.File(path).lastModified() if path else None
    text = _read_file(path) if path else None
    if text:
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
    py4j = info.get('py4j') or {}
    if r['py4j_host'] is None:
        r['py4j_host'] = py4j.get('host') or '127.0.0.1'
        if r['py4j_host'] in ('0.0.0.0', '::'):
            r['py4j_host'] = '127.0.0.1'
    if r['py4j_python_port'] is None:
        r['py4j_python_port'] = py4j.get('python_port') or 25334
    if r['zmq_endpoint'] is None:
        r['zmq_endpoint'] = (info.get('zmq') or {}).get('endpoint') or 'tcp://127.0.0.1:5557'
    if not r['token'] and not r['token_file']:
        r['token_file'] = info.get('token_file')
    if not r['token'] and r['token_file']:
        r['token'] = (_read_file(r['token_file']) or '').strip() or None
    return r


_WHERE_KEYS = ('transport', 'py4j_host', 'py4j_python_port', 'zmq_endpoint', 'token')


class _Sidecar(object):
    """One sidecar of the failover list: its resolved settings, its transport (shared by every
    gateway thread) and its client-side circuit breaker."""

    def __init__(self, settings):
        transport = py3sidecar.transport  # noqa: F821 (project library global)
        self.transport_mod = transport
        self.settings = settings
        self.name = settings['name']
        self.breaker = transport.CircuitBreaker(settings['breaker_failure_threshold'],
                                                settings['breaker_open_ms'], name=self.name)
        self.breaker.listener = _log_transition
        self._file = java.io.File(settings['connection_file']) \
            if settings['connection_file'] else None
        self._lock = threading.Lock()
        self.transport = None
        self.error = None
        self.closed = False
        self._install(resolve(settings))

    def _install(self, r):
        """Builds the transport for the resolved settings r (a failure is kept in self.error
        and raised as NotConnected by the calls). Returns the previous transport."""
        transport = self.transport_mod
        old = self.transport
        self.cfg = r
        self.token = r['token']
        self.stamp = r['connection_stamp']
        self.address = '%s:%s' % (r['py4j_host'], r['py4j_python_port']) \
            if r['transport'] == 'py4j' else r['zmq_endpoint']
        self.transport, self.error = None, None
        try:
            if r['transport'] == 'zmq':
                self.transport = transport.ZmqTransport(r['zmq_endpoint'], r['connect_timeout_ms'],
                                                        watch=bool(r.get('failover_sidecars')))
            elif r['transport'] == 'py4j':
                warm = {'v': _PROTOCOL_VERSION, 'id': 0, 'op': 'ping'}
                if self.token:
                    warm['token'] = self.token
                self.transport = transport.Py4JTransport(
                    r['py4j_host'], r['py4j_python_port'], self.token, r['connect_timeout_ms'],
                    r['default_timeout_ms'] + r['client_grace_ms'],
                    py3sidecar.codec.encode_request(warm))  # noqa: F821
            else:
                raise BadRequest("py3sidecar.settings.TRANSPORT must be 'py4j' or 'zmq', not %r"
                                 % (r['transport'],))
        except transport.TransportError, e:
            self.error = str(e)
        return old

    def refresh(self, used):
        """After a call could not be delivered: True when trying this sidecar again makes sense
        (another thread already replaced `used`, or the connection or token file now say
        something else: the transport was rebuilt)."""
        if self.transport is not used:
            return True
        try:
            r = resolve(self.settings)
        except Exception:
            return False
        with self._lock:
            if self.transport is not used or self.closed:
                return not self.closed
            self.stamp = r['connection_stamp']
            if [r[k] for k in _WHERE_KEYS] == [self.cfg[k] for k in _WHERE_KEYS]:
                return False
            old = self._install(r)
        if old is not None:
            old.close()
        return True

    def restarted(self):
        """While the breaker is open: the sidecar's connection file changed (it restarted,
        maybe on other ports): re-read it and let one probe call through now."""
        f = self._file
        if f is None or f.lastModified() == self.stamp:
            return None
        self.refresh(self.transport)
        return self.breaker.probe_now('the connection file changed (the sidecar restarted)')

    def send(self, payload, wait_ms):
        tr = self.transport
        if tr is None:
            raise self.transport_mod.NotConnected(self.error or 'no transport')
        return tr.request(payload, wait_ms)

    def status(self, active):
        snap = self.breaker.snapshot()
        snap.update({'name': self.name, 'transport': self.cfg['transport'],
                     'address': self.address, 'active': active is self})
        return snap

    def close(self):
        with self._lock:
            self.closed = True
            tr, self.transport = self.transport, None
            self.error = 'the python3 connection was closed (library reloaded?)'
        if tr is not None:
            tr.close()


def _log_transition(breaker, old, new, reason):
    try:
        log = _logger()
        text = 'python3: client circuit breaker of sidecar %r: %s -> %s (%s)' % (
            breaker.name, old, new, reason)
        if new == 'open':
            log.warn(text)
        else:
            log.info(text)
    except Exception:
        pass


_FAILOVER_KINDS = ('unavailable', 'circuit_open')


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
            for sc in sidecars(cfg):
                self.sidecars.append(_Sidecar(sc))
        except Exception:
            for sc in self.sidecars:
                sc.close()
            raise
        self.single = len(self.sidecars) == 1
        self.active = None
        self.executor = ThreadPoolExecutor(
            max(1, cfg['async_threads']), max(1, cfg['async_threads']), 30, TimeUnit.SECONDS,
            ArrayBlockingQueue(max(1, cfg['async_queue'])), _DaemonThreads('python3-async'))
        self.executor.allowCoreThreadTimeOut(True)

    def request(self, op, fields, timeout_ms, client_timeout_ms):
        """One call, tried on each sidecar in order until one serves it (see the settings'
        FAILOVER_SIDECARS). Returns the reply map (with 'sidecar': who answered)."""
        codec, transport = self.codec, self.transport_mod
        env = {'v': _PROTOCOL_VERSION, 'id': self.ids.incrementAndGet(), 'op': op}
        if timeout_ms is not None:
            env['timeout'] = timeout_ms / 1000.0
        env.update(fields)
        sidecars = self.sidecars
        last = len(sidecars) - 1
        started = System.nanoTime()
        problems = []
        error = None      # the error of the last attempt (raised as is with one sidecar)
        spent = False     # the caller's time ran out
        retried = False
        i = 0
        while i <= last:
            sc = sidecars[i]
            gen = sc.breaker.acquire()
            if gen is None:
                gen = sc.restarted()
                if gen is None:
                    error = self._skipped(sc)
                    problems.append(error.message)
                    i += 1
                    continue
            wait_ms = client_timeout_ms
            if i or retried:  # a later attempt: only what is left of the caller's time
                wait_ms = client_timeout_ms - (System.nanoTime() - started) / 1000000.0
                grace = client_timeout_ms - (timeout_ms or client_timeout_ms)
                if wait_ms < 1 or timeout_ms is not None and wait_ms - grace < 1:
                    sc.breaker.release(gen)
                    spent = True
                    problems.append('%s: not tried, the call\'s time was spent' % sc.name)
                    break
                if timeout_ms is not None:
                    env['timeout'] = (wait_ms - grace) / 1000.0
            if sc.token:
                env['token'] = sc.token
            else:
                env.pop('token', None)
            try:
                payload = codec.encode_request(env)
            except codec.EncodeError, e:
                sc.breaker.release(gen)
                raise TypeConversionError(str(e), details={'path': e.path, 'type': e.type_name})
            tr = sc.transport
            try:
                raw = sc.send(payload, wait_ms)
            except transport.DeadlineHit, e:
                sc.breaker.record(gen, False, 'no reply before the client-side deadline')
                error = Timeout('Python 3 call timed out: no reply within %d ms (client-side '
                                'deadline; %s)' % (wait_ms, e), details={'client_side': True})
                problems.append('%s: %s' % (sc.name, error.message))
                spent = True
                i += 1
                continue
            except transport.AuthFailed, e:
                sc.breaker.release(gen)
                if not retried and sc.refresh(tr):
                    retried = True
                    continue
                raise Unauthorized('the Python 3 sidecar%s rejected the token (check '
                                   'py3sidecar.settings TOKEN/TOKEN_FILE): %s'
                                   % (self._called(sc), e), details={'sent': False,
                                                                    'sidecar': sc.name})
            except transport.NotConnected, e:
                if not retried and sc.refresh(tr):
                    sc.breaker.release(gen)
                    retried = True
                    continue
                sc.breaker.record(gen, False, str(e))
                error = Unavailable('the Python 3 sidecar is unavailable: %s' % e,
                                    details={'sent': False, 'sidecar': sc.name})
                problems.append('%s: %s' % (sc.name, e))
                i += 1
                continue
            except transport.LinkLost, e:
                sc.breaker.record(gen, False, str(e))
                error = Unavailable('the Python 3 sidecar is unavailable: the connection broke, '
                                    'the call may or may not have run: %s' % e,
                                    details={'sent': True, 'sidecar': sc.name})
                problems.append('%s: %s' % (sc.name, e))
                i += 1
                continue
            sc.breaker.record(gen, True)  # it answered: alive, whatever the answer says
            try:
                reply = codec.decode(raw)
            except codec.CodecError, e:
                raise InternalError('cannot read the reply of the Python 3 sidecar: %s' % e)
            if not isinstance(reply, dict):
                raise InternalError('the Python 3 sidecar sent a reply that is not a map')
            if reply.get('id') not in (env['id'], None):
                raise InternalError('reply id %r does not match request id %r'
                                    % (reply.get('id'), env['id']))
            self.active = sc
            if reply.get('ok'):
                reply['sidecar'] = sc.name
                return reply
            err = reply.get('error') or {}
            if i < last and err.get('kind') in _FAILOVER_KINDS:
                problems.append('%s answered %s: %s' % (sc.name, err.get('kind'),
                                                         err.get('message')))
                error = None
                i += 1
                continue
            exc = _error_from_reply(err)
            exc.details['sidecar'] = sc.name
            if problems:
                exc.details['failover'] = problems
            raise exc
        if self.single and error is not None:
            raise error
        retry = [s.breaker.retry_after_ms() for s in sidecars if s.breaker.state == 'open']
        details = {'sent': False, 'sidecars': [s.name for s in sidecars], 'failover': problems,
                   'retry_after_ms': int(min(retry)) if retry else None}
        if spent:
            details['client_side'] = True
            raise Timeout('Python 3 call timed out: no sidecar answered in time: %s'
                          % '; '.join(problems), details=details)
        raise Unavailable('the Python 3 sidecar is unavailable: no sidecar could serve this '
                          'call: %s' % '; '.join(problems), details=details)

    def _called(self, sc):
        return '' if self.single else ' %r' % sc.name

    def _skipped(self, sc):
        """The error for a sidecar whose client breaker is open (no network touched)."""
        b = sc.breaker
        return Unavailable('the Python 3 sidecar is unavailable: the sidecar%s failed moments '
                           'ago (%s); this gateway tries it again in %d ms (client circuit '
                           'breaker)' % (' %r' % sc.name, b.last_error,
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
    g = _globals()
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


def _request(op, fields, timeout_ms=None, control=False):
    # Designer, Script Console, Vision client: no sidecar on this PC; the gateway calls it.
    if py3sidecar.gatewayroute.route() == 'gateway':  # noqa: F821
        return py3sidecar.gatewayroute.request(op, fields, timeout_ms, control)  # noqa: F821
    return _direct_request(op, fields, timeout_ms, control)


def _direct_request(op, fields, timeout_ms=None, control=False):
    """This JVM talks to the sidecar (gateway scope, and the gateway's message handler)."""
    conn = _connection()
    cfg = conn.cfg
    if timeout_ms is None:
        timeout_ms = cfg['control_timeout_ms'] if control else cfg['default_timeout_ms']
    timeout_ms = int(timeout_ms)
    if timeout_ms <= 0:
        raise BadRequest('timeout must be a positive number of milliseconds, not %r' % timeout_ms)
    client_ms = timeout_ms + cfg['client_grace_ms']
    send_timeout = None if control else timeout_ms
    try:
        return conn.request(op, fields, send_timeout, client_ms)
    except Unavailable, e:
        # Closed by a library reload while this call was on its way: it was certainly not
        # run; once more on the fresh connection.
        if not conn.closed or e.details.get('sent') is not False:
            raise
        return _connection().request(op, fields, send_timeout, client_ms)


def close():
    """Closes the shared connection (the next call opens a new one)."""
    g = _globals()
    with _lock:
        conn = g.pop(_GLOBALS_KEY, None)
    if conn is not None:
        conn.close()


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

def execute(code, variables=None, timeout=None):
    """Runs `code` in a fresh namespace of a CPython 3 worker and returns its value.

    Args:
        code (str): Python 3 source. The value is the trailing expression, else the variable
            `result`.
        variables (dict): optional names bound in the namespace before the code runs.
        timeout (int): optional, milliseconds.
    Returns:
        The value, converted to Jython/Java types (Datasets come back as Ignition Datasets).
    """
    return executeFull(code, variables, timeout)['value']


def executeFull(code, variables=None, timeout=None):
    """Like execute(), but returns a dict: value, stdout, stderr, worker, duration (ms) and
    sidecar (the name of the sidecar that served it: 'local' or one of FAILOVER_SIDECARS)."""
    fields = {'code': code}
    if variables is not None:
        fields['vars'] = variables
    r = _request('execute', fields, timeout)
    return {'value': r.get('value'), 'stdout': r.get('stdout', ''), 'stderr': r.get('stderr', ''),
            'worker': r.get('worker'), 'duration': r.get('ms'), 'sidecar': r.get('sidecar')}


def call(target, args=None, kwargs=None, timeout=None):
    """Calls a function of an importable CPython 3 module and returns its value.

    Args:
        target (str): "package.module:function" (or "module:Class.method").
        args (list): positional arguments.
        kwargs (dict): keyword arguments.
        timeout (int): optional, milliseconds.
    """
    fields = {'target': target}
    if args is not None:
        fields['args'] = list(args)
    if kwargs is not None:
        fields['kwargs'] = kwargs
    return _request('call', fields, timeout).get('value')


def callFull(target, args=None, kwargs=None, timeout=None):
    """Like call(), but returns a dict: value, stdout, stderr, worker, duration (ms), sidecar."""
    fields = {'target': target}
    if args is not None:
        fields['args'] = list(args)
    if kwargs is not None:
        fields['kwargs'] = kwargs
    r = _request('call', fields, timeout)
    return {'value': r.get('value'), 'stdout': r.get('stdout', ''), 'stderr': r.get('stderr', ''),
            'worker': r.get('worker'), 'duration': r.get('ms'), 'sidecar': r.get('sidecar')}


def _logger():
    return system.util.getLogger(py3sidecar.settings.LOGGER_NAME)  # noqa: F821


def _submit(fn, onSuccess, onError):
    class _Task(java.lang.Runnable):
        def run(self):
            try:
                value = fn()
            except Exception, e:
                _deliver(onError, e, 'onError')
                return
            except java.lang.Throwable, e:
                _deliver(onError, InternalError('%s' % e), 'onError')
                return
            _deliver(onSuccess, value, 'onSuccess')

    try:
        if py3sidecar.gatewayroute.route() == 'gateway':  # noqa: F821
            executor = py3sidecar.gatewayroute.executor()  # noqa: F821
        else:
            executor = _connection().executor
        return executor.submit(_Task())
    except RejectedExecutionException:
        _deliver(onError, Overloaded('too many python3 async calls waiting (py3sidecar.settings.'
                                     'ASYNC_QUEUE)'), 'onError')
    except Python3Error, e:
        _deliver(onError, e, 'onError')
    return None


def _deliver(callback, value, name):
    if callback is None:
        if name == 'onError':
            _logger().warn('python3 async call failed (no onError given): %s' % (value,))
        return
    try:
        callback(value)
    except Exception, e:
        _logger().error('python3 async %s callback raised: %s' % (name, e))
    except java.lang.Throwable, e:
        _logger().error('python3 async %s callback raised: %s' % (name, e))


def executeAsync(code, variables=None, timeout=None, onSuccess=None, onError=None):
    """execute() on a background thread; never blocks the caller.

    onSuccess(value) or onError(exception) is called on that thread. Returns a
    java.util.concurrent.Future, or None when the call could not even be queued (onError was
    then already called with Overloaded or Unavailable).
    """
    return _submit(lambda: execute(code, variables, timeout), onSuccess, onError)


def callAsync(target, args=None, kwargs=None, timeout=None, onSuccess=None, onError=None):
    """call() on a background thread; never blocks the caller. See executeAsync."""
    return _submit(lambda: call(target, args, kwargs, timeout), onSuccess, onError)


def ping(timeout=None):
    """Returns the sidecar's ping reply; raises Unavailable when it cannot be reached."""
    return _request('ping', {}, timeout, control=True).get('value')


def health(timeout=None):
    """Returns the health report of the sidecar that answered (the first one that can, in
    failover order; a dict, as the sidecar reports it), plus 'client': {'sidecar': its name,
    'sidecars': clientStatus()}."""
    r = _request('health', {}, timeout, control=True)
    report = r.get('value')
    if isinstance(report, dict):
        report['client'] = {'sidecar': r.get('sidecar'), 'sidecars': clientStatus()}
    return report


def clientStatus():
    """This gateway's view of its sidecars, without calling any: a list in failover order
    ('local' first, then py3sidecar.settings.FAILOVER_SIDECARS), one dict per sidecar:
        name, transport, address, active (True for the sidecar that answered the last call),
        state (its client circuit breaker: 'closed', 'open' or 'half_open'), failures
        (consecutive), retryAfterMs (until the next probe), opened (times), rejected (calls
        that skipped it), lastError, lastTransition ({from, to, reason, msAgo} or None).
    """
    return _connection().status()


def diagnostics(command='health', timeout=None, **options):
    """Runs a diagnostics command of the sidecar and returns its value (a dict; its 'report'
    is the text an operator reads). Commands: 'health', 'performance', 'memory' (top=N: the
    biggest allocation sites, tracemalloc), 'threads', 'history' (limit=N), 'workers',
    'config', 'help'. An unknown command or option raises BadRequest."""
    fields = {'command': command}
    if options:
        fields['args'] = options
    return _request('diag', fields, timeout, control=True).get('value')


# Ignition re-runs this library on every project save: close the previous run's connection
# now, so its sockets and threads are released (the next call opens a fresh one).
close()
