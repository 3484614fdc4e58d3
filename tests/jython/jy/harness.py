"""Jython side of the end-to-end harness: load the library as Ignition does, talk to the
CPython test (CTL lines), simulate project saves, count the JVM's threads and sockets."""
import json
import os
import sys

import java.lang
import java.nio.file

import ignition_double
import loader

LIB = os.environ['PY3_LIBRARY_DIR']
SYSTEM = ignition_double.DoubleSystem()
MODULES = loader.load_library(LIB, SYSTEM)
BASE_SETTINGS = json.loads(os.environ.get('PY3_SETTINGS', '{}'))


def ctl(**request):
    """Asks the CPython side to act (stop/start the sidecar, open its breaker, ...)."""
    sys.stdout.write('CTL %s\n' % json.dumps(request))
    sys.stdout.flush()
    answer = json.loads(sys.stdin.readline())
    if not answer.get('ok'):
        raise AssertionError('control %r failed: %s' % (request, answer.get('error')))
    return answer.get('value')


def _path(name):
    return os.path.join(LIB, *name.split('.')) + os.sep + 'code.py'


def save_project(**overrides):
    """Simulates an Ignition project save: every library module is re-executed in place, then
    the settings get `overrides` (as an integrator's edit would have set them)."""
    for name in ('py3sidecar.settings', 'py3sidecar.codec', 'py3sidecar.datasets',
                 'py3sidecar.decoder', 'py3sidecar.valuepath', 'py3sidecar.transport', 'py3sidecar.zmtp', 'py3sidecar.unixlink',
                 'py3sidecar.breaker', 'py3sidecar.healthpoll', 'py3sidecar.gatewayroute', 'py3sidecar.background',
                 'py3sidecar.endpoints', 'py3sidecar.client', 'python3'):
        loader.exec_module(MODULES[name], _path(name))
    settings = MODULES['py3sidecar.settings']
    for key, value in dict(BASE_SETTINGS, **overrides).items():
        setattr(settings, key, value)


def threads():
    """Names of the JVM's live threads (sorted)."""
    return sorted(t.getName() for t in java.lang.Thread.getAllStackTraces().keySet()
                  if t.isAlive())


def _socket_inodes():
    inodes = set()
    fd_dir = '/proc/self/fd'
    for fd in os.listdir(fd_dir):
        try:
            target = java.nio.file.Files.readSymbolicLink(
                java.nio.file.Paths.get(fd_dir, fd)).toString()
        except java.lang.Exception:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    return inodes


def sockets():
    """(open sockets, listening TCP sockets) of this JVM."""
    inodes = _socket_inodes()
    listening = 0
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            f = open(table)
        except IOError:
            continue
        try:
            for line in f.readlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == '0A' and cols[9] in inodes:
                    listening += 1
        finally:
            f.close()
    return len(inodes), listening


def raises(exc_class, fn, *args, **kwargs):
    """Calls fn; returns the exception of class exc_class it raised (else fails)."""
    try:
        value = fn(*args, **kwargs)
    except exc_class, e:
        return e
    except Exception, e:
        raise AssertionError('expected %s, got %s: %s' % (exc_class.__name__,
                                                          type(e).__name__, e))
    raise AssertionError('expected %s, got the value %r' % (exc_class.__name__, value))


def pure_jython():
    """Turns the helper jar's per-call paths off on the current connection (its Java attempt,
    each transport's Java link) and the codec's Java helper: what a gateway runs without the
    jar. save_project() (and codec.use_java_helper(True)) brings them back."""
    MODULES['py3sidecar.codec'].use_java_helper(False)
    conn = MODULES['py3sidecar.client']._connection()
    conn.caller = None
    for sc in conn.sidecars:
        if sc.transport is not None:
            sc.transport.link = None
    return conn


def counting_attempts(conn):
    """Counts the Jython attempts of `conn` (a call served by the helper jar's Caller makes
    none): returns the list each attempt appends to."""
    seen = []
    attempt = conn._attempt

    def counted(*args, **kwargs):
        seen.append(args[0].name)
        return attempt(*args, **kwargs)
    conn._attempt = counted
    return seen
