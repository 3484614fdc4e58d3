"""Covers: sidecar.config.access, sidecar.config.settings, sidecar.config.model,
sidecar.deploy.bundle.

python3.access.routed (sidecar/config/access.py): the keys, their defaults, and bad values
named by key, as `serve` and `config --check` both read them."""

from __future__ import annotations

import pytest

from sidecar.config import settings
from sidecar.config.model import ConfigError, load


def routed(body: str):
    return load(text="python3:\n  access:\n    routed:\n" + body).python3.access.routed


def test_defaults_grant_the_route_nothing_but_ping_and_health() -> None:
    section = load().python3.access.routed
    assert section.allow_targets == [] and section.execute is False and section.diag is False
    policy = settings.route_policy(section)
    assert policy.allow_targets == () and not policy.execute and not policy.diag


def test_the_keys_reach_the_policy() -> None:
    section = routed('      allow-targets: ["mymodule:predict", "plant.models.*", '
                     '"statistics:*"]\n      execute: true\n      diag: true\n')
    policy = settings.route_policy(section)
    assert policy.allow_targets == ("mymodule:predict", "plant.models.*", "statistics:*")
    assert policy.execute and policy.diag
    assert policy.target_allowed("plant.models.pump:predict")


@pytest.mark.parametrize("body, named", [
    ('      allow-targets: ["ok:f", "m:f:g"]\n', "python3.access.routed.allow-targets"),
    ('      allow-targets: "statistics:*"\n', "python3.access.routed.allow-targets"),
    ('      allow-targets: [""]\n', "python3.access.routed.allow-targets"),
    ("      execute: maybe\n", "python3.access.routed.execute"),
    ("      diag: [1]\n", "python3.access.routed.diag"),
    ("      allow: [x]\n", "python3.access.routed.allow"),
], ids=["two-colons", "not-a-list", "empty", "execute", "diag", "unknown-key"])
def test_a_bad_value_names_its_key(body: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        routed(body)
    assert named in str(caught.value), str(caught.value)


def test_a_bad_pattern_says_which_entry_and_what_to_write() -> None:
    with pytest.raises(ConfigError) as caught:
        routed('      allow-targets: ["ok:f", "m:f:g"]\n')
    text = str(caught.value)
    assert "entry 1" in text and "'m:f:g'" in text and "'module:function'" in text, text


def test_install_text_says_what_the_route_grants() -> None:
    from sidecar.deploy.bundle import install_text

    text = install_text(user="ignition", python="/usr/bin/python3")
    assert "Security: the gateway route" in text
    for key in ("python3.access.routed", "allow-targets", "execute: true", "diag: true",
                "python3.Forbidden", "Security option"):
        assert key in text, key
