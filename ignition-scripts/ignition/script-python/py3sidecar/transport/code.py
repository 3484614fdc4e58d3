"""py3sidecar.transport - byte transports from the gateway to the sidecar, Jython 2.7.

Each transport has `request(payload, timeout_ms, check=None) -> reply` (Java byte[] in; the
reply, or what `check(reply)` made of it) and `close()`. `check` (py3sidecar.client's) reads the
reply and raises ReplyMismatch when it is not this request's: it runs before a socket goes back
to its pool, so a socket that got someone else's reply is dropped, never reused. It raises
TransportError subclasses only:
    NotConnected  - the request was certainly not delivered (sidecar down, refused, no token)
    AuthFailed    - (a NotConnected) py4j's handshake refused the token
    LinkLost      - the connection broke after the request was sent: it may or may not have run
    ReplyMismatch - (a LinkLost) the reply names another request (or none, on a success)
    DeadlineHit   - no reply before the client-side deadline
Both are thread-safe; one instance is shared by every gateway thread.

Py4J (default): needs the py4j jar from the py4j wheel (share/py4j/py4j<version>.jar) on the
gateway's class path. The sidecar listens on python_port; the gateway only connects out
(autoStartJavaServer False: no port is bound in the gateway). Each JVM thread gets its own
socket (py4j's pinned-thread model); the per-call deadline is that socket's SO_TIMEOUT.
A thread's socket may be stale (the sidecar restarted on the same port, or the network dropped
it): writing to it succeeds and the read then fails, which cannot tell "never delivered" from
"ran, then the link broke". So a socket idle for stale_after_ms (or older than a breakage another
thread saw) is first checked with a ping; if the ping fails, only that socket is dropped and the
request goes out on a fresh one. The request itself is never sent twice.

Py4J over TLS (tls_cert set: the sidecar's python3.bridge.py4j.tls): each socket is a plain
connect (connect_timeout_ms), then a TLS handshake trusting only the PEM certificates in
tls_cert (the sidecar's certificate or the CA that signed it), with hostname verification on
(the host as configured must be in the certificate: a DNS name or an IP address).

ZeroMQ (PLAIN through the helper jar, or JeroMQ for ZMQ_MECHANISM 'null'): py3sidecar.zmtp;
zmq_transport here picks one, for callers. Its link-check pings use PROBE_ID (below).

Must not touch: the ZeroMQ sockets (py3sidecar.zmtp), the client-side circuit breaker
(py3sidecar.breaker), what goes in the payload (py3sidecar.codec), which sidecar to ask
(py3sidecar.endpoints, py3sidecar.client).
"""
import threading

import java.io
import java.lang
import java.net
from javax.net import SocketFactory
from javax.net.ssl import SSLContext, SSLHandshakeException, TrustManagerFactory

try:  # the helper jar (optional): each transport's per-call work in Java (same behaviour)
    from com.py3sidecar.gateway import Link as _Link, Py4JLink as _Py4JLink
    _Failed = _Link.Failed
except ImportError:
    _Link = _Py4JLink = _Failed = None


class TransportError(Exception):
    pass


class NotConnected(TransportError):
    pass


class LinkLost(TransportError):
    pass


class DeadlineHit(TransportError):
    pass


class AuthFailed(NotConnected):
    """The sidecar refused the py4j auth token (nothing was sent)."""


class ReplyMismatch(LinkLost):
    """The reply names another request (or none, on a success): the link is out of step."""


PROBE_ID = 'py3sidecar-link-check'  # the id of the watched ZeroMQ sockets' link-check pings
PROBE_AFTER_MS = 500
PROBE_EVERY_MS = 1000


def _checked(check, reply):
    """check(reply), which must be the call's own reply (not a link check's answer)."""
    if check is None:
        return reply
    value = check(reply)
    if value is None:
        raise ReplyMismatch('the sidecar answered a link check this call never sent')
    return value


def failed(transport, f):
    """The TransportError (or codec.DecodeError) for the helper jar's Link.Failed `f`."""
    kind = f.kind
    if kind == _Failed.RAW:
        return transport._failure(f.getCause(), f.generation)
    if kind == _Failed.DECODE:
        return py3sidecar.codec.DecodeError(f.getMessage())  # noqa: F821
    return _FAILED_KINDS[kind](f.getMessage())


