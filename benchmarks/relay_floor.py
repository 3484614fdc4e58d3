"""The least CPU a Python sidecar of this architecture spends per call: a bare relay process.

    .venv/bin/python benchmarks/relay_floor.py [--calls N] [--rounds R] [--cpu 0]

The relay is a CPython process with nothing of ours in it: it takes the client's msgpack
request off a socket, writes it length-prefixed (4 bytes) to a pipe of an echo child (which
unpacks, packs and writes it back, length-prefixed), reads the child's reply and sends it back
on the socket. The socket is either

- ``zmq``: a ROUTER bound on loopback tcp, NULL mechanism (as the sidecar's front; the client a
  DEALER), blocking ``recv_multipart``/``send_multipart`` (no poller: the least it can do), or
- ``unix``: a Unix-domain stream socket, the loop reading it itself (length-prefixed frames).

The figure is the relay process's CPU per call (every thread, libzmq's I/O thread included,
from ``/proc/<pid>/task/*/schedstat``), beside ``pipe_echo_side`` (one side of a pipe + msgpack
echo) in the same run. ``benchmarks/cpu_per_call.py`` measures both relays every round, so
every run tells how much of the sidecar's CPU per call is ZeroMQ + kernel hops and how much is
the sidecar's own Python.

Owns: the relay and its echo child, these two figures. Must not touch: the library.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack  # noqa: E402
import zmq  # noqa: E402

KINDS = ("zmq", "unix")
HEADER = struct.Struct("<I")

# The relay process: argv = kind, address. It starts its own echo child (length-prefixed frames
# over two pipes), prints "ready" once bound, and relays until its socket's peer goes away.
RELAY = r"""
import os, socket, struct, subprocess, sys
H = struct.Struct("<I")
ECHO = '''
import os, struct, sys, msgpack
H = struct.Struct("<I"); r, w = int(sys.argv[1]), int(sys.argv[2]); buf = b""
while True:
    data = os.read(r, 65536)
    if not data:
        break
    buf += data
    while len(buf) >= 4 and len(buf) >= 4 + H.unpack_from(buf)[0]:
        n = H.unpack_from(buf)[0]; body, buf = buf[4:4 + n], buf[4 + n:]
        out = msgpack.packb(msgpack.unpackb(body, raw=False)); os.write(w, H.pack(len(out)) + out)
'''
to_r, to_w = os.pipe(); from_r, from_w = os.pipe()
child = subprocess.Popen([sys.executable, "-c", ECHO, str(to_r), str(from_w)],
                         pass_fds=(to_r, from_w))
os.close(to_r); os.close(from_w)
pending = b""
def hop(body):
    global pending
    os.write(to_w, H.pack(len(body)) + body)
    while len(pending) < 4 or len(pending) < 4 + H.unpack_from(pending)[0]:
        pending += os.read(from_r, 65536)
    n = H.unpack_from(pending)[0]
    reply, pending = pending[4:4 + n], pending[4 + n:]
    return reply
kind, address = sys.argv[1], sys.argv[2]
if kind == "zmq":
    import zmq
    sock = zmq.Context.instance().socket(zmq.ROUTER); sock.linger = 0
    sock.bind(address); print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    while True:
        frames = sock.recv_multipart()
        if frames[-1] == b"":
            break
        sock.send_multipart([frames[0], hop(frames[-1])])
else:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); server.bind(address)
    server.listen(1); print(address, flush=True)
    conn, _ = server.accept(); buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
        while len(buf) >= 4 and len(buf) >= 4 + H.unpack_from(buf)[0]:
            n = H.unpack_from(buf)[0]; body, buf = buf[4:4 + n], buf[4 + n:]
            out = hop(body); conn.sendall(H.pack(len(out)) + out)
