"""Covers: sidecar.alerts.channels.

A channel URL apprise cannot use is refused without showing it (it may hold a secret); one it
can use passes.
"""

from __future__ import annotations

import pytest

from sidecar.alerts.channels import unusable_url_problem


@pytest.mark.parametrize("url", ["nonsense://secret-token@host", "mailto://"])
def test_an_unusable_url_is_named_without_its_text(url):
    problem = unusable_url_problem(url)
    assert problem and "apprise" in problem
    assert "secret-token" not in problem


def test_a_usable_url_passes():
    assert unusable_url_problem("json://127.0.0.1:9/alerts") is None