_FAILED_KINDS = {} if _Failed is None else {
    _Failed.NOT_CONNECTED: NotConnected, _Failed.AUTH: AuthFailed, _Failed.LINK_LOST: LinkLost,
    _Failed.DEADLINE: DeadlineHit, _Failed.MISMATCH: ReplyMismatch}


def _cause_text(exc):
    """Java exception chain as one line ('A: msg <- B: msg')."""
    parts = []
    seen = 0
    while exc is not None and seen < 8:
        try:
            # First line only: py4j puts the whole command (the payload, with the token) after it.
            msg = (exc.getMessage() or '').split('\n')[0]
            parts.append('%s: %s' % (exc.getClass().getSimpleName(), msg))
            nxt = exc.getCause()
        except AttributeError:
            parts.append(str(exc))
            break
        if nxt is exc:
            break
        exc = nxt
        seen += 1
    return ' <- '.join(parts)


def _has_cause(exc, java_class):
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, java_class):
            return True
        try:
            nxt = exc.getCause()
        except AttributeError:
            return False
        if nxt is exc:
            return False
        exc = nxt
        seen += 1
    return False


# A restart takes longer than this (a new CPython process must start and bind), so a socket
# used successfully less than STALE_AFTER_MS ago still talks to a live sidecar; a sidecar that
# dies within it is found by the request itself (LinkLost: it may or may not have run).
STALE_AFTER_MS = 200


