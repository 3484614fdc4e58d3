"""TRANSPORT = 'unix' from a JVM running as the gateway's account (not the sidecar's user):
in python3.bridge.token-group it reads the connection file and the token file through the group
and is served over the socket (0660 in the group); an account outside the group gets an error
that says what to do. Run by test_unix_group_jython.py, once per account (PY3_EXPECT).
"""
import os

import java.lang

import harness
from harness import raises, save_project


def p3():
    return harness.MODULES['python3']


def setup_module():
    assert java.lang.System.getProperty('user.name') == os.environ['PY3_ACCOUNT']  # not root
    save_project()


if os.environ['PY3_EXPECT'] == 'served':
    def test_the_gateways_account_is_served_over_the_socket():
        assert p3().call('operator:add', [2, 3]) == 5
        assert p3().clientStatus()[0]['address'].startswith('unix:'), p3().clientStatus()
        result = p3().selfTest()
        assert result['ok'], result['report']
else:
    def test_an_account_outside_the_group_is_told_what_to_do():
        e = raises(p3().Unavailable, p3().call, 'operator:add', [2, 3])
        assert "TRANSPORT = 'unix'" in str(e) and 'token-group' in str(e), e
        assert e.details.get('sent') is False, e.details


def teardown_module():
    p3().close()
