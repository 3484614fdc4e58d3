"""python3 - call CPython 3 from Ignition scripts through the py3sidecar service.

    python3.call("statistics:mean", [[1, 2, 3]])          # -> 2
    python3.execute("x * 2", {"x": 21})                   # -> 42
    python3.call("mymodule:predict", [dataset])            # Dataset in, Dataset (or value) out
    python3.callAsync("mymodule:slow", [1], onSuccess=f, onError=g)

Settings live in py3sidecar.settings (transport, ports, token, timeouts). Timeouts here are in
milliseconds, like Ignition's own functions. Errors are raised as the exception classes below,
all subclasses of python3.Python3Error; PythonError carries the remote type, message and
traceback of an exception raised by your CPython code.

One connection is shared by every gateway thread and kept in system.util.getGlobals(). Ignition
re-runs script libraries on every project save: each run closes the previous connection (its
sockets and async threads), so saves never leak.
"""
import threading

import java.lang
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


class TypeConversionError(BadRequest):
    """A value of a type that cannot cross to Python 3; the message names the type and position."""


_KIND_CLASSES = {
    'user': PythonError, 'timeout': Timeout, 'crashed': WorkerCrashed, 'overloaded': Overloaded,
    'circuit_open': CircuitOpen, 'unavailable': Unavailable, 'bad_request': BadRequest,
    'unauthorized': Unauthorized, 'internal': InternalError,
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


def resolve(cfg):
    """Settings with every None filled in from the sidecar's connection file (or defaults),
    and the token read: what a connection uses."""
    import json
    r = dict(cfg)
    info = {}
    text = _read_file(cfg['connection_file']) if cfg['connection_file'] else None
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


class _Connection(object):
    def __init__(self, settings_get):
        self.settings_get = settings_get  # identity tells a re-executed settings module apart
        self.cfg = cfg = resolve(settings_get())
        self.token = cfg['token']
        self.ids = AtomicLong()
        self.closed = False
        codec = py3sidecar.codec  # noqa: F821 (project library global)
        transport = py3sidecar.transport  # noqa: F821
        self.codec, self.transport_mod = codec, transport
        try:
            if cfg['transport'] == 'zmq':
                self.transport = transport.ZmqTransport(cfg['zmq_endpoint'],
                                                        cfg['connect_timeout_ms'])
            elif cfg['transport'] == 'py4j':
                warm = codec.encode_request(self._envelope('ping', {}, None))
                self.transport = transport.Py4JTransport(
                    cfg['py4j_host'], cfg['py4j_python_port'], self.token,
                    cfg['connect_timeout_ms'], cfg['default_timeout_ms'] + cfg['client_grace_ms'],
                    warm)
            else:
                raise BadRequest("py3sidecar.settings.TRANSPORT must be 'py4j' or 'zmq', not %r"
                                 % (cfg['transport'],))
        except transport.TransportError, e:
            raise Unavailable('the Python 3 sidecar is unavailable: %s' % e,
                              details={'sent': False})
        self.executor = ThreadPoolExecutor(
            max(1, cfg['async_threads']), max(1, cfg['async_threads']), 30, TimeUnit.SECONDS,
            ArrayBlockingQueue(max(1, cfg['async_queue'])), _DaemonThreads('python3-async'))
        self.executor.allowCoreThreadTimeOut(True)

    def stale(self):
        """True when the connection file or token file now say something else (a sidecar
        restarted on other ports or with another token)."""
        try:
            now = resolve(self.settings_get())
        except Exception:
            return False
        keys = ('py4j_host', 'py4j_python_port', 'zmq_endpoint', 'token')
        return [now[k] for k in keys] != [self.cfg[k] for k in keys]

    def _envelope(self, op, fields, timeout_ms):
        env = {'v': _PROTOCOL_VERSION, 'id': self.ids.incrementAndGet(), 'op': op}
        if self.token:
            env['token'] = self.token
        if timeout_ms is not None:
            env['timeout'] = timeout_ms / 1000.0
        env.update(fields)
        return env

    def request(self, op, fields, timeout_ms, client_timeout_ms):
        codec, transport = self.codec, self.transport_mod
        env = self._envelope(op, fields, timeout_ms)
        try:
            payload = codec.encode_request(env)
        except codec.EncodeError, e:
            raise TypeConversionError(str(e), details={'path': e.path, 'type': e.type_name})
        try:
            raw = self.transport.request(payload, client_timeout_ms)
        except transport.DeadlineHit, e:
            raise Timeout('Python 3 call timed out: no reply within %d ms (client-side deadline; %s)'
                          % (client_timeout_ms, e), details={'client_side': True})
        except transport.AuthFailed, e:
            raise Unauthorized('the Python 3 sidecar rejected the token (check py3sidecar.settings '
                               'TOKEN/TOKEN_FILE): %s' % e, details={'sent': False})
        except transport.NotConnected, e:
            raise Unavailable('the Python 3 sidecar is unavailable: %s' % e, details={'sent': False})
        except transport.LinkLost, e:
            raise Unavailable('the Python 3 sidecar is unavailable: the connection broke, the call '
                              'may or may not have run: %s' % e, details={'sent': True})
        try:
            reply = codec.decode(raw)
        except codec.CodecError, e:
            raise InternalError('cannot read the reply of the Python 3 sidecar: %s' % e)
        if not isinstance(reply, dict):
            raise InternalError('the Python 3 sidecar sent a reply that is not a map')
        if reply.get('id') not in (env['id'], None):
            raise InternalError('reply id %r does not match request id %r' % (reply.get('id'), env['id']))
        if reply.get('ok'):
            return reply
        error = reply.get('error') or {}
        raise _error_from_reply(error)

    def close(self):
        self.closed = True
        try:
            self.executor.shutdownNow()
        except java.lang.Exception:
            pass
        self.transport.close()


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


def _drop(conn):
    with _lock:
        g = _globals()
        if g.get(_GLOBALS_KEY) is conn:
            g.pop(_GLOBALS_KEY, None)
    conn.close()


def _request(op, fields, timeout_ms=None, control=False):
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
    except (Unavailable, Unauthorized), e:
        not_run = e.details.get('sent') is False or e.kind == 'unauthorized'
        if not not_run and not conn.closed:
            raise
        # Certainly not run. Retry once on a fresh connection when this one was closed by a
        # library reload, or when the sidecar now listens elsewhere / has a new token.
        if not conn.closed:
            if not conn.stale():
                raise
            _drop(conn)
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
    """Like execute(), but returns a dict: value, stdout, stderr, worker, duration (ms)."""
    fields = {'code': code}
    if variables is not None:
        fields['vars'] = variables
    r = _request('execute', fields, timeout)
    return {'value': r.get('value'), 'stdout': r.get('stdout', ''), 'stderr': r.get('stderr', ''),
            'worker': r.get('worker'), 'duration': r.get('ms')}


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
    """Like call(), but returns a dict: value, stdout, stderr, worker, duration (ms)."""
    fields = {'target': target}
    if args is not None:
        fields['args'] = list(args)
    if kwargs is not None:
        fields['kwargs'] = kwargs
    r = _request('call', fields, timeout)
    return {'value': r.get('value'), 'stdout': r.get('stdout', ''), 'stderr': r.get('stderr', ''),
            'worker': r.get('worker'), 'duration': r.get('ms')}


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
        conn = _connection()
        return conn.executor.submit(_Task())
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
    """Returns the sidecar's health report (a dict, as the sidecar reports it)."""
    return _request('health', {}, timeout, control=True).get('value')


def diagnostics(command='summary', timeout=None):
    """Runs a diagnostics command of the sidecar and returns its value (pass-through)."""
    return _request('diag', {'command': command}, timeout, control=True).get('value')


# Ignition re-runs this library on every project save: close the previous run's connection
# now, so its sockets and threads are released (the next call opens a fresh one).
close()
