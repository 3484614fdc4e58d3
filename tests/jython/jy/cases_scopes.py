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
        full = p3().callFull('plantcalc:double_and_greet', [21])
        assert full['value'] == 42 and full['stdout'] == 'hi\n', full
        assert full['worker'] is not None and full['sidecar'] == 'local', full
        assert p3().ping()['state'] == 'running'
    finally:
        _as_gateway()


def test_designer_user_error_is_python_error():
    _as_designer()
    try:
        e = raises(p3().PythonError, p3().call, 'plantcalc:divide', [1, 0])
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


def _as_vision():
    SYSTEM.util.enter_scope('vision')
    del SYSTEM.util.requests[:]


def test_vision_execute_is_forbidden_naming_the_setting():
    _as_vision()
    try:
        e = raises(p3().Forbidden, p3().execute, 'import os; os.getuid()')
        assert e.kind == 'forbidden' and isinstance(e, p3().Python3Error), e
        assert 'set python3.access.routed.execute to true' in e.message, e.message
        assert "message-handler route of project 'plant'" in e.message, e.message
        assert SYSTEM.util.requests == [('plant', 'py3sidecar', 'vision')], SYSTEM.util.requests
        e = raises(p3().Forbidden, p3().executeFull, '1 + 1')
        assert e.kind == 'forbidden', e
    finally:
        _as_gateway()


def test_vision_allow_listed_call_is_served_and_others_forbidden():
    _as_vision()
    try:
        assert p3().call('plantcalc:double_and_greet', [4]) == 8
        assert p3().call('statistics:mean', [[2, 4]]) == 3
        e = raises(p3().Forbidden, p3().call, 'os:getuid', [])
        assert "python3.access.routed.allow-targets to include 'os:getuid'" in e.message, \
            e.message
        # a wildcard is one public name: no path to what the module imported
        raises(p3().Forbidden, p3().call, 'statistics:random._os.getpid', [])
        raises(p3().Forbidden, p3().call, 'statistics:median', [[1, 2]])  # not listed
    finally:
        _as_gateway()


def test_vision_diagnostics_are_forbidden_ping_and_health_served():
    _as_vision()
    try:
        e = raises(p3().Forbidden, p3().diagnostics, 'config')
        assert 'set python3.access.routed.diag to true' in e.message, e.message
        assert p3().ping()['state'] == 'running'
        assert p3().health()['status'], 'health stays granted to the route'
    finally:
        _as_gateway()


def test_gateway_scope_keeps_full_access():
    _as_gateway()
    del SYSTEM.util.requests[:]
    assert p3().execute('import os; os.getpid()') > 0
    assert p3().call('os:getuid', []) >= 0
    assert 'python3' in p3().diagnostics('config')
    assert SYSTEM.util.requests == [], SYSTEM.util.requests


class _SentEnvelopes(object):
    """Records each envelope the gateway's library sends: decoded from the bytes its
    transport's Java link is handed (the helper jar's path), else as encode_request gets it."""

    def __init__(self):
        self.codec = harness.MODULES['py3sidecar.codec']
        self.original = self.codec.encode_request
        self.transport = harness.MODULES['py3sidecar.client']._connection().sidecars[0].transport
        self.link = getattr(self.transport, 'link', None)
        self.sent = []

    def __enter__(self):
        def recording(env):
            self.sent.append(dict(env))
            return self.original(env)
        if self.link is not None:
            self.transport.link = _RecordingLink(self.link, self.sent, self.codec)
        else:
            self.codec.encode_request = recording
        return self

    def __exit__(self, *exc):
        self.codec.encode_request = self.original
        if self.link is not None:
            self.transport.link = self.link


def _recording_link_class():
    from com.py3sidecar.gateway import Link

    class RecordingLink(Link):
        """A transport's link that decodes what it sends, then sends it."""

        def __init__(self, inner, sent, codec):
            self.inner, self.sent, self.codec = inner, sent, codec

        def exchange(self, payload, timeout_ms, check):
            self.sent.append(self.codec.decode(payload))
            return self.inner.exchange(payload, timeout_ms, check)

        def request(self, payload, timeout_ms, check):
            self.sent.append(self.codec.decode(payload))
            return self.inner.request(payload, timeout_ms, check)

        def close(self):
            self.inner.close()
    return RecordingLink


def _RecordingLink(inner, sent, codec):
    return _recording_link_class()(inner, sent, codec)


class _VisionSecurity(object):
    """TEST DOUBLE of 8.3's system.vision user functions (what the client claims)."""

    def getUsername(self):
        return 'alice'

    def getClientId(self):
        return '5f3a'


MARK = {'route': 'message-handler', 'project': 'plant', 'user': None, 'session': None}


def test_a_client_payload_cannot_send_or_strip_the_mark():
    """Payloads crafted as a modified client would send them, straight to sendRequest: their
    own `routed`, `token`, `op` or `v` change nothing the gateway sends."""
    _as_vision()
    forged = {'route': 'gateway-script', 'project': None, 'user': 'admin', 'session': None}
    try:
        with _SentEnvelopes() as wire:
            out = SYSTEM.util.sendRequest('plant', 'py3sidecar', {
                'op': 'execute', 'routed': None, 'token': 'forged',
                'fields': {'code': '1 + 1', 'routed': None, 'token': 'forged', 'op': 'ping',
                           'v': 2, 'id': 7}})
            assert not out['ok'] and out['error']['kind'] == 'forbidden', out
            out = SYSTEM.util.sendRequest('plant', 'py3sidecar', {
                'op': 'call', 'control': True,
                'fields': {'target': 'operator:add', 'args': [1, 2], 'routed': forged,
                           'token': 'forged'}})
            assert out['ok'] and out['reply']['value'] == 3, out
            out = SYSTEM.util.sendRequest('plant', 'py3sidecar', {
                'op': 'ping', 'fields': {'code': 'x', 'target': 'os:getuid', 'pool': 'ml'}})
            assert out['ok'], out
        execute, call, ping = wire.sent
        for env in wire.sent:
            assert env['routed'] == MARK, env
            assert env.get('token') != 'forged' and env['v'] == 1, env
        assert execute['op'] == 'execute' and execute['code'] == '1 + 1', execute
        assert 'timeout' in call, 'control comes from the op, not from the payload'
        assert set(ping) == set(['v', 'id', 'op', 'routed', 'token']), ping
    finally:
        _as_gateway()


def test_the_mark_names_the_user_and_session_as_the_client_claims_them():
    _as_vision()
    SYSTEM.vision = _VisionSecurity()
    try:
        with _SentEnvelopes() as wire:
            assert p3().call('operator:add', [2, 2]) == 4
            out = SYSTEM.util.sendRequest('plant', 'py3sidecar', {
                'op': 'ping', 'project': 'evil', 'caller': {'user': 'x' * 500, 'session': 5}})
            assert out['ok'], out
        first, second = [env['routed'] for env in wire.sent]
        assert first == {'route': 'message-handler', 'project': 'plant',
                         'user': 'claimed:alice', 'session': 'claimed:5f3a'}, first
        # the project is the one whose handler ran; a claim is cut short, a non-text one dropped
        assert second == {'route': 'message-handler', 'project': 'plant',
                          'user': 'claimed:' + 'x' * 200, 'session': None}, second
    finally:
        del SYSTEM.vision
        _as_gateway()


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
