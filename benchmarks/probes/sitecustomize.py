"""Timestamp probes for benchmarks/profile_call.py, loaded into the sidecar and its workers
through PYTHONPATH (this folder), so the library itself carries no probe.

Inert unless PY3SIDECAR_PROFILE_DIR is set. Then, in ``python -m sidecar serve`` and
``python -m sidecar.worker.main`` only, it wraps a few functions on a call's path (by name: a target
that has moved is skipped and reported) with ``time.perf_counter_ns()`` stamps (CLOCK_MONOTONIC:
one clock for every process of the machine), and writes them to ``<dir>/<role>-<pid>.json``
when the process ends (``os._exit`` included). Module-level functions that other modules import
by name are patched here, before those modules are imported.

Owns: the probes. Must not touch: anything the probes do not wrap; it changes no behaviour.
"""

import os
import sys

DIR = os.environ.get("PY3SIDECAR_PROFILE_DIR", "")


def _role():
    argv = getattr(sys, "orig_argv", [])
    if "sidecar.worker.main" in argv:
        return "worker"
    if "sidecar" in argv and "serve" in argv:
        return "sidecar"
    return None


class Probes:
    """The stamps of one process: wrappers put around the library's functions, dumped at exit."""

    def __init__(self, role, out_dir):
        import time

        self.role, self.out_dir = role, out_dir
        self.stamp = time.perf_counter_ns
        self.events = []
        self.missing = []
        self.add = self.events.append

    def around(self, owner, name, label, when_result=None):
        """Stamp ``label>`` on entry and ``label<`` on return of owner.name (when_result:
        stamp only calls whose result it accepts, e.g. a read that returned frames)."""
        original = getattr(owner, name, None)
        if original is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return
        stamp, add = self.stamp, self.add

        def probe(*args, **kwargs):
            t = stamp()
            result = original(*args, **kwargs)
            if when_result is None or when_result(result):
                add((label + ">", t))
                add((label + "<", stamp()))
            return result

        probe.__wrapped__ = original
        setattr(owner, name, probe)

    def dump(self):
        import json

        path = os.path.join(self.out_dir, f"{self.role}-{os.getpid()}.json")
        with open(path, "w") as f:
            json.dump({"role": self.role, "pid": os.getpid(), "missing": self.missing,
                       "events": self.events}, f)

    def install_worker(self):
        from bridge import codec
        from sidecar import channel
        from sidecar.worker import isolation

        self.around(channel, "read_frame", "w.read", when_result=lambda r: r is not None)
        self.around(codec, "unpackb", "w.decode")
        self.around(isolation.Baseline, "left_behind", "w.isolation")
        self.around(codec, "pack_buffer", "w.encode")
        self.around(channel, "write_frame", "w.write")

    def install_sidecar(self):
        from bridge import codec, zmq_server
        from sidecar import channel
        from sidecar.process import spawn as process

        stamp, add = self.stamp, self.add
        original_init = zmq_server.ZmqFront.__init__

        def init(front, loop, handler, *args, **kwargs):
            def handle(payload, reply):
                add(("s.handler>", stamp()))
                handler(payload, reply)
                add(("s.handler<", stamp()))
            original_init(front, loop, handle, *args, **kwargs)

        zmq_server.ZmqFront.__init__ = init
        original_replier = zmq_server.ZmqFront.replier

        def replier(front, route):
            reply = original_replier(front, route)

            def stamped(data):
                add(("s.reply>", stamp()))
                reply(data)
                add(("s.reply<", stamp()))
            return stamped

        zmq_server.ZmqFront.replier = replier
        self.around(process.WorkerProcess, "write", "s.pipe_write")
        self.around(channel.FrameReader, "feed", "s.pipe_read", when_result=lambda r: bool(r))
        self.around(codec, "splice_success", "s.splice")

    def dump_at_exit(self):
        import atexit

        real_exit = os._exit

        def exit_after_dump(code):
            self.dump()
            real_exit(code)

        os._exit = exit_after_dump
        atexit.register(self.dump)


def install(role, out_dir):
    probes = Probes(role, out_dir)
    if role == "worker":
        probes.install_worker()
    else:
        probes.install_sidecar()
    probes.dump_at_exit()


if DIR:
    _ROLE = _role()
    if _ROLE:
        install(_ROLE, DIR)
