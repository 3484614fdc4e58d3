"""Covers: bridge.accept_guard, bridge.zmq_server, bridge.py4j_server.

Held connections cannot starve new clients, against a real sidecar:
the soft open-files limit is raised to the hard one at start, and when accept() runs out of
descriptors the Py4J front backs off (no spinning, one log line per interval) and serves again
once descriptors are free."""

import resource
import socket
import time

import psutil
import pytest

from sidecar.testing import SidecarProcess, wait_until

DEADLINE = 20.0


def lower_soft_limit() -> None:  # in the child, before exec
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0}}, workdir=str(tmp_path),
                        preexec_fn=lower_soft_limit) as proc:
        soft, _ = psutil.Process(proc.proc.pid).rlimit(psutil.RLIMIT_NOFILE)
        assert soft == hard
        assert "open-files limit raised from 256" in proc.log()


def py4j_auth(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(f"A\n{token}\ne\n".encode())
    assert sock.recv(16) == b"!yv\n"
    return sock


def test_accept_backs_off_when_descriptors_run_out(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "health": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        sidecar = psutil.Process(proc.proc.pid)
        port, token = proc.py4j_port, proc.token
        limit = sidecar.num_fds() + 4
        _, hard = sidecar.rlimit(psutil.RLIMIT_NOFILE)
        sidecar.rlimit(psutil.RLIMIT_NOFILE, (limit, hard))  # as if the unit set it this low
        held = []
        try:
            for _ in range(12):  # more than the 4 free descriptors: the rest wait in the backlog
                held.append(socket.create_connection(("127.0.0.1", port), timeout=DEADLINE))
            wait_until(lambda: sidecar.num_fds() >= limit, DEADLINE,
                       message="the sidecar's descriptors used up")
            lines_before = accept_lines(proc)
            cpu_before = sum(sidecar.cpu_times()[:2])
            wall_before = time.monotonic()
            time.sleep(2.0)  # an observation window, not a synchronisation
            cpu = sum(sidecar.cpu_times()[:2]) - cpu_before
            wall = time.monotonic() - wall_before
            lines = accept_lines(proc) - lines_before
            print(f"\nwith descriptors exhausted: sidecar CPU {cpu / wall:.0%} of one core, "
                  f"{lines} accept log line(s) in {wall:.1f}s")
            # c66ceb3 retries accept() every loop turn: a full core and a log line per turn.
            assert cpu < 0.25 * wall, f"the sidecar used {cpu:.2f}s CPU in {wall:.2f}s"
            assert lines <= 1
            assert accept_lines(proc) >= 1  # the failure was reported, with a count
        finally:
            for sock in held:
                sock.close()
        # descriptors are free again: the listener is polled again and serves a new JVM
        sidecar.rlimit(psutil.RLIMIT_NOFILE, (hard, hard))
        sock = wait_until(lambda: _try_auth(port, token), DEADLINE, interval=0.1,
                          message="a py4j connection served after the back-off")
        sock.close()
        assert proc.client(timeout=5).execute("1+1").value == 2


def accept_lines(proc: SidecarProcess) -> int:
    return sum(1 for line in proc.log().splitlines() if "py4j front" in line and "accept" in line)


def _try_auth(port: int, token: str):
    try:
        return py4j_auth(port, token)
    except OSError:
        return None
