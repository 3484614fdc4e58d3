"""py3sidecar.unixlink - the Unix-socket transport from the gateway to a sidecar on its host,
Jython 2.7 (TRANSPORT = 'unix').

The sidecar's Unix-socket front (python3.bridge.unix; connection.json's `unix`) frames each
envelope with a 4-byte big-endian length; the token is checked on every request, and who may
connect at all is the socket file's mode and the sidecar's SO_PEERCRED check (its own user,
root, and with python3.bridge.token-group the members of that group). The connection work is
Java's (the helper jar's com.py3sidecar.gateway.UnixPool: one connection per call in flight,
pooled; every send and read bounded by the call's deadline; a deadline closes the connection),
so this transport needs py3sidecar-gateway.jar and a JVM with Unix-domain sockets (Java 16+).
A request that could not be written on a pooled connection (the sidecar restarted) goes out
once more on a fresh one; one lost after it was sent is LinkLost (its effects unknown).

It has py3sidecar.transport's interface (`request(payload, timeout_ms, check=None)`,
`close()`, `link`) and raises its TransportError kinds.

Owns: building that transport from the resolved settings (the socket's path from the
connection file) and the errors that say why TRANSPORT 'unix' cannot be used. Must not touch:
the frames and sockets (UnixPool, UnixConnection in the helper jar), the error kinds
(py3sidecar.transport), which sidecar to ask (py3sidecar.endpoints, py3sidecar.client).
"""


def _t():
    return py3sidecar.transport  # noqa: F821 (project library global, resolved at call time)


_WHY = "TRANSPORT = 'unix' "


def socket_path(info):
    """(path, problem) from a connection file's parsed JSON: the Unix-socket front's path, or
    None and what to do."""
    unix = info.get('unix') if isinstance(info, dict) else None
    if not isinstance(unix, dict):
        return None, ('the connection file names no Unix-socket front: enable it on the sidecar '
                      '(python3.bridge.unix.enabled: true) and restart it, or set TRANSPORT = '
                      '\'py4j\'')
    endpoint = unix.get('endpoint') or ''
    if endpoint.startswith('unix:') and len(endpoint) > 5:
        return endpoint[5:], None
    if unix.get('error'):
        return None, 'the sidecar does not serve its Unix-socket front: %s' % unix['error']
    return None, 'the connection file\'s unix entry has no endpoint (%r)' % (unix,)


class UnixTransport(object):
    name = 'unix'

    def __init__(self, path, connect_timeout_ms, max_idle_sockets=16,
                 max_message_bytes=2 * (64 << 20)):
        try:
            from com.py3sidecar.gateway import UnixConnection, UnixPool
        except ImportError:
            raise _t().NotConnected(_WHY + 'needs py3sidecar-gateway.jar (with UnixPool: the '
                                    'bundle\'s jars/) on the gateway class path '
                                    '(lib/core/gateway), or set TRANSPORT = \'py4j\'')
        missing = UnixConnection.unsupported()
        if missing:
            raise _t().NotConnected(_WHY + 'cannot be used: %s; run the gateway on Java 16 or '
                                    'later (Ignition 8.3 runs Java 17), or set TRANSPORT = '
                                    '\'py4j\'' % missing)
        self.path = path
        self.endpoint = 'unix:' + path
        self.connect_timeout_ms = int(connect_timeout_ms)
        self.link = UnixPool(path, self.connect_timeout_ms, max_idle_sockets,
                             max_message_bytes, _t().ReplyMismatch)

    def request(self, payload, timeout_ms, check=None):
        try:
            return self.link.request(payload, max(1, int(timeout_ms)), check)
        except _t()._Failed, f:
            raise _t().failed(self, f)

    def close(self):
        self.link.close()


def unix_transport(path, problem, connect_timeout_ms):
    """The transport to the socket at `path`; NotConnected naming TRANSPORT when there is none
    (`problem`: what the connection file said, see socket_path)."""
    if not path:
        raise _t().NotConnected(_WHY + 'cannot reach the sidecar: %s' % problem)
    return UnixTransport(path, connect_timeout_ms)