class Py4JTransport(object):
    name = 'py4j'

    def __init__(self, host, port, token, connect_timeout_ms, backstop_timeout_ms, warm_payload=None,
                 stale_after_ms=STALE_AFTER_MS, tls_cert=None):
        try:
            from py4j import ClientServer  # the py4j jar must be on the gateway class path
        except ImportError:
            raise NotConnected('the py4j jar (py4j<version>.jar from the py3sidecar bundle) is '
                               'not on the gateway class path (lib/core/gateway)')
        from java.util.function import BiFunction
        self._ClientServer = ClientServer
        self._BiFunction = BiFunction
        self.host = host
        self.port = int(port)
        self.token = token
        self.connect_timeout_ms = int(connect_timeout_ms)
        self.backstop_timeout_ms = int(backstop_timeout_ms)
        self.warm_payload = warm_payload
        self.tls_cert = tls_cert
        self._sockets = tls_socket_factory(tls_cert, host, self.connect_timeout_ms) \
            if tls_cert else None
        self.stale_after_ms = stale_after_ms
        self._local = threading.local()  # per thread: conn, last_ok_ms, epoch
        self._epoch = 0  # bumped when any thread finds a dead socket: the others check theirs
        self._lock = threading.Lock()
        self._closed = False
        self._generation = 0
        self._cs = None
        self._proxy = None
        self._client = None
        self.link = None  # the helper jar's Py4JLink for the current build (None: pure Jython)
        self._build()

    def _build(self):
        b = self._ClientServer.ClientServerBuilder()
        b = b.javaPort(0).javaAddress(java.net.InetAddress.getByName('127.0.0.1'))
        b = b.pythonPort(self.port).pythonAddress(java.net.InetAddress.getByName(self.host))
        b = b.autoStartJavaServer(False).enableMemoryManagement(False)
        b = b.connectTimeout(self.connect_timeout_ms).readTimeout(self.backstop_timeout_ms)
        if self.token:
            b = b.authToken(self.token)
        if self._sockets is not None:
            b = b.socketFactory(self._sockets)
        cs = b.build()
        self._cs = cs
        self._client = cs.getPythonClient()
        self._proxy = cs.getPythonServerEntryPoint([self._BiFunction])
        self._generation += 1
        old, self.link = self.link, None
        if _Py4JLink is not None:  # the per-call work in Java (helper jar), same behaviour
            self.link = _Py4JLink(self._client, self._proxy, self.warm_payload,
                                  self.stale_after_ms, self.connect_timeout_ms,
                                  self.backstop_timeout_ms, self._generation, ReplyMismatch)
        if old is not None:
            old.close()

    def _rebuild(self, generation):
        """Drop every thread's (possibly stale) socket after a broken link, once per breakage."""
        with self._lock:
            if self._closed or generation != self._generation:
                return
            old = self._cs
            self._build()
        try:
            old.shutdown()
        except java.lang.Exception:
            pass

    def request(self, payload, timeout_ms, check=None):
        link = self.link
        if link is not None:
            try:
                return link.request(payload, max(1, int(timeout_ms)), check)
            except _Failed, f:
                raise failed(self, f)
        if self._closed:
            raise NotConnected('the python3 connection was closed (library reloaded?)')
        generation = self._generation
        client, proxy = self._client, self._proxy
        timeout_ms = max(1, int(timeout_ms))
        started = _now_ms()
        local = self._local
        conn = client.getPerThreadConnection()
        if conn is not None and conn.getSocket() is not None and self.warm_payload is not None \
                and (getattr(local, 'conn', None) is not conn or local.epoch != self._epoch
                     or started - local.last_ok_ms >= self.stale_after_ms):
            if not self._check(client, conn, proxy, min(timeout_ms, self.connect_timeout_ms)):
                conn = None  # dropped: the request goes out on a fresh socket below
            timeout_ms = max(1, timeout_ms - int(_now_ms() - started))
        if (conn is None or conn.getSocket() is None) and timeout_ms > self.backstop_timeout_ms \
                and self.warm_payload is not None:
            # First call on this thread: open its socket with a ping so the per-call deadline
            # below applies to the real request (the builder's read timeout is only a backstop).
            self._apply(proxy, self.warm_payload, generation)
            conn = client.getPerThreadConnection()
        if conn is not None:
            sock = conn.getSocket()
            # setsockopt only when this socket's deadline changes (calls in a row mostly
            # share one: a system call and two Java calls fewer per call)
            if sock is not None and (sock is not getattr(local, 'sock', None)
                                     or local.so_timeout != timeout_ms):
                try:
                    sock.setSoTimeout(timeout_ms)
                    local.sock, local.so_timeout = sock, timeout_ms
                except java.net.SocketException:
                    local.sock = None
        reply = self._apply(proxy, payload, generation)
        try:
            reply = _checked(check, reply)
        except ReplyMismatch:
            conn = client.getPerThreadConnection()
            if conn is not None:
                self._drop_thread_socket(client, conn)  # out of step: never used again
            raise
        local.conn, local.last_ok_ms, local.epoch = \
            client.getPerThreadConnection(), _now_ms(), self._epoch
        return reply

    def _check(self, client, conn, proxy, timeout_ms):
        """Pings on this thread's socket before a request is sent on it: True if the sidecar
        answered; else the socket is shut and forgotten (False), and other threads check theirs
        before their next call. Nothing but the ping was sent, so the request is not at risk."""
        self._local.sock = None  # its deadline is the ping's now: set again before the call
        try:
            conn.getSocket().setSoTimeout(max(1, timeout_ms))
            proxy.apply('request', self.warm_payload)
            return True
        except java.lang.Exception:
            pass
        self._drop_thread_socket(client, conn)
        return False

    def _drop_thread_socket(self, client, conn):
        """Shuts this thread's socket; the other threads check theirs before their next call."""
        self._local.sock = None
        with self._lock:
            self._epoch += 1
        try:
            conn.shutdown(True)
        except java.lang.Exception:
            pass
        if client.getPerThreadConnection() is conn:
            client.setPerThreadConnection(None)

    def _apply(self, proxy, payload, generation):
        try:
            return proxy.apply('request', payload)
        except java.lang.Exception, e:
            raise self._failure(e, generation)

    def _failure(self, e, generation):
        """The TransportError for py4j's exception `e` (a broken link rebuilds the client)."""
        text = _cause_text(e)
        if _has_cause(e, java.net.SocketTimeoutException):
            return DeadlineHit('no reply from the sidecar before the deadline (%s)' % text)
        if self._sockets is not None and _has_cause(e, SSLHandshakeException):
            return NotConnected('the TLS handshake with the sidecar at %s:%d failed (%s): '
                                'PY4J_TLS_CERT (%s) must hold the certificate of the sidecar '
                                '(python3.bridge.py4j.tls.cert-file) or of the CA that '
                                'signed it, and PY4J_HOST must be a name or address in it'
                                % (self.host, self.port, text, self.tls_cert))
        if 'Authentication' in text and 'unsuccessful' in text:
            return AuthFailed('the sidecar at %s:%d refused the py4j auth token (%s)'
                              % (self.host, self.port, text))
        if 'obtaining a new communication channel' in text or \
                _has_cause(e, java.net.ConnectException):
            hint = ''
            if self._sockets is None and 'Connection reset' in text:
                # a TLS front resets a peer that speaks plain text, unanswered
                hint = ('; if that sidecar serves Py4J over TLS (python3.bridge.py4j.tls), '
                        'set PY4J_TLS_CERT to its certificate or its CA\'s (PEM)')
            return NotConnected('cannot connect to the sidecar at %s:%d via py4j (%s)%s'
                                % (self.host, self.port, text, hint))
        self._rebuild(generation)
        return LinkLost('the py4j connection to the sidecar broke (%s)' % text)

    def close(self):
        with self._lock:
            self._closed = True
            cs, self._cs = self._cs, None
            link = self.link
        if link is not None:
            link.close()
        if cs is not None:
            try:
                cs.shutdown()
            except java.lang.Exception:
                pass


