"""The warm template process: preloads once, then forks a ready-to-serve worker on request.

Started by the sidecar (``sidecar.process.template``) as ``python -m sidecar.process.template_server
--sock FD --settings JSON``, with a worker's environment, account and process group. It does what a
worker does before its first call (``sidecar.worker.main.prepare_process`` and ``preload``), then
waits on a unix ``SOCK_SEQPACKET`` socket::

    sidecar                                     template (this process)
    fork {"sidecar": pid} + SCM_RIGHTS  ---->   clone(CLONE_PARENT | SIGCHLD)
      [in-pipe read end, out-pipe write end,      child: setsid, PDEATHSIG, fd 1/2, closes the
       fd 1/2 write end, stack file]                socket -> sidecar.worker.main.run (a worker)
    {"pid": N} | {"error": text}         <----    parent: closes the fds, answers

``CLONE_PARENT`` makes the worker the *sidecar's* child, not ours: the sidecar reaps it, reads
its exit status and holds its pidfd exactly as for a worker it started itself, and the
worker's ``PR_SET_PDEATHSIG`` watches the sidecar, so a dying template takes no worker with it.
The raw ``clone`` skips glibc's fork handlers, which is safe only while this process has one
thread: a template whose preload started threads declines every fork (the pool then spawns
plain workers and says why).

Owns: the template's loop, the fork, a forked child's first steps until it becomes a worker.
Must not touch: the worker's call loop (``sidecar.worker.main``), the sidecar's bookkeeping.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

from sidecar.platform.clone import fork_into_parent
from sidecar.platform.procfs import thread_count
from sidecar.process.confinement import die_with_sidecar
from sidecar.worker import main as worker

MAX_FDS = 4
FD_ROLES = ("in", "out", "output", "stack")  # the order of the descriptors sent with "fork"


def become_worker(sock: socket.socket, fds: dict[str, int], sidecar_pid: int,
                  settings: dict[str, Any], preload_errors: list[str]) -> None:
    """In the forked child: what ``Popen`` and the worker's start-up did for a plain worker."""
    try:
        os.setsid()  # its own process group: a kill also ends what its calls started
        sock.close()  # user code must not reach the template
        die_with_sidecar(str(sidecar_pid))  # cleared by fork; our parent is the sidecar
        output = fds.get("output", -1)
        if output >= 0:
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.close(output)
        worker.run(fds["in"], fds["out"], fds.get("stack", -1), settings, preload_errors)
    except BaseException as exc:  # noqa: BLE001 - a child must never return into the template
        print(f"py3sidecar worker {os.getpid()} (forked): could not start: {exc}",
              file=sys.stderr)
    os._exit(1)


def serve(sock: socket.socket, sidecar_pid: int, settings: dict[str, Any]) -> None:
    preload_errors = worker.preload(settings)
    threads = thread_count()
    declined = ""
    if threads > 1:
        declined = (f"the preload left {threads} threads running in the template (a fork "
                    "copies only one); workers are started plain")
    sock.send(json.dumps({"op": "ready", "pid": os.getpid(), "declined": declined}).encode())
    while True:
        try:
            message, received, _flags, _addr = socket.recv_fds(sock, 4096, MAX_FDS)
        except OSError:
            return
        if not message:
            return  # the sidecar closed its end: renewed, or stopping
        request = json.loads(message)
        fds = dict(zip(request.get("fds", ()), received))
        try:
            answer = decline_or_fork(sock, fds, request, sidecar_pid, settings, preload_errors)
        finally:
            for fd in received:
                os.close(fd)
        sock.send(json.dumps(answer).encode())


def decline_or_fork(sock: socket.socket, fds: dict[str, int], request: dict[str, Any],
                    sidecar_pid: int, settings: dict[str, Any],
                    preload_errors: list[str]) -> dict[str, Any]:
    threads = thread_count()
    if threads > 1:
        return {"error": f"the template has {threads} threads: it cannot fork safely"}
    if "in" not in fds or "out" not in fds:
        return {"error": f"a fork needs the in and out pipes, got {sorted(fds)}"}
    sys.stderr.flush()  # nothing of ours is written twice by the child
    try:
        pid = fork_into_parent()
    except OSError as exc:
        return {"error": str(exc), "errno": exc.errno}
    if pid == 0:
        become_worker(sock, fds, sidecar_pid, settings, preload_errors)
    return {"pid": pid}


def main() -> None:
    sidecar_pid = worker.prepare_process()
    options = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    sock = socket.socket(fileno=int(options["--sock"]))
    sock.set_inheritable(False)
    serve(sock, sidecar_pid, json.loads(options.get("--settings", "{}")))
    os._exit(0)


if __name__ == "__main__":
    main()
