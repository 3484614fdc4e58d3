"""The sidecar's recent log lines, kept in a bounded ring for ``GET /api/logs``.

Owns: a ``logging.Handler`` on the root logger that formats each record once and keeps the last
``RING_LINES`` of them (workers' fd output included: ``sidecar.process.fd_output`` logs it through
``py3sidecar.worker.output``), and reading them back by count and level. Must not touch: where
the log itself goes (the handlers `serve` set up stay as they are), HTTP (`http_actions`).

The ring holds what the log holds: a line is passed through the text redactor of
``sidecar.observability.redaction`` when that module offers one (``redact_text``), so it never shows
more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

RING_LINES = 2000      # lines kept; at most LINE_LIMIT characters each
LINE_LIMIT = 4096
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
          "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


def _text_redactor() -> Any:
    try:
        from sidecar.observability import redaction
    except ImportError:  # pragma: no cover - the module is part of the package
        return None
    return getattr(redaction, "redact_text", None)


class LogRing(logging.Handler):
    """Keeps ``(seq, created, levelno, line)`` of the last ``size`` records."""

    def __init__(self, size: int = RING_LINES) -> None:
        super().__init__(logging.DEBUG)
        self.records: deque[tuple[int, float, int, str]] = deque(maxlen=size)
        self.seq = 0
        self.ring_lock = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.redact = _text_redactor()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)[:LINE_LIMIT]
            if self.redact is not None:
                line = self.redact(line)
        except Exception:  # a record that cannot be formatted must not break logging
            return
        with self.ring_lock:
            self.seq += 1
            self.records.append((self.seq, record.created, record.levelno, line))

    def lines(self, count: int = 200, level: str = "DEBUG", after: int = 0) -> dict[str, Any]:
        """The last ``count`` lines at ``level`` or above (and newer than sequence ``after``)."""
        floor = LEVELS[level]
        with self.ring_lock:
            picked = [r for r in self.records if r[2] >= floor and r[0] > after]
            last = self.seq
        picked = picked[-count:] if count else []
        return {"lines": [{"seq": s, "at": at, "level": logging.getLevelName(n), "line": line}
                          for s, at, n, line in picked],
                "last": last, "kept": self.records.maxlen, "now": time.time()}


_installed: LogRing | None = None
_install_lock = threading.Lock()


def install(size: int = RING_LINES) -> LogRing:
    """The process's one ring, attached to the root logger (idempotent). The root logger's
    level still decides what is logged: the ring never makes the log chattier."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = LogRing(size)
            logging.getLogger().addHandler(_installed)
        return _installed


def parse_query(query: dict[str, str]) -> tuple[int, str, int]:
    """``lines`` (1..RING_LINES, default 200), ``level`` (default INFO), ``after`` (a seq):
    raises ValueError with advice."""
    raw = query.get("lines", "200")
    if not raw.isdigit() or not 1 <= int(raw) <= RING_LINES:
        raise ValueError(f"'lines' must be a whole number from 1 to {RING_LINES}, got {raw!r}")
    level = query.get("level", "INFO").upper()
    if level not in LEVELS:
        raise ValueError(f"'level' must be one of {', '.join(LEVELS)}, got {level!r}")
    after = query.get("after", "0")
    if not after.isdigit():
        raise ValueError(f"'after' must be a line's seq (a whole number), got {after!r}")
    return int(raw), level, int(after)
