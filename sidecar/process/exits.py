"""A process's end told as advice: the exit code or signal, and what it likely means.

Owns: ``describe_exit`` (text for logs and errors, details for the wire). Must not touch:
processes (it only reads a return code); used by spawn.py and template.py alike.
"""

from __future__ import annotations

import signal
from typing import Any


def describe_exit(returncode: int | None) -> tuple[str, dict[str, Any]]:
    """Human text and wire details for a process's end."""
    if returncode is None:
        return "an unknown status", {}
    if returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        hint = ""
        if signum == signal.SIGKILL:
            hint = " (killed from outside: the out-of-memory killer, an operator or a limit)"
        elif signum == signal.SIGSEGV:
            hint = " (a segmentation fault in native code)"
        elif signum == signal.SIGXCPU:
            hint = " (the per-call CPU limit, python3.resources.cpu-limit)"
        return f"signal {signum} ({name}){hint}", {"signal": signum, "signal_name": name}
    return f"exit code {returncode}", {"exit_code": returncode}
