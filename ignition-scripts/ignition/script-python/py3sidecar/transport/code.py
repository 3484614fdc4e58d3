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

ZeroMQ: the sidecar's ROUTER authenticates at the handshake (PLAIN, password = the token), which
JeroMQ 0.3.6 (Debian libjeromq-java, ZMTP/2.0 only) cannot do. PlainZmqTransport speaks ZMTP/3.0
PLAIN through the gateway helper jar (com.py3sidecar.gateway.ZmtpPlainDealer); ZmqTransport
(JeroMQ) is kept for a sidecar whose connection file names no mechanism (older ones). Either
pools DEALER connections, one per call in flight; one whose call timed out is closed, never
reused, so a late reply can't be misread. CURVE is not offered from Jython: its encrypted path
is Py4J over TLS.

The JeroMQ transport (ZMQ_MECHANISM 'null'), with failover set (watch=True): a call that waits
longer than PROBE_AFTER_MS sends a ping with id PROBE_ID on its own socket (again every
PROBE_EVERY_MS once answered). A reset is seen at once (the monitor's EVENT_DISCONNECTED); a link
that went silent (half-open: no FIN, no RST) only by a ping not answered within
connect_timeout_ms: LinkLost then, not DeadlineHit at the deadline. The PLAIN dealer sees a
reset or a close at once too; it sends no link checks (a silent link waits for the deadline).
A reply that arrives while a ping is out is kept until the ping is answered: JeroMQ hands up the
cut frame, zero-filled, just before it reports the disconnection.

Must not touch: the client-side circuit breaker (py3sidecar.breaker), what goes in the payload
(py3sidecar.codec), which sidecar to ask (py3sidecar.endpoints, py3sidecar.client).
"""
import threading

import java.io
import java.lang
import java.net
from java.util.concurrent import ConcurrentLinkedQueue
from javax.net import SocketFactory
from javax.net.ssl import SSLContext, SSLHandshakeException, TrustManagerFactory


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


class Py4JTransport(object):
    name = 'py4j'

    def __init__(self, host, port, token, connect_timeout_ms, backstop_timeout_ms, warm_payload=None,
                 stale_after_ms=200, tls_cert=None):
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
        # A restart takes longer than this (a new CPython process must start and bind), so a
        # socket used successfully less than stale_after_ms ago still talks to a live sidecar.
        self.stale_after_ms = stale_after_ms
        self._local = threading.local()  # per thread: conn, last_ok_ms, epoch
        self._epoch = 0  # bumped when any thread finds a dead socket: the others check theirs
        self._lock = threading.Lock()
        self._closed = False
        self._generation = 0
        self._cs = None
        self._proxy = None
        self._client = None
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
            text = _cause_text(e)
            if _has_cause(e, java.net.SocketTimeoutException):
                raise DeadlineHit('no reply from the sidecar before the deadline (%s)' % text)
            if self._sockets is not None and _has_cause(e, SSLHandshakeException):
                raise NotConnected('the TLS handshake with the sidecar at %s:%d failed (%s): '
                                   'PY4J_TLS_CERT (%s) must hold the certificate of the sidecar '
                                   '(python3.bridge.py4j.tls.cert-file) or of the CA that '
                                   'signed it, and PY4J_HOST must be a name or address in it'
                                   % (self.host, self.port, text, self.tls_cert))
            if 'Authentication' in text and 'unsuccessful' in text:
                raise AuthFailed('the sidecar at %s:%d refused the py4j auth token (%s)'
                                 % (self.host, self.port, text))
            if 'obtaining a new communication channel' in text or \
                    _has_cause(e, java.net.ConnectException):
                raise NotConnected('cannot connect to the sidecar at %s:%d via py4j (%s)'
                                   % (self.host, self.port, text))
            self._rebuild(generation)
            raise LinkLost('the py4j connection to the sidecar broke (%s)' % text)

    def close(self):
        with self._lock:
            self._closed = True
            cs, self._cs = self._cs, None
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


class _Watched(object):
    """A DEALER socket plus a monitor of its disconnections and a poller over both."""

    def __init__(self, sock, mon, poller):
        self.sock, self.mon, self.poller = sock, mon, poller

    def close(self):
        for s in (self.mon, self.sock):
            try:
                s.close()
            except java.lang.Exception:
                pass


class ZmqTransport(object):
    name = 'zmq'

    def __init__(self, endpoint, connect_timeout_ms, max_idle_sockets=16, watch=False,
                 probe_payload=None):
        """watch=True (failover configured): each socket has a monitor, so a connection lost
        while a reply is awaited raises LinkLost at once instead of waiting for the deadline;
        probe_payload (a ping with id PROBE_ID) is what a long wait sends to check the link."""
        try:
            from org.zeromq import ZMQ  # jeromq.jar on the gateway class path
        except ImportError:
            raise NotConnected("TRANSPORT = 'zmq' needs jeromq.jar on the gateway class path "
                               "(lib/core/gateway; `py3sidecar ignition-bundle --zmq`)")
        self._ZMQ = ZMQ
        self.endpoint = endpoint
        self.connect_timeout_ms = int(connect_timeout_ms)
        self.max_idle = max_idle_sockets
        self.watch = watch
        self.probe_payload = probe_payload
        self._ctx = ZMQ.context(1)
        self._idle = ConcurrentLinkedQueue()
        self._lock = threading.Lock()
        self._all = set()
        self._closed = False
        self._monitors = 0

    def _new_socket(self):
        ZMQ = self._ZMQ
        s = self._ctx.socket(ZMQ.DEALER)
        s.setLinger(0)
        s.setDelayAttachOnConnect(True)  # ZMQ_IMMEDIATE: no peer -> send times out, not queued
        s.setSendTimeOut(self.connect_timeout_ms)
        item = s
        if self.watch:
            with self._lock:
                self._monitors += 1
                addr = 'inproc://py3sidecar-monitor-%d-%d' % (id(self), self._monitors)
            s.monitor(addr, ZMQ.EVENT_DISCONNECTED)
            mon = self._ctx.socket(ZMQ.PAIR)
            mon.setLinger(0)
            mon.connect(addr)
            poller = self._ctx.poller(2)
            poller.register(s, ZMQ.Poller.POLLIN)
            poller.register(mon, ZMQ.Poller.POLLIN)
            item = _Watched(s, mon, poller)
        s.connect(self.endpoint)
        with self._lock:
            if self._closed:
                self._close_item(item)
                raise NotConnected('the python3 connection was closed (library reloaded?)')
            self._all.add(item)
        return item

    def _close_item(self, item):
        try:
            item.close()
        except java.lang.Exception:
            pass

    def _discard(self, item):
        with self._lock:
            self._all.discard(item)
        self._close_item(item)

    def request(self, payload, timeout_ms, check=None):
        if self._closed:
            raise NotConnected('the python3 connection was closed (library reloaded?)')
        item = self._idle.poll()
        if item is None:
            item = self._new_socket()
        ok = False
        try:
            if self.watch:
                reply = self._watched_request(item, payload, timeout_ms, check)
            else:
                s = item
                if not s.send(payload, 0):
                    raise NotConnected('cannot reach the sidecar at %s within %d ms'
                                       % (self.endpoint, self.connect_timeout_ms))
                s.setReceiveTimeOut(max(1, int(timeout_ms)))
                reply = s.recv(0)
                if reply is not None:
                    reply = _checked(check, reply)  # before the socket is pooled again
            if reply is None:
                raise DeadlineHit('no reply from the sidecar at %s before the deadline'
                                  % self.endpoint)
            ok = True  # checked above (watched: by the link check), before it is pooled again
            return reply
        finally:
            if ok and not self._closed and self._idle.size() < self.max_idle:
                self._idle.offer(item)
            else:
                self._discard(item)

    def _watched_request(self, w, payload, timeout_ms, check):
        """The reply (what check made of it), or None at the deadline; LinkLost when the
        monitor saw the connection drop or a link check went unanswered."""
        ZMQ = self._ZMQ
        while ZMQ.Event.recv(w.mon, ZMQ.DONTWAIT) is not None:
            pass  # disconnections from before this call are not ours
        if not w.sock.send(payload, 0):
            raise NotConnected('cannot reach the sidecar at %s within %d ms'
                               % (self.endpoint, self.connect_timeout_ms))
        now = java.lang.System.currentTimeMillis()
        deadline = now + max(1, int(timeout_ms))
        probe = _LinkCheck(self, w, now)
        while True:
            now = java.lang.System.currentTimeMillis()
            if now >= deadline:
                return None
            w.poller.poll(max(1, min(deadline, probe.due()) - now))
            if w.poller.pollin(1):  # first: a drop seen before a reply is taken
                event = ZMQ.Event.recv(w.mon, ZMQ.DONTWAIT)
                if event is not None and event.getEvent() == ZMQ.EVENT_DISCONNECTED:
                    raise LinkLost('the connection to the sidecar at %s was lost while this call '
                                   'was running there; its effects are unknown' % self.endpoint)
            if w.poller.pollin(0):
                raw = w.sock.recv(ZMQ.DONTWAIT)
                if raw is not None:
                    done = probe.take(raw, check)
                    if done is not None:
                        return done
            probe.tick(java.lang.System.currentTimeMillis())

    def close(self):
        with self._lock:
            self._closed = True
            items = list(self._all)
            self._all.clear()
        self._idle.clear()
        for item in items:
            self._close_item(item)
        try:
            self._ctx.term()
        except java.lang.Exception:
            pass


class PlainZmqTransport(object):
    """ZMTP/3.0 PLAIN (username py3sidecar, password: the token) through the helper jar's
    ZmtpPlainDealer. A pooled connection the sidecar closed while it sat idle (a restart) is
    found without blocking before the request is sent, and replaced: the request is never sent
    twice. A connection lost after sending is LinkLost at once, with or without failover."""
    name = 'zmq'

    def __init__(self, endpoint, token, connect_timeout_ms, max_idle_sockets=16,
                 max_message_bytes=2 * (64 << 20)):
        try:
            from com.py3sidecar.gateway import ZmtpPlainDealer
        except ImportError:
            raise NotConnected("TRANSPORT = 'zmq' needs py3sidecar-gateway.jar on the gateway class "
                               "path: the sidecar's ZeroMQ front asks for PLAIN authentication, "
                               "which JeroMQ 0.3.6 cannot do (or use TRANSPORT = 'py4j')")
        if not token:
            raise NotConnected('no token for the sidecar at %s: set py3sidecar.settings.TOKEN or '
                               'TOKEN_FILE (its ZeroMQ front authenticates with it)' % endpoint)
        if not endpoint.startswith('tcp://') or ':' not in endpoint[6:]:
            raise NotConnected('ZMQ_ENDPOINT must be tcp://HOST:PORT, not %r' % (endpoint,))
        host, port = endpoint[6:].rsplit(':', 1)
        self._Dealer = ZmtpPlainDealer
        self.endpoint = endpoint
        self.host, self.port = host.strip('[]'), int(port)
        self.token = token
        self.connect_timeout_ms = int(connect_timeout_ms)
        self.max_idle = max_idle_sockets
        self.max_message_bytes = max_message_bytes
        self._idle = ConcurrentLinkedQueue()
        self._lock = threading.Lock()
        self._all = set()
        self._closed = False

    def _connect(self):
        try:
            d = self._Dealer(self.host, self.port, 'py3sidecar', self.token,
                             self.connect_timeout_ms, self.max_message_bytes)
        except self._Dealer.HandshakeRefused, e:
            raise AuthFailed('the sidecar at %s refused the token at the ZeroMQ handshake (%s)'
                             % (self.endpoint, e.getMessage()))
        except java.io.IOException, e:
            raise NotConnected('cannot connect to the sidecar at %s via ZeroMQ (%s)'
                               % (self.endpoint, _cause_text(e)))
        with self._lock:
            if self._closed:
                d.close()
                raise NotConnected('the python3 connection was closed (library reloaded?)')
            self._all.add(d)
        return d

    def _discard(self, d):
        with self._lock:
            self._all.discard(d)
        d.close()

    def request(self, payload, timeout_ms, check=None):
        if self._closed:
            raise NotConnected('the python3 connection was closed (library reloaded?)')
        d = self._idle.poll()
        while d is not None and not d.isOpen():
            self._discard(d)  # closed by the sidecar while idle: nothing of ours was on it
            d = self._idle.poll()
        if d is None:
            d = self._connect()
        ok = False
        try:
            try:
                d.send(payload, max(1, int(timeout_ms)))
                reply = d.recv(max(1, int(timeout_ms)))
            except java.io.IOException, e:
                raise LinkLost('the connection to the sidecar at %s was lost while this call was '
                               'running there; its effects are unknown (%s)'
                               % (self.endpoint, _cause_text(e)))
            if reply is None:
                raise DeadlineHit('no reply from the sidecar at %s before the deadline'
                                  % self.endpoint)
            reply = _checked(check, reply)  # before the connection is pooled again
            ok = True
            return reply
        finally:
            if ok and not self._closed and self._idle.size() < self.max_idle:
                self._idle.offer(d)
            else:
                self._discard(d)

    def close(self):
        with self._lock:
            self._closed = True
            items = list(self._all)
            self._all.clear()
        self._idle.clear()
        for d in items:
            d.close()


def zmq_transport(endpoint, mechanism, token, connect_timeout_ms, watch, probe_payload=None):
    """The ZeroMQ transport for the sidecar's mechanism ('plain', 'null', 'curve')."""
    if mechanism == 'curve':
        raise NotConnected("the sidecar at %s encrypts its ZeroMQ front with CURVE "
                           "(python3.bridge.zmq.curve.enabled), which the Jython library does "
                           "not speak: use TRANSPORT = 'py4j' (python3.bridge.py4j.tls for "
                           "encryption), or turn python3.bridge.zmq.curve.enabled off" % endpoint)
    if mechanism == 'null':
        return ZmqTransport(endpoint, connect_timeout_ms, watch=watch,
                            probe_payload=probe_payload)
    if mechanism != 'plain':
        raise NotConnected("py3sidecar.settings.ZMQ_MECHANISM must be None, 'plain' or 'null', "
                           "not %r" % (mechanism,))
    return PlainZmqTransport(endpoint, token, connect_timeout_ms)


class _LinkCheck(object):
    """The link-check pings of one watched call (see the module docstring)."""

    def __init__(self, transport, watched, started_ms):
        self.t, self.w = transport, watched
        self.enabled = transport.probe_payload is not None
        self.next_ms = started_ms + PROBE_AFTER_MS  # when the next ping goes out
        self.sent_ms = None  # when the ping now out went out (None: none is out)
        self.held = None  # the call's reply, kept until the ping out is answered

    def due(self):
        if not self.enabled:
            return 1 << 62
        if self.sent_ms is None:
            return self.next_ms
        return self.sent_ms + max(1, self.t.connect_timeout_ms)

    def take(self, raw, check):
        """A frame from the sidecar: the call's reply when it may be returned, else None."""
        try:
            reply = check(raw) if check is not None else raw
        except TransportError:
            raise
        except Exception, e:  # unreadable: a frame JeroMQ cut, if the link check fails
            if self.sent_ms is None:
                raise
            self.held = _Unreadable(e)
            return None
        if reply is None:  # a ping's answer: the link works; a held reply is the call's
            self.sent_ms = None
            self.next_ms = java.lang.System.currentTimeMillis() + PROBE_EVERY_MS
            reply, self.held = self.held, None
            if isinstance(reply, _Unreadable):
                raise reply.error
            return reply
        if self.sent_ms is None:
            return reply
        self.held = reply  # kept until the ping out is answered (or the link is found gone)
        return None

    def tick(self, now):
        if not self.enabled:
            return
        if self.sent_ms is None:
            if now >= self.next_ms:
                self.w.sock.send(self.t.probe_payload, self.t._ZMQ.DONTWAIT)
                self.sent_ms = now
        elif now - self.sent_ms >= self.t.connect_timeout_ms:
            raise LinkLost('the sidecar at %s did not answer a link check within %d ms while '
                           'this call was running there; the link is gone, the call\'s effects '
                           'are unknown' % (self.t.endpoint, self.t.connect_timeout_ms))


class _Unreadable(object):
    """A reply check() could not read, held while a link check is out."""

    def __init__(self, error):
        self.error = error


def _now_ms():
    return java.lang.System.nanoTime() / 1000000.0
