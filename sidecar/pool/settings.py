"""The pool's settings, already validated (``sidecar.config.model`` builds them from the YAML).

Owns: the ``PoolSettings`` dataclass and its code defaults. Must not touch: reading or
validating config files (``sidecar.config.model``), anything at run time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from sidecar.supervision.score import ScoreConfig


@dataclass
class PoolSettings:
    """Everything the pool needs, already validated (see ``sidecar.config.model``)."""

    name: str = "primary"
    initial_size: int = 2
    min_size: int = 1
    max_size: int = 4
    spares: int = 1
    queue_size: int = 64
    call_timeout: float = 30.0
    kill_grace: float = 0.5
    start_timeout: float = 30.0
    max_restarts: int = 30
    restart_window: float = 10.0
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    python: list[str] = field(default_factory=lambda: [sys.executable])
    env: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    preload: list[str] = field(default_factory=list)
    max_output_chars: int = 65536
    max_message_bytes: int = 64 << 20
    max_calls: int = 0             # recycle after this many calls (0: never) ...
    max_calls_jitter: int = 0      # ... plus up to this many more, so workers don't recycle at once
    max_memory: int = 0            # recycle after the current call above this RSS (0: never)
    cpu_limit: int = 0             # hard CPU seconds per call (RLIMIT_CPU, re-armed per call)
    address_space_limit: int = 0   # hard RLIMIT_AS per worker, bytes
    rss_sample_interval: float = 0.25  # at most one RSS reading per worker per interval
    stack_capture_wait: float = 0.3    # how long to wait for a hung worker's stack dump (a
                                       # loaded 2-core host needs more than 100 ms)
    fd_output: str = "log"             # workers' fd 1/2: "log" (rate-limited) or "discard"
    output_log_rate: int = 65536       # bytes per second of fd 1/2 output into the log (all)
    stack_root: str = ""               # where this pool's stack folder goes ("": temp folder)
    user: str = ""                     # account workers run as ("": the sidecar's)
    group: str = ""                    # group workers run as ("": the user's own)
    spawn: str = "template"            # "template": forked from a warm template; "plain"
    cpu_affinity: list[int] = field(default_factory=list)  # workers' CPUs ([]: the sidecar's)
    score: ScoreConfig = field(default_factory=ScoreConfig)
