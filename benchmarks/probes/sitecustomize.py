"""Timestamp probes for benchmarks/profile_call.py, loaded into the sidecar and its workers
through PYTHONPATH (this folder), so the library itself carries no probe.

Inert unless PY3SIDECAR_PROFILE_DIR is set. Then, in ``python -m sidecar serve`` and
``python -m sidecar.worker`` only, it wraps a few functions on a call's path (by name: a target
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
    if "sidecar.worker" in argv:
        return "worker"
    if "sidecar" in argv and "serve" in argv:
        return "sidecar"
    return None


def install(role, out_dir):
    import json
    import time

    stamp = time.perf_counter_ns
    events = []
    missing = []
    add = events.append

    def around(owner, name, label, when_result=None):
        """Stamp ``label>`` on entry and ``label<`` on return of owner.name (when_result:
        stamp only calls whose result it accepts, e.g. a read that returned frames)."""
        original = getattr(owner, name, None)
        if original is None:
            missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return

        def probe(*args, **kwargs):
            t = stamp()
            result = original(*args, **kwargs)
            if when_result is None or when_result(result):
                add((label + ">", t))
                add((label + "<", stamp()))
            return result

        probe.__wrapped__ = original
        setattr(owner, name, probe)

    def dump():
        path = os.path.join(out_dir, f"{role}-{os.getpid()}.json")
        with open(path, "w") as f:
            json.dump({"role": role, "pid": os.getpid(), "missing": missing,
                       "events": events}, f)

    from bridge import codec

    if role == "worker":
        from sidecar import channel, isolation

        around(channel, "read_frame", "w.read", when_result=lambda r: r is not None)
        around(codec, "unpackb", "w.decode")
        around(isolation.Baseline, "left_behind", "w.isolation")
        around(codec, "pack_buffer", "w.encode")
        around(channel, "write_frame", "w.write")
    else:
        from bridge import zmq_server
        from sidecar import channel, process

        original_init = zmq_server.ZmqFront.__init__

        def init(self, loop, handler, *args, **kwargs):
            def handle(payload, reply):
                add(("s.handler>", stamp()))
                handler(payload, reply)
                add(("s.handler<", stamp()))
            original_init(self, loop, handle, *args, **kwargs)

        zmq_server.ZmqFront.__init__ = init
        original_replier = zmq_server.ZmqFront.replier

        def replier(self, route):
            reply = original_replier(self, route)

            def stamped(data):
                add(("s.reply>", stamp()))
                reply(data)
                add(("s.reply<", stamp()))
            return stamped

        zmq_server.ZmqFront.replier = replier
        around(process.WorkerProcess, "write", "s.pipe_write")
        around(channel.FrameReader, "feed", "s.pipe_read", when_result=lambda r: bool(r))
        around(codec, "splice_success", "s.splice")

    real_exit = os._exit

    def exit_after_dump(code):
        dump()
        real_exit(code)

    os._exit = exit_after_dump
    import atexit

    atexit.register(dump)


if DIR:
    _ROLE = _role()
    if _ROLE:
        install(_ROLE, DIR)
