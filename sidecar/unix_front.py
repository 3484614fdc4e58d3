"""The Unix-socket front: CPython clients on this host (``Client("unix:PATH")``), read and
written by the loop thread itself.

Owns: the listening ``AF_UNIX`` stream socket (its file 0600 in the runtime folder, removed at
stop; 0660 in ``python3.bridge.token-group`` when that is set), who may connect
(``SO_PEERCRED``: the sidecar's own user or root, and with a token group a peer whose primary
group or supplementary groups, ``/proc/<pid>/status``, include it; anyone else is closed at
once, counted and audited), the connection cap, the framing of each connection (a 4-byte
big-endian length, then one msgpack envelope, each way: ``sidecar.channel``), and answering a
frame above ``python3.bridge.max-message-size`` (one ``bad_request``, then the connection is
closed: the rest of the stream cannot be trusted). Must not touch: the envelope's meaning
(``Service.dispatch`` checks the token on every request, validates, routes), workers.

Why a third front: over ZeroMQ a trivial call costs the sidecar about 26 system calls and two
threads (libzmq's I/O thread wakes for each message, and its mailbox is polled at every
``ZMQ_EVENTS``); here it is one ``readv`` and one ``writev`` in the loop's own turn, like a
worker's pipe (docs/performance.md, "The Unix-socket front").

What it costs an unauthenticated peer: only a process of the same user (or root) reaches the
file (its folder is 0700, the socket 0600) and ``SO_PEERCRED`` is checked again at accept;
such a peer could read the token file anyway. With a token group (the gateway's account is a
member: its Jython library's TRANSPORT 'unix'), the members may read the token file too
(0640 in that group): the same people, no one more. The groups are read at accept, from the
peer's pid: a peer that left the group since is refused, one that joined it later is let in.
A peer that stops reading its replies is closed once ``OUT_LIMIT`` bytes wait for it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge import protocol
from bridge.accept_guard import AcceptGuard, ListenerSwitch, accept_some
from bridge.codec import pack_raw
from bridge.token import token_group_id
from sidecar.channel import FrameReader, FrameTooLarge, OutBuffer
from sidecar.platform.procfs import groups

log = logging.getLogger("py3sidecar.unix")

SOCKET_NAME = "sidecar.sock"
ACCEPT_PER_TURN = 32
BACKLOG = 128
_UCRED = struct.Struct("3i")  # pid, uid, gid (struct ucred)


class GroupRefused(OSError):
    """The socket file cannot be given to python3.bridge.token-group (says what to do)."""


# (payload, reply, peer) -> None: Service.dispatch
Handler = Callable[[bytes, Callable[[bytes], None], str], None]


class UnixFront:
    def __init__(self, loop: Any, handler: Handler, path: str | Path, max_message_bytes: int,
                 max_connections: int = 256,
                 on_refusal: Callable[[str, str], None] | None = None,
                 group: str = "") -> None:
        self.loop = loop
        self.handler = handler
        self.path = Path(path)
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self.on_refusal = on_refusal or (lambda kind, peer: None)
        self.listener: socket.socket | None = None
        self.connections: set[UnixConnection] = set()
        self.refused_peers = 0
        self.uids = {os.geteuid(), 0}
        self.group = group.strip()  # python3.bridge.token-group: its members may connect too
        self.gid = token_group_id(self.group)
        self._inode: int | None = None
        self.error = ""  # why it does not listen (connection.json's unix.error)
        switch = ListenerSwitch(loop, lambda: self.listener, self.on_accept)
        self.guard = AcceptGuard(loop, f"Unix-socket front {self.path}", switch.pause,
                                 switch.resume, advice="raise LimitNOFILE in the service unit")

    @property
    def endpoint(self) -> str:
        """What a client dials (``bridge.client``); never beyond this host."""
        return f"unix:{self.path}"

    def start(self) -> None:
        """Listen; a path that cannot be bound is logged and told in connection.json
        (``unix.error``), never a failed start: the other fronts serve regardless."""
        try:
            self.listen()
        except GroupRefused as exc:
            self.error = str(exc)
            log.error("Unix-socket front not served: %s", self.error)
        except OSError as exc:
            self.error = (f"cannot listen on {self.path} ({exc.strerror or exc}); set "
                          "python3.bridge.unix.path to a free path, or enabled: false")
            log.error("Unix-socket front not served: %s", self.error)

    def listen(self) -> None:
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the file is created 0600: no window with wider rights
        try:
            sock.bind(str(self.path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        if self.gid is not None:
            self._share_with_group(sock)
        self._inode = os.stat(self.path).st_ino
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self.listener = sock
        self.loop.add_reader(sock.fileno(), self.on_accept)
        log.info("Unix-socket front listening on %s", self.path)

    def _share_with_group(self, sock: socket.socket) -> None:
        """The file 0660 in the token group (from 0600: never a moment wider)."""
        try:
            os.chown(self.path, -1, self.gid)
        except OSError as exc:
            sock.close()
            os.unlink(self.path)
            raise GroupRefused(f"cannot give the socket {self.path} to the group "
                               f"{self.group!r} (python3.bridge.token-group: {exc.strerror}); "
                               "the sidecar's user must be a member of it") from None
        os.chmod(self.path, 0o660)

    def allowed(self, pid: int, uid: int, gid: int) -> bool:
        """May the peer (its SO_PEERCRED) connect: this user, root, or a token group member."""
        if uid in self.uids:
            return True
        return self.gid is not None and (gid == self.gid or self.gid in groups(pid))

    def _clear_stale(self) -> None:
        """A socket file left by a killed sidecar is removed; a live one is not taken over."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket; remove it or "
                          "set python3.bridge.unix.path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError:  # nobody listens: a dead sidecar's file
            os.unlink(self.path)
            return
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, f"another sidecar serves {self.path}; stop it or set "
                      "python3.bridge.unix.path")

    def on_accept(self) -> None:
        listener = self.listener
        if listener is None:
            return
        for sock, _ in accept_some(listener, self.guard, ACCEPT_PER_TURN):
            pid, uid, gid = _UCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
            peer = f"unix:pid={pid},uid={uid}"
            if not self.allowed(pid, uid, gid):
                self._refuse(sock, protocol.UNAUTHORIZED, peer)
            elif len(self.connections) >= self.max_connections:
                self._refuse(sock, protocol.OVERLOADED, peer)
            else:
                sock.setblocking(False)
                self.connections.add(UnixConnection(self, sock, peer))

    def _refuse(self, sock: socket.socket, kind: str, peer: str) -> None:
        self.refused_peers += 1
        self.on_refusal(kind, peer)
        if kind == protocol.OVERLOADED:
            log.warning("Unix-socket front: %d connections open (python3.bridge.unix."
                        "max-connections); closing a new one from %s", len(self.connections),
                        peer)
        sock.close()

    def stop(self, flush: float = 1.0) -> None:
        """Stop listening; replies already answered are written out (within ``flush``)."""
        del flush  # the loop has stopped: what the kernel took is delivered, the rest dropped
        self.guard.cancel()
        if self.listener is not None:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
        for conn in list(self.connections):
            conn.close(flush=True)
        try:  # only our own file: a successor may have bound a new one at the same path
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass


