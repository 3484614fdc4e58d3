"""TRANSPORT = 'unix' on a gateway without py3sidecar-gateway.jar: a clear error naming the
setting and the jar, in the calls and in python3.selfTest(). Run by test_unix_jython.py in a
JVM without the helper jar; PY3_SETTINGS names a connection file with a Unix endpoint.
"""
import harness
from harness import raises, save_project


def p3():
    return harness.MODULES['python3']


def setup_module():
    save_project()


def test_a_call_names_transport_and_the_jar():
    e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
    assert "TRANSPORT = 'unix'" in str(e) and 'py3sidecar-gateway.jar' in str(e), e
    assert e.details.get('sent') is False, e.details


def test_self_test_names_the_missing_link_and_the_fix():
    result = p3().selfTest()
    failed = dict((c['name'], c) for c in result['checks'] if not c['ok'])
    assert 'unix link' in failed and 'py3sidecar-gateway.jar' in failed['unix link']['fix'], \
        result['report']
    assert not result['ok'] and 'FAIL unix link' in result['report'], result['report']


def teardown_module():
    p3().close()
