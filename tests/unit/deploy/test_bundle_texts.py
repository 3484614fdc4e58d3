"""Covers: sidecar.deploy.bundle_texts.

The shipped unit's text: the accounts, the interpreter and the gateway unit it is given appear
where systemd reads them, and Type=notify with a watchdog.
"""

from __future__ import annotations

from sidecar.deploy import bundle_texts


def test_the_unit_carries_what_it_is_given():
    unit = bundle_texts.systemd_unit("svc", "/opt/py/bin/python3", group="grp",
                                     gateway_unit="gw.service", worker_user="wk",
                                     state_dir="/var/lib/x", config="/etc/x.yml")
    lines = unit.splitlines()
    assert "User=svc" in lines and "Type=notify" in lines
    assert any(line.startswith("ExecStart=/opt/py/bin/python3") and "/etc/x.yml" in line
               for line in lines)
    assert any("gw.service" in line for line in lines)
    assert any(line.startswith("WatchdogSec=") for line in lines)


def test_the_default_config_names_the_default_worker_account():
    assert bundle_texts.DEFAULT_WORKER_USER in bundle_texts.config_yml() or \
        "user:" in bundle_texts.config_yml()
