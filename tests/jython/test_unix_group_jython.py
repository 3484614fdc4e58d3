"""Covers: ignition-scripts/ignition/script-python/py3sidecar/unixlink,
    ignition-scripts/ignition/script-python/py3sidecar/endpoints, sidecar.unix_front,
    bridge.token.

TRANSPORT = 'unix' as a gateway really runs: the JVM as another account than the sidecar's
(``setpriv``), with real accounts and a real token group (``groupadd``/``useradd``, deleted
after). A member of ``python3.bridge.token-group`` is served; an account outside it is told to
join the group. Cases: tests/jython/jy/cases_unix_group.py, one JVM per account.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

from sidecar.testing import SidecarProcess
from tests.integration.test_unix_group import group_and_accounts, reachable_workdir

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_unix_group.py"
RUN = os.getpid()
GROUP, MEMBER, OUTSIDER = f"py3sc-jtg-{RUN}", f"py3sc-jgw-{RUN}", f"py3sc-jout-{RUN}"


@pytest.fixture(scope="module")
def runs():
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to start the JVM as another account")
    accounts = group_and_accounts(GROUP, (MEMBER, OUTSIDER))
    users, group = next(accounts)
    work = reachable_workdir()
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                       "spares": 0}, "scaling": {"enabled": False},
                              "bridge": {"token-group": GROUP}}, workdir=work)
    sidecar.start()
    settings = {"CONNECTION_FILE": str(sidecar.connection_file), "TRANSPORT": "unix",
                "CONNECT_TIMEOUT_MS": 1000}
    jars = jvm.gateway_jars()
    out = {}
    try:
        for name, expect, groups in ((MEMBER, "served", str(group.gr_gid)),
                                     (OUTSIDER, "refused", "")):
            user = users[name]
            prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                      f"--groups={groups}" if groups else "--clear-groups", "--"]
            out[expect] = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps(settings),
                                                  "PY3_EXPECT": expect, "PY3_ACCOUNT": name},
                                        timeout=90, jars=jars, prefix=prefix)
    finally:
        sidecar.stop()
        shutil.rmtree(os.path.dirname(work), ignore_errors=True)
        accounts.close()
    return out


@pytest.mark.parametrize("expect, name", [
    ("served", "test_the_gateways_account_is_served_over_the_socket"),
    ("refused", "test_an_account_outside_the_group_is_told_what_to_do")])
def test_jython_unix_as_another_account(runs, expect, name):
    jvm.assert_case_passed(runs[expect], "cases_unix_group", name)