# A client that stops reading while its replies pile up is closed past this many bytes.
OUT_LIMIT = 256 << 20


class UnixConnection:
    """One client connection: frames in, ``Service.dispatch`` per frame, frames out."""

    __slots__ = ("front", "sock", "fd", "peer", "reader", "out", "closed", "writing")

    def __init__(self, front: UnixFront, sock: socket.socket, peer: str) -> None:
        self.front = front
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.reader = FrameReader(self.fd, front.max_message_bytes)
        self.out = OutBuffer(self.fd)
        self.closed = False
        self.writing = False
        front.loop.add_reader(self.fd, self.on_readable)

    def on_readable(self) -> None:
        try:
            frames = self.reader.feed()
        except FrameTooLarge as exc:
            self.serve(exc.frames)  # the whole requests that came before it are answered
            if self.closed:
                return
            self.front.on_refusal(protocol.BAD_REQUEST, self.peer)
            self.reply(pack_raw(protocol.error_reply(
                None, protocol.BAD_REQUEST,
                f"the request is {exc.size} bytes, above the limit of "
                f"{self.front.max_message_bytes} (python3.bridge.max-message-size); send less "
                "data per call")))
            self.close(flush=True)
            return
        if frames:
            self.serve(frames)
        if self.reader.eof:
            self.close()

    def serve(self, frames: list[bytes | bytearray]) -> None:
        handler, reply, peer = self.front.handler, self.reply, self.peer
        for frame in frames:
            if self.closed:
                return
            handler(frame if isinstance(frame, bytes) else bytes(frame), reply, peer)

    def reply(self, data: bytes) -> None:
        """One reply frame: written now if the socket takes it, else when it is writable."""
        if self.closed:
            return  # the client went away: nobody to tell
        out = self.out
        if self.writing:
            out.add_frame(data)
            if out.pending > OUT_LIMIT:
                log.warning("Unix-socket front: %s does not read its replies (%d bytes "
                            "waiting); closing it", self.peer, out.pending)
                self.close()
            return
        try:
            done = out.send(data)  # one writev in the common case
        except OSError:  # EPIPE, ECONNRESET: the client is gone
            self.close()
            return
        if not done:
            self.writing = True
            self.front.loop.add_writer(self.fd, self.flush)

    def flush(self) -> None:
        try:
            done = self.out.flush()
        except OSError:  # EPIPE, ECONNRESET: the client is gone
            self.close()
            return
        if done and self.writing:
            self.writing = False
            self.front.loop.remove_writer(self.fd)
        elif not done and not self.writing:
            self.writing = True
            self.front.loop.add_writer(self.fd, self.flush)

    def close(self, flush: bool = False) -> None:
        if self.closed:
            return
        if flush and self.out:
            try:
                self.out.flush()  # non-blocking: what the kernel takes now
            except OSError:
                pass
        self.closed = True
        loop = self.front.loop
        loop.remove_reader(self.fd)
        if self.writing:
            loop.remove_writer(self.fd)
        self.out.clear()
        self.front.connections.discard(self)
        self.sock.close()