class _TlsSockets(SocketFactory):
    """What py4j's PythonClient opens its sockets with (createSocket(InetAddress, port)): a
    plain connect with the connect timeout, then TLS to `host` with hostname verification,
    the handshake done here (under the connect timeout) so a failure is NotConnected."""

    def __init__(self, ssl_factory, host, connect_timeout_ms):
        self.ssl_factory = ssl_factory
        self.host = host
        self.connect_timeout_ms = connect_timeout_ms

    def createSocket(self, *args):
        if len(args) < 2:
            raise java.net.SocketException('py3sidecar TLS: unconnected sockets are not used')
        address, port = args[0], int(args[1])
        if not isinstance(address, java.net.InetAddress):
            address = java.net.InetAddress.getByName(address)
        plain = java.net.Socket()
        try:
            plain.connect(java.net.InetSocketAddress(address, port), self.connect_timeout_ms)
            plain.setTcpNoDelay(True)
            sock = self.ssl_factory.createSocket(plain, self.host, port, True)
            params = sock.getSSLParameters()
            params.setEndpointIdentificationAlgorithm('HTTPS')  # hostname verification on
            sock.setSSLParameters(params)
            sock.setSoTimeout(self.connect_timeout_ms)
            sock.startHandshake()
            return sock
        except java.io.IOException:
            plain.close()
            raise


def tls_socket_factory(cert_path, host, connect_timeout_ms):
    """A SocketFactory for py4j that trusts only the PEM certificate(s) in cert_path."""
    from java.security import KeyStore
    from java.security.cert import CertificateFactory

    try:
        stream = java.io.FileInputStream(cert_path)
    except java.io.IOException, e:
        raise NotConnected('PY4J_TLS_CERT = %r cannot be read (%s): it must be the sidecar\'s '
                           'certificate (python3.bridge.py4j.tls.cert-file) or its CA\'s, in '
                           'PEM' % (cert_path, e.getMessage()))
    try:
        certs = list(CertificateFactory.getInstance('X.509').generateCertificates(stream))
    except java.lang.Exception, e:
        raise NotConnected('PY4J_TLS_CERT = %r holds no PEM certificate (%s)'
                           % (cert_path, e.getMessage()))
    finally:
        stream.close()
    if not certs:
        raise NotConnected('PY4J_TLS_CERT = %r holds no PEM certificate' % (cert_path,))
    store = KeyStore.getInstance(KeyStore.getDefaultType())
    store.load(None, None)
    for i, cert in enumerate(certs):
        store.setCertificateEntry('py3sidecar-%d' % i, cert)
    trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm())
    trust.init(store)
    context = SSLContext.getInstance('TLS')
    context.init(None, trust.getTrustManagers(), None)
    return _TlsSockets(context.getSocketFactory(), host, connect_timeout_ms)


def zmq_transport(endpoint, mechanism, token, connect_timeout_ms, watch, probe_payload=None):
    """The ZeroMQ transport for the sidecar's mechanism (py3sidecar.zmtp.zmq_transport)."""
    return py3sidecar.zmtp.zmq_transport(  # noqa: F821 (project library global)
        endpoint, mechanism, token, connect_timeout_ms, watch, probe_payload)


def _now_ms():
    return java.lang.System.nanoTime() / 1000000.0
