"""The worker process: runs user code for the sidecar, one call at a time.

Started by the pool as ``python -m sidecar.worker.main --in FD --out FD --settings JSON``, or forked
from the pool's warm template (``sidecar.process.template_server``), which has done
``prepare_process`` and ``preload`` once and calls ``run`` in the child: both ways share those
three. Requests and replies travel as frames (``sidecar.channel``) over those two pipes, never over
stdin/stdout, so user code that prints, closes fd 1 or writes junk cannot corrupt the protocol.

Owns: executing ``execute``/``call`` requests, capturing Python-level output per call, turning
user exceptions into error replies, answering ``ping`` and ``stop``, and (through
``sidecar.worker.isolation``) putting back or reporting what a call left behind before the next.
Must not touch: scheduling, timeouts or restarts (the supervisor decides those; this process
may be killed at any moment).
The reply to a successful call is a map whose first member is ``ok: true`` so the supervisor can
forward it without decoding the value (see ``bridge.codec.splice_success``).
"""

from __future__ import annotations

import ast
import faulthandler
import importlib
import io
import json
import linecache
import os
import signal
import sys
import time
import traceback
from typing import Any

from bridge import codec
from bridge.protocol import BAD_REQUEST, USER, error
from sidecar.channel import FrameTooLarge
from sidecar.platform import limits, memtune, pipes, prctl
from sidecar.process import placement
from sidecar.process.confinement import die_with_sidecar, drop_capabilities
from sidecar.worker import isolation, protocol, testhooks
from sidecar.worker.wire import Inbox, write_frame

TRUNCATION_MARK = "\n[py3sidecar: output truncated, {} more characters not shown]\n"
RESULT_TOO_LARGE = "py3sidecar.ResultTooLarge"
# The ops the pool sends of its own; any other request is a call.
CONTROL = frozenset((protocol.STOP, protocol.PING, protocol.BENCH, protocol.TRACEMALLOC))


class BoundedWriter(io.TextIOBase):
    """A text stream keeping at most ``limit`` characters and counting what it dropped.

    Two are made for every call, most of which print nothing: slots, and nothing allocated
    until the first write."""

    __slots__ = ("limit", "parts", "size", "dropped", "sealed")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] | None = None
        self.size = 0
        self.dropped = 0
        self.sealed = False  # the call is over: later writes (a leftover thread's) go nowhere

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.sealed:
            return len(text)
        if self.parts is None:
            self.parts = []
        room = self.limit - self.size
        if len(text) <= room:
            self.parts.append(text)
            self.size += len(text)
        else:
            if room > 0:
                self.parts.append(text[:room])
                self.size = self.limit
            self.dropped += len(text) - max(room, 0)
        return len(text)

    def seal(self) -> str:
        """The call's output, once: nothing written afterwards can reach any reply."""
        self.sealed = True
        return self.getvalue()

    def getvalue(self) -> str:
        if self.parts is None and not self.dropped:
            return ""
        text = "".join(self.parts or ())
        if self.dropped:
            text += TRUNCATION_MARK.format(self.dropped)
        return text


