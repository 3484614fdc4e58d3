"""How many idle ZeroMQ connections it takes to hurt new clients (issue 8, finding 5).

Starts a real sidecar, opens N handshaken, idle DEALER connections, and reports the sidecar's
descriptors and RSS per connection; then lowers the sidecar's soft RLIMIT_NOFILE to what it uses
plus a margin and counts how many more idle connections it takes until a new client's ping
fails, and how much CPU the sidecar burns meanwhile.

    .venv/bin/python benchmarks/idle_zmq_connections.py [N]
"""

from __future__ import annotations

import sys
import time

import psutil
import zmq

from bridge.client import Client
from bridge.protocol import SidecarError
from sidecar.testing import SidecarProcess, wait_until


def open_idle(ctx: zmq.Context, proc: SidecarProcess, count: int) -> list[zmq.Socket]:
    socks = []
    endpoint = proc.endpoint
    for _ in range(count):
        sock = proc.authenticate(ctx.socket(zmq.DEALER))  # handshaken: PLAIN with the token
        sock.linger = 0
        sock.connect(endpoint)
        socks.append(sock)
    return socks


def new_client_works(proc: SidecarProcess) -> bool:
    client = Client(proc.endpoint, proc.token, timeout=1.0, connect_timeout=1.0, grace=0.5)
    try:
        client.ping()
        return True
    except SidecarError:
        return False
    finally:
        client.close()


def main(n: int) -> None:
    ctx = zmq.Context()
    ctx.max_sockets = 3 * n + 100
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "health": {"enabled": False}}) as proc:
        side = psutil.Process(proc.proc.pid)
        fds0, rss0 = side.num_fds(), side.memory_info().rss
        socks = open_idle(ctx, proc, n)
        wait_until(lambda: side.num_fds() >= fds0 + n, 60, message=f"{n} connections")
        fds1, rss1 = side.num_fds(), side.memory_info().rss
        print(f"sidecar at rest: {fds0} fds, {rss0 >> 20} MiB RSS")
        print(f"{n} idle ZeroMQ connections: +{fds1 - fds0} fds "
              f"({(fds1 - fds0) / n:.2f} per connection), +{(rss1 - rss0) >> 10} KiB RSS "
              f"({(rss1 - rss0) / n / 1024:.1f} KiB per connection)")
        margin = 50
        _, hard = side.rlimit(psutil.RLIMIT_NOFILE)
        side.rlimit(psutil.RLIMIT_NOFILE, (fds1 + margin, hard))
        more = open_idle(ctx, proc, 2 * margin)
        wait_until(lambda: side.num_fds() >= fds1 + margin - 5, 30, message="limit reached")
        cpu0, t0 = sum(side.cpu_times()[:2]), time.monotonic()
        works = new_client_works(proc)
        time.sleep(2.0)  # observation window for the CPU figure
        cpu = (sum(side.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
        print(f"soft limit {fds1 + margin} reached by {fds1 + margin - fds0} idle connections: "
              f"a new client's ping {'still works' if works else 'FAILS'}; sidecar CPU "
              f"{cpu:.0%} of a core while the backlog waits")
        side.rlimit(psutil.RLIMIT_NOFILE, (hard, hard))
        for sock in socks + more:
            sock.close()
    ctx.term()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
