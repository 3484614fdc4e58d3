"""Covers: sidecar.process.template, sidecar.platform.clone.

When a pool spawns plain instead of from the template, and why: the setting, another
interpreter; else whatever the platform says of its fork.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from sidecar.platform.clone import clone_supported
from sidecar.pool.settings import PoolSettings
from sidecar.process.template import template_unsupported


def test_why_a_pool_spawns_plain():
    settings = PoolSettings(python=[sys.executable])
    assert template_unsupported(replace(settings, spawn="plain")) == \
        "python3.worker.spawn is 'plain'"
    other = template_unsupported(replace(settings, spawn="template", python=["/usr/bin/env"]))
    assert "is not the sidecar's" in other
    ours = template_unsupported(replace(settings, spawn="template"))
    assert ours == clone_supported()
