"""py3sidecar.zmtp - the ZeroMQ transports from the gateway to the sidecar, Jython 2.7.

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

Both have py3sidecar.transport's interface (`request(payload, timeout_ms, check=None)`,
`close()`) and raise its TransportError kinds; zmq_transport picks one for the sidecar's
mechanism (py3sidecar.transport.zmq_transport calls it).

Owns: the ZeroMQ connections, their pools and the JeroMQ link checks. Must not touch: Py4J and
TLS, the error kinds and PROBE_ID (py3sidecar.transport), the client-side circuit breaker
(py3sidecar.breaker), what goes in the payload (py3sidecar.codec), which sidecar to ask
(py3sidecar.endpoints, py3sidecar.client).
"""
import threading

import java.io
import java.lang
from java.util.concurrent import ConcurrentLinkedQueue


def _t():
    return py3sidecar.transport  # noqa: F821 (project library global, resolved at call time)


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
    link = None  # no Java link: JeroMQ's sockets are driven from here

    def __init__(self, endpoint, connect_timeout_ms, max_idle_sockets=16, watch=False,
                 probe_payload=None):
        """watch=True (failover configured): each socket has a monitor, so a connection lost
        while a reply is awaited raises LinkLost at once instead of waiting for the deadline;
        probe_payload (a ping with id PROBE_ID) is what a long wait sends to check the link."""
        try:
            from org.zeromq import ZMQ  # jeromq.jar on the gateway class path
        except ImportError:
            raise _t().NotConnected("TRANSPORT = 'zmq' needs jeromq.jar on the gateway class path "
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
                raise _t().NotConnected('the python3 connection was closed (library reloaded?)')
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
            raise _t().NotConnected('the python3 connection was closed (library reloaded?)')
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
                    raise _t().NotConnected('cannot reach the sidecar at %s within %d ms'
                                            % (self.endpoint, self.connect_timeout_ms))
                s.setReceiveTimeOut(max(1, int(timeout_ms)))
                reply = s.recv(0)
                if reply is not None:
                    reply = _t()._checked(check, reply)  # before the socket is pooled again
            if reply is None:
                raise _t().DeadlineHit('no reply from the sidecar at %s before the deadline'
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
            raise _t().NotConnected('cannot reach the sidecar at %s within %d ms'
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
                    raise _t().LinkLost('the connection to the sidecar at %s was lost while this '
                                        'call was running there; its effects are unknown'
                                        % self.endpoint)
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
            raise _t().NotConnected("TRANSPORT = 'zmq' needs py3sidecar-gateway.jar on the "
                                    "gateway class path: the sidecar's ZeroMQ front asks for "
                                    "PLAIN authentication, which JeroMQ 0.3.6 cannot do (or use "
                                    "TRANSPORT = 'py4j')")
        if not token:
            raise _t().NotConnected('no token for the sidecar at %s: set '
                                    'py3sidecar.settings.TOKEN or TOKEN_FILE (its ZeroMQ front '
                                    'authenticates with it)' % endpoint)
        if not endpoint.startswith('tcp://') or ':' not in endpoint[6:]:
            raise _t().NotConnected('ZMQ_ENDPOINT must be tcp://HOST:PORT, not %r' % (endpoint,))
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
        self.link = None  # the helper jar's ZmtpPool: this pool's per-call work in Java
        try:
            from com.py3sidecar.gateway import ZmtpPool
        except ImportError:
            ZmtpPool = None  # an older helper jar: the pool below, in Jython
        if ZmtpPool is not None:
            self.link = ZmtpPool(endpoint, self.host, self.port, token, self.connect_timeout_ms,
                                 max_idle_sockets, max_message_bytes, _t().ReplyMismatch)

    def _connect(self):
        try:
            d = self._Dealer(self.host, self.port, 'py3sidecar', self.token,
                             self.connect_timeout_ms, self.max_message_bytes)
        except self._Dealer.HandshakeRefused, e:
            raise _t().AuthFailed('the sidecar at %s refused the token at the ZeroMQ handshake (%s)'
                                  % (self.endpoint, e.getMessage()))
        except java.io.IOException, e:
            raise _t().NotConnected('cannot connect to the sidecar at %s via ZeroMQ (%s)'
                                    % (self.endpoint, _t()._cause_text(e)))
        with self._lock:
            if self._closed:
                d.close()
                raise _t().NotConnected('the python3 connection was closed (library reloaded?)')
            self._all.add(d)
        return d

    def _discard(self, d):
        with self._lock:
            self._all.discard(d)
        d.close()

    def request(self, payload, timeout_ms, check=None):
        link = self.link
        if link is not None:
            try:
                return link.request(payload, max(1, int(timeout_ms)), check)
            except _t()._Failed, f:
                raise _t().failed(self, f)
        if self._closed:
            raise _t().NotConnected('the python3 connection was closed (library reloaded?)')
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
                raise _t().LinkLost('the connection to the sidecar at %s was lost while this '
                                    'call was running there; its effects are unknown (%s)'
                                    % (self.endpoint, _t()._cause_text(e)))
            if reply is None:
                raise _t().DeadlineHit('no reply from the sidecar at %s before the deadline'
                                       % self.endpoint)
            reply = _t()._checked(check, reply)  # before the connection is pooled again
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
        if self.link is not None:
            self.link.close()


def zmq_transport(endpoint, mechanism, token, connect_timeout_ms, watch, probe_payload=None):
    """The ZeroMQ transport for the sidecar's mechanism ('plain', 'null', 'curve')."""
    if mechanism == 'curve':
        raise _t().NotConnected("the sidecar at %s encrypts its ZeroMQ front with CURVE "
                                "(python3.bridge.zmq.curve.enabled), which the Jython library "
                                "does not speak: use TRANSPORT = 'py4j' (python3.bridge.py4j.tls "
                                "for encryption), or turn python3.bridge.zmq.curve.enabled off"
                                % endpoint)
    if mechanism == 'null':
        return ZmqTransport(endpoint, connect_timeout_ms, watch=watch,
                            probe_payload=probe_payload)
    if mechanism != 'plain':
        raise _t().NotConnected("py3sidecar.settings.ZMQ_MECHANISM must be None, 'plain' or "
                                "'null', not %r" % (mechanism,))
    return PlainZmqTransport(endpoint, token, connect_timeout_ms)


class _LinkCheck(object):
    """The link-check pings of one watched call (see the module docstring)."""

    def __init__(self, transport, watched, started_ms):
        self.t, self.w = transport, watched
        self.enabled = transport.probe_payload is not None
        self.next_ms = started_ms + _t().PROBE_AFTER_MS  # when the next ping goes out
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
        except _t().TransportError:
            raise
        except Exception, e:  # unreadable: a frame JeroMQ cut, if the link check fails
            if self.sent_ms is None:
                raise
            self.held = _Unreadable(e)
            return None
        if reply is None:  # a ping's answer: the link works; a held reply is the call's
            self.sent_ms = None
            self.next_ms = java.lang.System.currentTimeMillis() + _t().PROBE_EVERY_MS
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
            raise _t().LinkLost('the sidecar at %s did not answer a link check within %d ms '
                                'while this call was running there; the link is gone, the '
                                'call\'s effects are unknown'
                                % (self.t.endpoint, self.t.connect_timeout_ms))


class _Unreadable(object):
    """A reply check() could not read, held while a link check is out."""

    def __init__(self, error):
        self.error = error
