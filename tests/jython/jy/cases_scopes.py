"""Jython cases: python3.* from the Designer / Script Console / Vision client scope, routed
through the gateway message handler the bundle ships, and the bundle's gateway timer resource.

The double's system.util.sendRequest runs the handler on another thread in gateway scope (see
ignition_double._Util); the handler's body is read from the shipped file, not re-typed here.
"""
import json
import os
import threading

import java.util

import harness
from harness import raises, save_project

SYSTEM = harness.SYSTEM
EVENTS = os.environ['PY3_GATEWAY_EVENTS']
TIMER = os.environ['PY3_TIMER_RESOURCE']


def p3():
    return harness.MODULES['python3']


def _function_from(path, name, args):
    """The body of a shipped gateway-event file, as Ignition wraps it: def name(args): body."""
    lines = [l for l in open(path).read().splitlines() if not l.lstrip().startswith('#')]
    src = 'def %s(%s):\n%s\n' % (name, args, '\n'.join('\t' + l for l in lines if l.strip()))
    ns = {}
    exec compile(src, path, 'exec') in ns
    return ns[name]


def setup_module():
    save_project()
    handler = _function_from(os.path.join(EVENTS, 'message-handler-py3sidecar.py'),
                             'handleMessage', 'payload')
    SYSTEM.util.register_message_handler('plant', 'py3sidecar', handler)


def _as_designer():
    SYSTEM.util.enter_scope('designer')
    del SYSTEM.util.requests[:]


def _as_gateway():
    SYSTEM.util.enter_scope('gateway')


def test_designer_call_goes_through_the_message_handler():
    _as_designer()
    try:
        assert p3().call('statistics:mean', [[1, 2, 3]]) == 2
        assert SYSTEM.util.requests == [('plant', 'py3sidecar', 'designer')], \
            SYSTEM.util.requests
        assert SYSTEM.util.last_handler_thread == 'gateway-message-handler'
        full = p3().executeFull('print("hi")\nx * 2', {'x': 21})
        assert full['value'] == 42 and full['stdout'] == 'hi\n', full
        assert full['worker'] is not None and full['sidecar'] == 'local', full
        assert p3().ping()['state'] == 'running'
    finally:
        _as_gateway()


def test_designer_user_error_is_python_error():
    _as_designer()
    try:
        e = raises(p3().PythonError, p3().execute, '1/0')
        assert e.remoteType == 'ZeroDivisionError', e.remoteType
        assert 'ZeroDivisionError' in e.traceback and 'division' in e.message, e.traceback
        assert isinstance(e, p3().Python3Error) and e.kind == 'user'
    finally:
        _as_gateway()


def test_designer_timeout_is_timeout():
    _as_designer()
    try:
        e = raises(p3().Timeout, p3().call, 'time:sleep', [10], timeout=300)
        assert 'timed out' in str(e), e
        assert p3().call('operator:add', [1, 2]) == 3  # the pool serves on
    finally:
        _as_gateway()


def test_designer_bad_request_keeps_its_kind():
    _as_designer()
    try:
        e = raises(p3().BadRequest, p3().call, 'no module here', [])
        assert e.kind == 'bad_request', e
    finally:
        _as_gateway()


def test_designer_async_call():
    _as_designer()
    try:
        got, done = [], threading.Event()

        def ok(value):
            got.append(value)
            done.set()

        def bad(error):
            got.append(error)
            done.set()
        p3().callAsync('operator:mul', [6, 7], onSuccess=ok, onError=bad)
        assert done.wait(20) and got == [42], got
        assert ('plant', 'py3sidecar', 'designer') in [
            (p, h, 'designer') for p, h, _ in SYSTEM.util.requests], SYSTEM.util.requests
    finally:
        _as_gateway()


def test_missing_handler_is_unavailable_with_advice():
    _as_designer()
    SYSTEM.util.project = 'other'
    try:
        e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
        assert 'INSTALL.txt' in e.message and "'other'" in e.message, e.message
    finally:
        SYSTEM.util.project = 'plant'
        _as_gateway()


def test_gateway_scope_calls_directly():
    _as_gateway()
    del SYSTEM.util.requests[:]
    assert p3().call('operator:add', [2, 3]) == 5
    assert SYSTEM.util.requests == [], SYSTEM.util.requests


def test_timer_resource_runs_the_health_poll():
    meta = json.loads(open(os.path.join(TIMER, 'resource.json')).read())
    attrs = meta['attributes']
    assert meta['scope'] == 'G' and meta['files'] == ['handleTimerEvent.py'], meta
    assert attrs['delay'] == 10000 and attrs['fixedDelay'] is True, attrs
    assert attrs['sharedThread'] is False and attrs['enabled'] is True, attrs
    ns = {}
    path = os.path.join(TIMER, 'handleTimerEvent.py')
    exec compile(open(path).read(), path, 'exec') in ns
    ns['handleTimerEvent']()
    folder = '[%s]%s' % (harness.MODULES['py3sidecar.settings'].HEALTH_TAG_PROVIDER,
                         harness.MODULES['py3sidecar.settings'].HEALTH_TAG_FOLDER)
    tags = dict((p[len(folder) + 1:], v) for p, v in SYSTEM.tag.values.items()
                if p.startswith(folder + '/'))
    assert tags.get('Reachable') is True, tags
    assert isinstance(tags['LastPoll'], java.util.Date)
