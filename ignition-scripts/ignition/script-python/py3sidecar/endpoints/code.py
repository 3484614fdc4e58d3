"""py3sidecar.endpoints - which sidecars this gateway uses, how each is reached, and each one's
transport and client circuit breaker.

Owns: the failover list built from py3sidecar.settings (the local sidecar, then
FAILOVER_SIDECARS, each checked with errors that name the entry and the key), resolving one
entry's unset settings from its connection file (ports actually bound) and its token file, and
a Sidecar per entry: its transport (shared by every gateway thread, rebuilt when the connection
or token file says something new) and its client circuit breaker, whose transitions it logs.
Must not touch: the failover order and the caller's time budget (py3sidecar.client), the wire
and the sockets (py3sidecar.transport), the breaker's states (py3sidecar.breaker), the public
API (python3).

Gateway scope only (resource scope "G"): only py3sidecar.client uses it.
"""
import threading

import java.io


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
                 'zmq_endpoint', 'zmq_mechanism', 'token', 'token_file', 'py4j_tls_cert')


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
            raise python3.BadRequest('%s must be a dict (NAME, CONNECTION_FILE or PY4J_HOST/'
                                     'PY4J_PYTHON_PORT/ZMQ_ENDPOINT, TOKEN or TOKEN_FILE), not %r'
                                     % (where, entry))
        sc = dict(cfg)
        for k in _SIDECAR_KEYS:
            sc[k] = None
        sc['transport'] = cfg['transport']
        for k, v in entry.items():
            key = str(k).lower()
            if key not in _SIDECAR_KEYS:
                raise python3.BadRequest('%s: unknown key %r (known: %s)'
                                         % (where, k,
                                            ', '.join(x.upper() for x in _SIDECAR_KEYS)))
            if key == 'transport' and v is None:
                continue
            sc[key] = v
        sc['name'] = sc['name'] or 'failover%d' % (i + 1)
        if sc['name'] in names:
            raise python3.BadRequest('%s: the name %r is used twice' % (where, sc['name']))
        names.add(sc['name'])
        if not sc['connection_file'] and sc['transport'] == 'unix':
            raise python3.BadRequest('%s (%s): TRANSPORT \'unix\' needs the CONNECTION_FILE of '
                                     'a sidecar on this host (its Unix socket is named there)'
                                     % (where, sc['name']))
        if not sc['connection_file'] and not (
                sc['transport'] == 'py4j' and sc['py4j_python_port']
                or sc['transport'] == 'zmq' and sc['zmq_endpoint']):
            raise python3.BadRequest('%s (%s) says neither where the sidecar listens (PY4J_HOST '
                                     'and PY4J_PYTHON_PORT, or ZMQ_ENDPOINT) nor its '
                                     'CONNECTION_FILE' % (where, sc['name']))
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
    # Py4J over TLS: the connection file says so (py4j.tls) and names the certificate to trust.
    r['py4j_tls'] = bool(r.get('py4j_tls_cert')) or bool(py4j.get('tls'))
    if not r.get('py4j_tls_cert') and py4j.get('tls'):
        r['py4j_tls_cert'] = py4j.get('tls_cert_file')
    if r['zmq_endpoint'] is None:
        r['zmq_endpoint'] = (info.get('zmq') or {}).get('endpoint') or 'tcp://127.0.0.1:5557'
    if r.get('zmq_mechanism') is None:
        # a connection file that names a ZeroMQ front but no mechanism: an older sidecar (NULL)
        zinfo = info.get('zmq')
        r['zmq_mechanism'] = (zinfo.get('mechanism') or 'null') if zinfo else 'plain'
    # TRANSPORT 'unix': the socket's path as connection.json names it (py3sidecar.unixlink)
    if text:
        r['unix_path'], r['unix_problem'] = py3sidecar.unixlink.socket_path(info)  # noqa: F821
    else:
        r['unix_path'], r['unix_problem'] = None, (
            'cannot read the connection file %s: start the sidecar; if it runs, the gateway\'s '
            'user must be in its python3.bridge.token-group' % path)
    if not r['token'] and not r['token_file']:
        r['token_file'] = info.get('token_file')
    if not r['token'] and r['token_file']:
        r['token'] = (_read_file(r['token_file']) or '').strip() or None
    return r


_WHERE_KEYS = ('transport', 'py4j_host', 'py4j_python_port', 'zmq_endpoint', 'zmq_mechanism',
               'token', 'py4j_tls_cert', 'unix_path')


class Sidecar(object):
    """One sidecar of the failover list: its resolved settings, its transport (shared by every
    gateway thread) and its client-side circuit breaker."""

    def __init__(self, settings, protocol_version):
        transport = py3sidecar.transport  # noqa: F821 (project library global)
        self.transport_mod = transport
        self.settings = settings
        self.protocol_version = protocol_version
        self.name = settings['name']
        self.breaker = py3sidecar.breaker.CircuitBreaker(  # noqa: F821 (project library global)
            settings['breaker_failure_threshold'], settings['breaker_open_ms'], name=self.name)
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
        if r['transport'] == 'unix':
            self.address = 'unix:%s' % (r['unix_path'] or '?')
        self.transport, self.error = None, None
        try:
            if r['transport'] == 'zmq':
                watch = bool(r.get('failover_sidecars'))
                probe = None
                if watch:  # a long wait checks the link with a ping on its own socket
                    probe = {'v': self.protocol_version, 'id': transport.PROBE_ID, 'op': 'ping'}
                    if self.token:
                        probe['token'] = self.token
                    probe = py3sidecar.codec.encode_request(probe)  # noqa: F821
                self.transport = transport.zmq_transport(
                    r['zmq_endpoint'], r['zmq_mechanism'], self.token, r['connect_timeout_ms'],
                    watch=watch, probe_payload=probe)
            elif r['transport'] == 'unix':
                self.transport = py3sidecar.unixlink.unix_transport(  # noqa: F821
                    r['unix_path'], r['unix_problem'], r['connect_timeout_ms'])
            elif r['transport'] == 'py4j':
                if r['py4j_tls'] and not r['py4j_tls_cert']:
                    raise transport.NotConnected(
                        'the sidecar at %s serves Py4J over TLS (python3.bridge.py4j.tls) but no '
                        'certificate to trust is known: set py3sidecar.settings.PY4J_TLS_CERT to '
                        'its certificate (PEM) or its CA\'s' % self.address)
                warm = {'v': self.protocol_version, 'id': 0, 'op': 'ping'}
                if self.token:
                    warm['token'] = self.token
                self.transport = transport.Py4JTransport(
                    r['py4j_host'], r['py4j_python_port'], self.token, r['connect_timeout_ms'],
                    r['default_timeout_ms'] + r['client_grace_ms'],
                    py3sidecar.codec.encode_request(warm),  # noqa: F821
                    tls_cert=r['py4j_tls_cert'] or None)
            else:
                raise python3.BadRequest("py3sidecar.settings.TRANSPORT must be 'py4j', "
                                         "'zmq' or 'unix', not %r" % (r['transport'],))
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

    def send(self, payload, wait_ms, check=None):
        tr = self.transport
        if tr is None:
            raise self.transport_mod.NotConnected(self.error or 'no transport')
        return tr.request(payload, wait_ms, check)

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


def _logger():
    return system.util.getLogger(py3sidecar.settings.LOGGER_NAME)  # noqa: F821
