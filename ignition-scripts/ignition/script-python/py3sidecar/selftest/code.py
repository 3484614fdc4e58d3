"""py3sidecar.selftest - python3.selfTest(): what the gateway needs, checked from where it runs.

Owns: the list of checks (jars on the gateway class path, the settings that locate the sidecar,
the site settings file, a ping) and the report. Must not touch: connections (it calls python3.*
like any script), the settings themselves (it only reads them).

Gateway scope (gateway scripts, Perspective): every jar and setting is checked here. Designer,
Script Console and Vision client: the route settings are checked, then a ping goes through the
gateway message handler, whose answer (or error) says whether the gateway side works; run
python3.selfTest() from a gateway script (or `py3sidecar doctor` on the host) for the jar list.
"""
import java.lang


def _check(checks, name, ok, detail, fix=''):
    checks.append({'name': name, 'ok': bool(ok), 'detail': detail, 'fix': '' if ok else fix})
    return ok


def _has_class(importer):
    try:
        importer()
        return True
    except (ImportError, java.lang.Throwable, Exception):
        return False


def _import_py4j():
    from py4j import ClientServer  # noqa: F401


def _import_msgpack():
    from org.msgpack.core import MessagePack  # noqa: F401


def _import_jeromq():
    from org.zeromq import ZMQ  # noqa: F401


def _readable(path):
    try:
        f = open(path)
        f.close()
        return True
    except (IOError, OSError):
        return False


def _unix_link():
    """(ok, detail, fix) of TRANSPORT 'unix': the helper jar's UnixPool on a Java 16+ JVM."""
    try:
        from com.py3sidecar.gateway import UnixConnection, UnixPool  # noqa: F401
    except ImportError:
        return (False, 'py3sidecar-gateway.jar with UnixPool (TRANSPORT unix) on the gateway '
                'class path', 'copy jars/py3sidecar-gateway.jar of the bundle into '
                '<ignition>/lib/core/gateway/ and restart the gateway, or set TRANSPORT = '
                '\'py4j\'')
    missing = UnixConnection.unsupported()
    if missing:
        return (False, 'TRANSPORT unix: %s' % missing,
                'run the gateway on Java 16 or later, or set TRANSPORT = \'py4j\'')
    return True, 'TRANSPORT unix: the helper jar\'s Unix-socket link, Java 16+', None


def _transports(s):
    names = set([s.TRANSPORT])
    for entry in s.FAILOVER_SIDECARS or []:
        names.add(entry.get('TRANSPORT') or s.TRANSPORT)
    return names


def _gateway_checks(s, checks):
    transports = _transports(s)
    if 'py4j' in transports:
        _check(checks, 'jar py4j', _has_class(_import_py4j),
               'py4j (TRANSPORT py4j) on the gateway class path',
               'copy jars/py4j*.jar of the bundle into <ignition>/lib/core/gateway/ and restart '
               'the gateway')
    if 'zmq' in transports:
        _check(checks, 'jar jeromq', _has_class(_import_jeromq),
               'JeroMQ (TRANSPORT zmq) on the gateway class path',
               'copy jeromq.jar (ignition-bundle --zmq) into <ignition>/lib/core/gateway/ and '
               'restart the gateway, or set TRANSPORT = \'py4j\'')
    if 'unix' in transports:
        _check(checks, 'unix link', *_unix_link())
    _check(checks, 'jar msgpack-core', _has_class(_import_msgpack),
           'msgpack-java (the codec) on the gateway class path',
           'copy jars/msgpack-core.jar of the bundle into <ignition>/lib/core/gateway/ and '
           'restart the gateway')
    helper = None
    try:
        helper = py3sidecar.codec.java_helper()  # noqa: F821
    except Exception:
        pass
    _check(checks, 'jar py3sidecar-gateway (optional)', True,
           'in use, version %s' % helper if helper else
           'not in use: the pure-Jython codec runs (slower for Datasets); copy '
           'jars/py3sidecar-gateway.jar for the fast one')
    for problem in getattr(s, 'SITE_PROBLEMS', None) or []:
        _check(checks, 'site settings', False, problem,
               'edit %s (a JSON object of py3sidecar.settings names)' % s.SITE_SETTINGS_FILE)
    needs_file = (s.TOKEN is None and s.TOKEN_FILE is None) or \
        ('py4j' in transports and s.PY4J_PYTHON_PORT is None) or \
        ('zmq' in transports and s.ZMQ_ENDPOINT is None) or 'unix' in transports
    if needs_file and s.CONNECTION_FILE:
        _check(checks, 'connection file', _readable(s.CONNECTION_FILE),
               '%s readable by the gateway\'s user' % s.CONNECTION_FILE,
               'start the sidecar (systemctl start py3sidecar); if it runs, the gateway\'s user '
               'needs read access to its runtime folder: `py3sidecar doctor` names the fix')
    token_file = s.TOKEN_FILE
    if s.TOKEN is None and token_file is None and _readable(s.CONNECTION_FILE or ''):
        try:
            import json
            f = open(s.CONNECTION_FILE)
            try:
                token_file = json.loads(f.read()).get('token_file')
            finally:
                f.close()
        except (IOError, OSError, ValueError):
            token_file = None
    if s.TOKEN is None and token_file:
        _check(checks, 'token file', _readable(token_file),
               '%s readable by the gateway\'s user' % token_file,
               'the token file must be group-readable by a group of the gateway\'s user '
               '(python3.bridge.token-group); restart the gateway after adding its user to the '
               'group; `py3sidecar doctor` checks it')


def run(timeout=None):
    """The checks as a dict: ok (all passed), scope, checks [{name, ok, detail, fix}], report
    (the text an operator reads). Never raises."""
    p3 = python3  # noqa: F821 (project library global)
    s = py3sidecar.settings  # noqa: F821
    checks = []
    scope = 'gateway'
    try:
        scope = 'gateway' if py3sidecar.gatewayroute.route() == 'direct' else 'designer'  # noqa: F821
        if scope == 'gateway':
            _gateway_checks(s, checks)
        else:
            _check(checks, 'route', bool(s.MESSAGE_HANDLER),
                   'calls go through message handler %r of project %r'
                   % (s.MESSAGE_HANDLER, s.GATEWAY_PROJECT or system.util.getProjectName()),  # noqa: F821
                   'set MESSAGE_HANDLER in py3sidecar.settings')
    except Exception, e:
        _check(checks, 'checks', False, 'the checks failed: %s' % (e,), 'report this')
    try:
        reply = p3.ping(timeout)
        _check(checks, 'ping', True, 'the sidecar answered (pid %s)' % (reply or {}).get('pid'))
    except p3.Python3Error, e:
        _check(checks, 'ping', False, '%s: %s' % (type(e).__name__, e.message),
               'fix the checks above first; then `py3sidecar doctor --ignition-home DIR` on the '
               'gateway host (see INSTALL.txt, Troubleshooting)')
    ok = all(c['ok'] for c in checks)
    lines = ['python3.selfTest (%s scope): %s' % (scope, 'all passed' if ok else 'FAILED')]
    for c in checks:
        lines.append('%s %s: %s' % ('ok  ' if c['ok'] else 'FAIL', c['name'], c['detail']))
        if c['fix']:
            lines.append('     fix: %s' % c['fix'])
    return {'ok': ok, 'scope': scope, 'checks': checks, 'report': '\n'.join(lines)}
