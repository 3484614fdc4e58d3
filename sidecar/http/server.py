"""The HTTP front's server: a fixed pool of threads, a deadline on each request's headers, TLS.

Owns: accepting (the ``serve_forever`` thread: it only hands sockets on), a fixed pool of
``workers`` threads fed by a queue of at most as many waiting connections (beyond that a
connection gets a bare 503 and is closed: no thread is ever started per connection), the TLS
handshake of each connection in its pool thread (non-blocking, under the header deadline), and
``DeadlineReader``: reads of a request's line and headers that must all end by one deadline
(a client trickling a byte at a time cannot reset it, as it resets a per-read timeout). Must not
touch: routing and access (``sidecar.http.handler``), the loop's state.

    accept thread --queue (<= workers waiting; else 503)--> worker thread x N
        -> [TLS handshake by the deadline] -> Handler: request line + headers by the deadline
        -> route (sidecar.http.handler) -> response (send timeout) -> next request, deadline
            re-armed
"""

from __future__ import annotations

import io
import logging
import queue
import select
import socket
import socketserver
import ssl
import threading
import time
from typing import Any

from bridge.tls import HANDSHAKE_RECORD

log = logging.getLogger("py3sidecar.http")

SEND_TIMEOUT = 10.0  # a response must be taken by the client within this
_BUSY = b"busy: every HTTP thread is serving; retry (python3.http.max-connections)\n"
BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))


class DeadlineReader(io.RawIOBase):
    """The socket's reads; while ``deadline`` (a ``time.monotonic()`` value) is set, each read
    waits only for what is left of it, then raises ``TimeoutError``."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request's headers did not arrive in time "
                                   "(python3.http.header-timeout)")
            self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class SendAll(io.BufferedIOBase):
    """The response side: each write is sent whole (``sendall``, under the socket's timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


def handshake_by(sock: socket.socket, context: ssl.SSLContext,
                 deadline: float) -> ssl.SSLSocket | None:
    """``sock`` wrapped in TLS once its handshake is done, or None (closed): a plain peer, a
    failed handshake or one still going at ``deadline``."""
    sock.setblocking(False)
    try:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        first = sock.recv(1, socket.MSG_PEEK) if ready else b""
    except OSError:
        first = b""
    if not first or first[0] != HANDSHAKE_RECORD:  # silent, or plain HTTP on the HTTPS port
        sock.close()
        return None
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    while True:
        try:
            tls.do_handshake()
            return tls
        except ssl.SSLWantReadError:
            wait = ([tls], [])
        except ssl.SSLWantWriteError:
            wait = ([], [tls])
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            break
        left = deadline - time.monotonic()
        if left <= 0 or not any(select.select(*wait, [], left)[:2]):
            log.debug("TLS handshake not finished by the header deadline")
            break
    tls.close()
    return None


class BoundedHTTPServer(socketserver.TCPServer):
    """``TCPServer`` whose requests are served by ``workers`` threads started with it."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, *, workers: int,
                 header_timeout: float, tls_context: ssl.SSLContext | None) -> None:
        self.header_timeout = header_timeout
        self.tls_context = tls_context
        self.waiting: queue.Queue = queue.Queue(maxsize=workers)
        self.local = threading.local()  # per pool thread: the current connection's deadline
        self.workers: list[threading.Thread] = []  # (a failed bind calls server_close)
        super().__init__(address, handler)
        self.workers = [threading.Thread(target=self.work, name=f"py3sidecar-http-{i}",
                                         daemon=True) for i in range(workers)]
        for thread in self.workers:
            thread.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Accept thread: queue the connection, or turn it away at once."""
        deadline = time.monotonic() + self.header_timeout  # the handshake counts against it
        try:
            self.waiting.put_nowait((request, client_address, deadline))
        except queue.Full:
            if self.tls_context is None:  # (over TLS the client could not read it)
                try:
                    request.setblocking(False)
                    request.send(BUSY_REPLY)
                except OSError:
                    pass
            self.shutdown_request(request)

    def work(self) -> None:
        while True:
            item = self.waiting.get()
            if item is None:
                return
            request, client_address, deadline = item
            if self.tls_context is not None:
                request = handshake_by(request, self.tls_context, deadline)
                if request is None:
                    continue
            self.local.deadline = deadline  # read by the Handler's setup
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        while True:  # connections still waiting: closed, not served
            try:
                item = self.waiting.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self.workers:
            self.waiting.put(None)  # a worker busy with a client sees it when that ends
        for thread in self.workers:
            thread.join(1.0)
