"""Covers: sidecar.config.audit, sidecar.config.model.

python3.audit: its defaults, and a size that is no size refused naming the key.
"""

from __future__ import annotations

import pytest

from sidecar.config import model
from sidecar.config.model import ConfigError


def test_defaults():
    audit = model.load(text="").python3.audit
    assert audit.enabled and audit.file == "" and audit.max_size == 10 << 20
    assert audit.backups == 5 and audit.queue_size == 10000


def test_sizes_as_written_and_a_bad_one_named():
    audit = model.load(text="python3:\n  audit:\n    max-size: 2MiB\n").python3.audit
    assert audit.max_size == 2 << 20
    with pytest.raises(ConfigError, match="python3.audit.max-size"):
        model.load(text="python3:\n  audit:\n    max-size: 1x\n")
