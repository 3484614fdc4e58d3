"""Workers' fd 1 and fd 2: read by the sidecar's loop, forwarded to its log at a bounded rate.

Python-level output of a call is captured per call (``sidecar.worker.main``). What bypasses it
(``os.write(1, ...)``, C libraries, a crashing interpreter's last words, output of the call's
child processes) lands on the worker's fd 1/2, which are one pipe per worker. The loop reads
that pipe without ever blocking and forwards it to the log through one token bucket for the
whole pool (``python3.worker.output-log-rate`` bytes per second, a second's worth of burst), or
discards it (``python3.worker.fd-output: discard``). Whatever is not logged is counted
(``fd_output`` in ``health``), and a summary line says so at most once per interval, so a
call writing 100 MB to fd 1 costs the log a few lines, not 100 MB.

Owns: those pipes' read ends once handed over, the rate limit, the logged/dropped counters.
Must not touch: worker lifecycle (``sidecar.process.spawn`` creates the pipe, registers the reader
and closes it with the worker), the protocol channel, captured per-call output.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from sidecar.platform.pipes import widen_pipe

log = logging.getLogger("py3sidecar.worker.output")

LOG, DISCARD = "log", "discard"
READ_CHUNK = 65536
READS_PER_EVENT = 16        # at most 1 MiB per readiness event: other sockets get their turn
PIPE_SIZE = 1 << 20         # fewer wake-ups for a flood (falls back to the default if refused)
LINE_LIMIT = 4096           # one log record never carries more than this
RECORD_OVERHEAD = 80        # a log record's header, charged against the rate
SUMMARY_INTERVAL = 10.0     # seconds between "dropped" summaries


class FdOutput:
    """The pool's one forwarder for every worker's fd 1/2 pipe."""

    def __init__(self, mode: str, rate: int, clock: Callable[[], float]) -> None:
        if mode not in (LOG, DISCARD):
            raise ValueError(f"python3.worker.fd-output must be 'log' or 'discard', not {mode!r}")
        self.mode = mode
        self.rate = max(0, rate)
        self.clock = clock
        self.allowance = float(self.rate)
        self.refilled_at = clock()
        self.logged_bytes = 0
        self.dropped_bytes = 0
        self.dropped_since_summary = 0
        self.summary_at = 0.0

    @staticmethod
    def open_pipe() -> tuple[int, int]:
        """(read end for the loop: non-blocking, close-on-exec; write end for fd 1 and 2)."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_end, False)
        widen_pipe(read_end, PIPE_SIZE)  # refused above pipe-max-size: the default, slower
        return read_end, write_end

    def on_readable(self, fd: int, label: str) -> bool:
        """Read what is there (bounded, never blocking); False at end of file."""
        for _ in range(READS_PER_EVENT):
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            self.forward(data, label)
            if len(data) < READ_CHUNK:
                return True
        return True

    def forward(self, data: bytes, label: str) -> None:
        now = self.clock()
        kept = 0
        if self.mode == LOG:
            self.allowance = min(float(self.rate),
                                 self.allowance + (now - self.refilled_at) * self.rate)
            self.refilled_at = now
            # A record costs the log its header too: charged, so many short lines cannot
            # outrun the rate.
            for line in data.splitlines():
                shown = line[:LINE_LIMIT]
                cost = len(shown) + RECORD_OVERHEAD
                if cost > self.allowance:
                    break
                self.allowance -= cost
                kept += len(shown) + 1
                log.warning("%s: %s", label, shown.decode("utf-8", "replace"))
            kept = min(kept, len(data))
            self.logged_bytes += kept
        dropped = len(data) - kept
        if dropped:
            self.dropped_bytes += dropped
            self.dropped_since_summary += dropped
        if self.dropped_since_summary and now - self.summary_at >= SUMMARY_INTERVAL:
            self.summary_at = now
            log.warning("%d bytes of workers' fd 1/2 output not logged (latest from %s): %s",
                        self.dropped_since_summary, label,
                        "python3.worker.fd-output is discard" if self.mode == DISCARD else
                        f"above python3.worker.output-log-rate ({self.rate} bytes/s)")
            self.dropped_since_summary = 0

    def snapshot(self) -> dict[str, Any]:
        return {"mode": self.mode, "rate": self.rate, "logged_bytes": self.logged_bytes,
                "dropped_bytes": self.dropped_bytes}