class Worker:
    def __init__(self, in_fd: int, out_fd: int, settings: dict[str, Any],
                 preloaded: list[str] | None = None, embedded: bool = False) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.max_output = int(settings.get("max_output_chars", 65536))
        self.max_message = int(settings.get("max_message_bytes", 64 << 20))
        self.calls = 0
        self.pid = os.getpid()
        self.targets: dict[str, Any] = {}
        self.compiled: dict[str, tuple[Any, Any, str]] = {}
        self.cpu_limit = int(settings.get("cpu_limit") or 0)
        # Forked from a warm template (sidecar.process.template_server): the preload is done
        # already.
        self.preload_errors = preload(settings) if preloaded is None else list(preloaded)
        if not embedded:  # a host process (a Dask worker) keeps its own process settings
            prctl.become_subreaper()
        # What a call must not change for the next one: taken after start-up and preload, so
        # the worker's own threads and limits are the baseline (see sidecar.worker.isolation).
        self.baseline = isolation.Baseline()

    # ------------------------------------------------------------ protocol loop
    def serve(self) -> None:
        """Answer every request in turn; a trivial call costs one read, one write and the
        isolation's quick look (``Baseline.left_behind``) in system calls."""
        self.send(protocol.ready(self.pid, self.preload_errors))
        inbox = Inbox(self.in_fd, self.max_message)
        hooks = bool(testhooks.HOOK_DIR)  # test hooks: inert unless a crash-matrix test arms them
        while True:
            try:
                frame = inbox.read_frame()
            except (FrameTooLarge, OSError) as exc:
                print(f"py3sidecar worker {self.pid}: channel broken: {exc}", file=sys.stderr)
                return
            if frame is None:  # the supervisor is gone or asked us to go
                return
            if hooks:
                testhooks.at("decode")
            try:
                request = codec.unpackb(frame)
            except codec.DecodeError as exc:
                # Only calls can carry undecodable values (the supervisor's own frames are
                # ours): the call is refused, the worker lives on.
                self.send_reply(self.refusal(f"{exc}; see docs/protocol.md (extension types)"))
                continue
            op = request.get("op")
            if op in CONTROL:
                if op == protocol.STOP:
                    return
                self.control(op, request)
                continue
            reply = self.run_call(request)
            if os.getpid() != self.pid:
                os._exit(0)  # a fork in user code returned here: only the real worker answers
            left = self.baseline.left_behind()
            if left:  # before the reply, so the pool knows before it could send another call
                self.send(protocol.left_behind(left))
            self.send_reply(reply)
            if hooks:
                testhooks.at("idle")  # between calls

    def control(self, op: str, request: dict[str, Any]) -> None:
        """Answer one of the pool's own requests (``ping``, ``bench``, ``tracemalloc``)."""
        if op == protocol.PING:
            self.send({"ok": True, "pid": self.pid, "calls": self.calls, "ready": True,
                       "preload_errors": self.preload_errors})
        elif op == protocol.BENCH:
            self.send(self.bench(int(request.get("rounds") or 3)))
        else:  # diagnostics: memory --top N
            self.send(self.top_allocations(int(request.get("top") or 10)))

    def send(self, message: dict[str, Any]) -> None:
        write_frame(self.out_fd, codec.packb(message))

    def send_reply(self, reply: dict[str, Any]) -> None:
        write_frame(self.out_fd, self.encode_reply(reply))

    def encode_reply(self, reply: dict[str, Any]) -> bytes:
        """The reply frame: an unencodable or too large result becomes the caller's error."""
        try:
            if testhooks.HOOK_DIR:
                testhooks.at("encode")  # test hook (crash matrix): while the result is encoded
            payload = codec.pack_buffer(reply)  # a view: no copy into bytes
        except codec.EncodeError as exc:
            payload = codec.packb(self.failure(reply, "TypeError", str(exc)))
        except MemoryError:  # a result too big for memory: the caller's error, and we recycle
            payload = codec.packb(self.failure(
                reply, "MemoryError", "the result could not be encoded: out of memory"))
        if len(payload) > self.max_message:
            payload = codec.packb(self.failure(
                reply, RESULT_TOO_LARGE,
                f"the result encodes to {len(payload)} bytes, above the limit of "
                f"{self.max_message} (python3.bridge.max-message-size); return less data"))
        return payload

    @staticmethod
    def refusal(message: str) -> dict[str, Any]:
        """The reply to a call whose request could not be decoded (the caller's bad input)."""
        return {"ok": False, "ms": 0.0, "cpu": 0.0,
                "error": error(BAD_REQUEST, message, type="py3sidecar.DecodeError"),
                "stdout": "", "stderr": ""}

    @staticmethod
    def failure(reply: dict[str, Any], type_name: str, message: str) -> dict[str, Any]:
        return {"ok": False, "ms": reply.get("ms", 0.0), "cpu": reply.get("cpu", 0.0),
                "error": error(USER, message, type=type_name),
                "stdout": reply.get("stdout", ""), "stderr": reply.get("stderr", "")}

    # ------------------------------------------------------------ running user code
    def run_call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one call; the reply starts ok, ms, cpu (see bridge.codec.splice_success)."""
        out = BoundedWriter(self.max_output)
        err = BoundedWriter(self.max_output)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        # The limits are the baseline's: put back after every call (Baseline.left_behind), and
        # nothing else runs in a worker between calls (a left-behind thread recycles it).
        cpu_started = time.process_time()
        if self.cpu_limit:
            self.arm_cpu_limit(cpu_started)
        started = time.perf_counter()
        try:
            if request.get("op") == "execute":
                value = self.execute(request["code"], request.get("vars") or {})
            else:
                func, kwargs = self.resolve(request["target"]), request.get("kwargs")
                args = request.get("args") or ()
                value = func(*args, **kwargs) if kwargs else func(*args)
            ok, member, payload = True, "value", value
        except BaseException as exc:  # noqa: BLE001 - even SystemExit is the user's, not ours
            ok, member, payload = False, "error", self.describe(exc)
        finally:
            sys.stdout, sys.stderr = saved
            self.calls += 1
        elapsed = (time.perf_counter() - started) * 1000.0
        cpu = (time.process_time() - cpu_started) * 1000.0
        if testhooks.HOOK_DIR:
            testhooks.at("flush")  # test hook (crash matrix): before captured output is taken
        return {"ok": ok, "ms": elapsed, "cpu": cpu, member: payload,
                "stdout": out.seal(), "stderr": err.seal()}

    def arm_cpu_limit(self, used: float) -> None:
        # RLIMIT_CPU counts the whole process: move it before each call so the limit applies
        # per call and a long-lived worker never dies of old age (SIGXCPU at the soft limit,
        # SIGKILL one second later).
        soft = int(used) + self.cpu_limit + 1
        limits.setrlimit(limits.RLIMIT_CPU, (soft, soft + 1))

    def bench(self, rounds: int) -> dict[str, Any]:
        """A fixed CPU benchmark timed inside the worker (the performance check's probe)."""
        best = float("inf")
        for _ in range(max(1, rounds)):
            started = time.perf_counter()
            sum([i * i for i in range(2000)])
            best = min(best, time.perf_counter() - started)
        return {"ok": True, "seconds": best}

    @staticmethod
    def top_allocations(top: int) -> dict[str, Any]:
        """The biggest allocation sites since tracing began; the first request starts it
        (tracing slows allocation, so it is only on when an operator asked)."""
        import tracemalloc

        if not tracemalloc.is_tracing():
            tracemalloc.start(1)
            return {"ok": True, "tracing": True, "started": True, "top": []}
        stats = tracemalloc.take_snapshot().statistics("lineno")[:top]
        return {"ok": True, "tracing": True, "started": False,
                "top": [{"where": str(s.traceback[0]), "size": s.size, "count": s.count}
                        for s in stats]}

    def execute(self, code: str, variables: dict[str, Any]) -> Any:
        body, tail, filename = self.compile(code)
        namespace = {"__name__": "__py3sidecar__", "__builtins__": __builtins__}
        namespace.update(variables)
        if body is not None:
            exec(body, namespace)
        if tail is not None:
            return eval(tail, namespace)
        return namespace.get("result")

    def compile(self, code: str) -> tuple[Any, Any, str]:
        cached = self.compiled.get(code)
        if cached is not None:
            return cached
        filename = f"<python3.execute #{len(self.compiled) + 1}>"
        tree = ast.parse(code, filename, "exec")
        tail = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            tail = compile(ast.Expression(tree.body.pop().value), filename, "eval")
        body = compile(tree, filename, "exec") if tree.body else None
        # Register the source so tracebacks show the user's lines.
        lines = code.splitlines(keepends=True)
        linecache.cache[filename] = (len(code), None, lines, filename)
        if len(self.compiled) >= 512:
            self.compiled.clear()
        self.compiled[code] = (body, tail, filename)
        return body, tail, filename

    def resolve(self, target: str) -> Any:
        func = self.targets.get(target)
        if func is None:
            module_name, _, attr_path = target.partition(":")
            func = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                func = getattr(func, attr)
            if not callable(func):
                raise TypeError(f"{target} is a {type(func).__name__}, not a function")
            self.targets[target] = func
        return func

    @staticmethod
    def describe(exc: BaseException) -> dict[str, Any]:
        tb = exc.__traceback__
        # Drop this module's own frames so the traceback starts in the user's code.
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        name = type(exc).__qualname__
        module = type(exc).__module__
        if module not in ("builtins", "__main__", "__py3sidecar__"):
            name = f"{module}.{name}"
        return error(USER, str(exc), type=name, traceback=text)


_embedded: Worker | None = None


def run_request(payload: bytes) -> bytes:
    """Run one ``execute``/``call`` request envelope in this process and return its reply
    frame, byte for byte what a pool worker would send (the Dask pool's task, through
    ``sidecar.dask_task``). No channel, rlimits or subreaper: the host process owns those."""
    global _embedded
    if _embedded is None:
        _embedded = Worker(-1, -1, {}, embedded=True)
    try:
        request = codec.unpackb(payload)
    except codec.DecodeError as exc:
        return _embedded.encode_reply(
            Worker.refusal(f"{exc}; see docs/protocol.md (extension types)"))
    return _embedded.encode_reply(_embedded.run_call(request))


def parse_args(argv: list[str]) -> dict[str, str]:
    """``--in FD --out FD [--settings JSON] [--stack-file PATH | --stack-fd FD]`` (no argparse:
    it costs milliseconds of every worker's start)."""
    options = dict(zip(argv[::2], argv[1::2]))
    unknown = set(options) - {"--in", "--out", "--settings", "--stack-file", "--stack-fd"}
    if len(argv) % 2 or unknown or "--in" not in options or "--out" not in options:
        raise SystemExit("usage: python -m sidecar.worker.main --in FD --out FD "
                         "[--settings JSON] [--stack-file PATH | --stack-fd FD]")
    return options


def preload(settings: dict[str, Any]) -> list[str]:
    """The CPUs, address-space limit, ``paths`` and ``preload`` of a worker's settings, done in this
    process (a worker, or the template workers are forked from); returns the preload errors."""
    errors: list[str] = []
    placement.pin_process(list(settings.get("cpu_affinity") or ()))  # python3.worker.cpu-affinity
    address_space = int(settings.get("address_space_limit") or 0)
    if address_space:
        limits.setrlimit(limits.RLIMIT_AS, (address_space, address_space))
    for path in settings.get("paths") or ():
        if path not in sys.path:
            sys.path.insert(0, path)
    for module in settings.get("preload") or ():
        try:
            importlib.import_module(module)
        except BaseException as exc:  # a broken preload is reported, not fatal
            errors.append(f"{module}: {type(exc).__name__}: {exc}")
    return errors


def prepare_process() -> int:
    """Before anything else, in a worker or a template: never outlive the sidecar, never hold
    what it holds, malloc tuned, SIGINT ignored, prints to fd 2. Returns the sidecar's pid."""
    sidecar_pid = die_with_sidecar()
    drop_capabilities()
    memtune.keep_large_buffers(strict=False)  # large messages reuse their pages (memtune)
    # Outside calls, Python-level prints go to the sidecar's log, never anywhere else.
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    return sidecar_pid


def run(in_arg: int, out_arg: int, stack_arg: int, settings: dict[str, Any],
        preloaded: list[str] | None = None) -> None:
    """Serve as a worker on the pipes ``in_arg``/``out_arg`` until told to stop, then exit.

    The channel moves far from the low descriptors user code is likely to close or reuse, and
    out of any process the user's code starts. A hung worker's stack can be asked for with
    SIGUSR1: the watchdog does so before a kill and reads the dump from ``stack_arg`` (opened
    by the pool: we may not be allowed to open it; written by a C signal handler)."""
    in_fd = pipes.dup_above(in_arg, 200)
    out_fd = pipes.dup_above(out_arg, 200)
    os.close(in_arg)
    os.close(out_arg)
    stack_out: Any = sys.__stderr__
    if stack_arg >= 0:
        stack_out = pipes.dup_above(stack_arg, 200)
        os.close(stack_arg)
    faulthandler.register(signal.SIGUSR1, file=stack_out, all_threads=True, chain=False)
    Worker(in_fd, out_fd, settings, preloaded).serve()
    isolation.kill_children()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    prepare_process()
    options = parse_args(sys.argv[1:] if argv is None else argv)
    settings = json.loads(options.get("--settings", "{}"))
    stack_fd = int(options.get("--stack-fd", "-1"))
    stack_file = options.get("--stack-file")
    if stack_file and stack_fd < 0:
        stack_fd = os.open(stack_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    run(int(options["--in"]), int(options["--out"]), stack_fd, settings)


if __name__ == "__main__":
    main()