os.close(to_w); child.wait(10)
"""


class Relay:
    """A bare relay process of ``kind`` and this process as its client."""

    def __init__(self, kind: str, request: bytes) -> None:
        self.kind, self.request = kind, request
        self.folder = tempfile.mkdtemp(prefix="relay-floor-")
        address = ("tcp://127.0.0.1:0" if kind == "zmq"
                   else os.path.join(self.folder, "relay.sock"))
        self.proc = subprocess.Popen([sys.executable, "-c", RELAY, kind, address],
                                     stdout=subprocess.PIPE, text=True)
        bound = self.proc.stdout.readline().strip()  # the relay exits if it cannot bind
        if not bound:
            raise RuntimeError(f"the {kind} relay did not start (exit {self.proc.wait(10)})")
        if kind == "zmq":
            self.sock = zmq.Context.instance().socket(zmq.DEALER)
            self.sock.linger = 0
            self.sock.rcvtimeo = 10000  # every wait has a deadline
            self.sock.connect(bound)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(bound)
        self.buffer = b""

    def round_trip(self) -> bytes:
        if self.kind == "zmq":
            self.sock.send(self.request)
            return self.sock.recv()
        self.sock.sendall(HEADER.pack(len(self.request)) + self.request)
        while len(self.buffer) < 4 or len(self.buffer) < 4 + HEADER.unpack_from(self.buffer)[0]:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("the unix relay closed its socket")
            self.buffer += data
        n = HEADER.unpack_from(self.buffer)[0]
        reply, self.buffer = self.buffer[4:4 + n], self.buffer[4 + n:]
        return reply

    def measure(self, calls: int) -> float:
        """The relay process's CPU per round trip (us)."""
        from benchmarks.cpu_per_call import cpu_ns

        for _ in range(min(calls, 1000)):
            self.round_trip()
        start = cpu_ns(self.proc.pid)
        for _ in range(calls):
            self.round_trip()
        return (cpu_ns(self.proc.pid) - start) / calls / 1000.0

    def close(self) -> None:
        if self.kind == "zmq":
            self.sock.send(b"")  # an empty frame: the relay's signal to stop
            self.sock.close(0)
        else:
            self.sock.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Relays:
    """Both relays, measured together in a round of cpu_per_call."""

    def __init__(self, request: dict) -> None:
        body = msgpack.packb(request)
        self.relays = {kind: Relay(kind, body) for kind in KINDS}
        for relay in self.relays.values():  # sanity: the echo answers the request itself
            if msgpack.unpackb(relay.round_trip(), raw=False) != request:
                raise RuntimeError(f"the {relay.kind} relay did not echo the request")

    def measure(self, calls: int) -> dict[str, float]:
        return {f"relay_{kind}": relay.measure(calls) for kind, relay in self.relays.items()}

    def close(self) -> None:
        for relay in self.relays.values():
            relay.close()


def main() -> int:
    from benchmarks.cpu_per_call import REQUEST, PipeEcho

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", default="0", help="the one CPU every process runs on")
    args = parser.parse_args()
    if args.cpu != "any":
        os.sched_setaffinity(0, {int(args.cpu)})
    echo, relays = PipeEcho(), Relays(REQUEST)
    rounds = []
    try:
        for _ in range(args.rounds):
            figures = {"pipe_echo_side": echo.measure(args.calls)}
            figures.update(relays.measure(args.calls))
            rounds.append(figures)
    finally:
        relays.close()
        echo.close()
    floor = statistics.median(r["pipe_echo_side"] for r in rounds)
    print(f"relay process CPU per call, {args.calls} calls, median of {args.rounds} rounds:")
    print(f"  {'pipe_echo_side (floor)':36} {floor:7.1f} us")
    for kind in KINDS:
        us = statistics.median(r[f"relay_{kind}"] for r in rounds)
        mult = statistics.median(r[f"relay_{kind}"] / r["pipe_echo_side"] for r in rounds)
        print(f"  {'bare Python relay (' + kind + ')':36} {us:7.1f} us  {mult:6.2f}x floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
