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

This module is the public API only: the exception classes, then the functions. The shared
connection and failover live in py3sidecar.client, each sidecar's settings, transport and
client breaker in py3sidecar.endpoints (both gateway scope), async tasks in
py3sidecar.background; Designer, Script Console and Vision calls go through
py3sidecar.gatewayroute.
"""
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


class Forbidden(Python3Error):
    """Called from the Designer or a Vision client (through the gateway's message handler): the
    sidecar does not grant this to that route; the message names its setting to change."""
    kind = 'forbidden'


class TypeConversionError(BadRequest):
    """A value of a type that cannot cross to Python 3; the message names the type and position."""


_KIND_CLASSES = {
    'user': PythonError, 'timeout': Timeout, 'crashed': WorkerCrashed, 'overloaded': Overloaded,
    'circuit_open': CircuitOpen, 'unavailable': Unavailable, 'bad_request': BadRequest,
    'unauthorized': Unauthorized, 'internal': InternalError, 'quarantined': Quarantined,
    'forbidden': Forbidden,
}

# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

def execute(code, variables=None, timeout=None, pool=None):
    """Runs `code` in a fresh namespace of a CPython 3 worker and returns its value.

    Args:
        code (str): Python 3 source. The value is the trailing expression, else the variable
            `result`.
        variables (dict): optional names bound in the namespace before the code runs.
        timeout (int): optional, milliseconds.
        pool (str): optional, one of the sidecar's named pools (python3.pools in its
            config, e.g. 'ml'); default: its primary pool.
    Returns:
        The value, converted to Jython/Java types (Datasets come back as Ignition Datasets).
    """
    return _execute(code, variables, timeout, pool).get('value')


def executeFull(code, variables=None, timeout=None, pool=None):
    """Like execute(), but returns a dict: value, stdout, stderr, worker, duration (ms) and
    sidecar (the name of the sidecar that served it: 'local' or one of FAILOVER_SIDECARS)."""
    return _full(_execute(code, variables, timeout, pool))


def call(target, args=None, kwargs=None, timeout=None, pool=None):
    """Calls a function of an importable CPython 3 module and returns its value.

    Args:
        target (str): "package.module:function" (or "module:Class.method").
        args (list): positional arguments.
        kwargs (dict): keyword arguments.
        timeout (int): optional, milliseconds.
        pool (str): optional, one of the sidecar's named pools; default: its primary pool.
    """
    return _call(target, args, kwargs, timeout, pool).get('value')


def callFull(target, args=None, kwargs=None, timeout=None, pool=None):
    """Like call(), but returns a dict: value, stdout, stderr, worker, duration (ms), sidecar."""
    return _full(_call(target, args, kwargs, timeout, pool))


def executeAsync(code, variables=None, timeout=None, onSuccess=None, onError=None,
                 pool=None):
    """execute() on a background thread; never blocks the caller.

    onSuccess(value) or onError(exception) is called on that thread. Returns a
    java.util.concurrent.Future, or None when the call could not even be queued (onError was
    then already called with Overloaded or Unavailable).
    """
    return py3sidecar.background.submit(  # noqa: F821
        lambda: execute(code, variables, timeout, pool), onSuccess, onError)


def callAsync(target, args=None, kwargs=None, timeout=None, onSuccess=None, onError=None,
              pool=None):
    """call() on a background thread; never blocks the caller. See executeAsync."""
    return py3sidecar.background.submit(  # noqa: F821
        lambda: call(target, args, kwargs, timeout, pool), onSuccess, onError)


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
    return py3sidecar.client.status()  # noqa: F821


def diagnostics(command='health', timeout=None, **options):
    """Runs a diagnostics command of the sidecar and returns its value (a dict; its 'report'
    is the text an operator reads). Commands: 'health', 'performance', 'memory' (top=N: the
    biggest allocation sites, tracemalloc), 'threads', 'history' (limit=N), 'workers',
    'config', 'help'. An unknown command or option raises BadRequest."""
    fields = {'command': command}
    if options:
        fields['args'] = options
    return _request('diag', fields, timeout, control=True).get('value')


def selfTest(timeout=None):
    """Which jar or setting is missing, as {ok, scope, checks, report} (py3sidecar.selftest)."""
    return py3sidecar.selftest.run(timeout)  # noqa: F821


def close():
    """Closes the shared connection (the next call opens a new one)."""
    # py3sidecar.client is gateway-scope only: in the Designer/Vision scopes there is no
    # connection to close.
    client = getattr(py3sidecar, 'client', None)  # noqa: F821 (project library global)
    if client is not None:
        client.close()


# ---------------------------------------------------------------------------
# The one implementation behind the functions above (every scope)
# ---------------------------------------------------------------------------

def _execute(code, variables, timeout, pool=None):
    fields = {'code': code}
    if variables is not None:
        fields['vars'] = variables
    if pool is not None:
        fields['pool'] = pool
    return _request('execute', fields, timeout)


def _call(target, args, kwargs, timeout, pool=None):
    fields = {'target': target}
    if pool is not None:
        fields['pool'] = pool
    if args is not None:
        fields['args'] = list(args)
    if kwargs is not None:
        fields['kwargs'] = kwargs
    return _request('call', fields, timeout)


def _full(r):
    return {'value': r.get('value'), 'stdout': r.get('stdout', ''), 'stderr': r.get('stderr', ''),
            'worker': r.get('worker'), 'duration': r.get('ms'), 'sidecar': r.get('sidecar')}


def _request(op, fields, timeout_ms=None, control=False):
    # Designer, Script Console, Vision client: no sidecar on this PC; the gateway calls it.
    if py3sidecar.gatewayroute.route() == 'gateway':  # noqa: F821
        return py3sidecar.gatewayroute.request(op, fields, timeout_ms, control)  # noqa: F821
    return py3sidecar.client.direct_request(op, fields, timeout_ms, control)  # noqa: F821


# Ignition re-runs this library on every project save: close the previous run's connection
# now, so its sockets and threads are released (the next call opens a fresh one).
close()
