"""The config section of the audit log: ``python3.audit``.

Owns: that model, its defaults and checks. Must not touch: reading YAML and the other sections
(``sidecar.config.model``, which includes this one in ``Python3Config``), the log itself
(``sidecar.observability.audit``).
"""

from __future__ import annotations

from pydantic import model_validator

from sidecar.config.fields import Section, Size

MIB = 1 << 20


class AuditConfig(Section):
    """``python3.audit``: one JSON line per call, refusal and operator action
    (sidecar/observability/audit.py)."""

    enabled: bool = True
    file: str = ""  # "": audit.log next to the token (the runtime folder)
    max_size: Size = 10 * MIB
    backups: int = 5
    queue_size: int = 10000

    @model_validator(mode="after")
    def _bounded(self) -> "AuditConfig":
        if self.max_size < 0:
            raise ValueError(f"max-size = {self.max_size} must be >= 0 (0: never rotated)")
        if self.backups < 0:
            raise ValueError(f"backups = {self.backups} must be >= 0")
        if self.max_size and not self.backups:
            raise ValueError("backups = 0 with a max-size: the file could never be rotated; "
                             "keep at least 1 backup, or set max-size: 0 (never rotated)")
        if self.queue_size < 1:
            raise ValueError(f"queue-size = {self.queue_size} must be >= 1")
        return self
