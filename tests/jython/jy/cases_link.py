"""Link cases: the python3 library over ZeroMQ (PLAIN, the default) against a scripted peer (wrong
and null reply ids), and through a proxy that resets the connection in the middle of a reply
(PLAIN with and without failover; JeroMQ, ZMQ_MECHANISM 'null', with failover).

Run by test_link_jython.py, which serves the CTL requests (the peer's mode and the identities
of the sockets it saw; the proxy's reset). Every wait has a deadline; nothing sleeps to
synchronise.
"""
import time

import harness
from harness import ctl, raises, save_project

INFO = {}
TIMEOUT_MS = 6000
GRACE_MS = 1000
SLACK_S = 1.5  # scheduling on a loaded 2-core machine: a bound, not a speed figure


def p3():
    return harness.MODULES['python3']


def setup_module():
    INFO.update(ctl(cmd='info'))


def at_peer(**overrides):
    settings = dict(TRANSPORT='zmq', CONNECTION_FILE=None, ZMQ_ENDPOINT=INFO['peer_endpoint'],
                    TOKEN='peer-token', TOKEN_FILE=None, DEFAULT_TIMEOUT_MS=2000,
                    CLIENT_GRACE_MS=500, CONNECT_TIMEOUT_MS=1000, BREAKER_FAILURE_THRESHOLD=100,
                    FAILOVER_SIDECARS=[])
    settings.update(overrides)
    save_project(**settings)


def _sockets_since(seen):
    return ctl(cmd='identities')[seen:]


def _mismatch_is_a_link_error(mode, pure=False):
    at_peer()
    if pure:
        harness.pure_jython()  # as on a gateway without the helper jar
    ctl(cmd='mode', mode='ok')
    assert p3().execute('1') == 'fake'
    seen = len(ctl(cmd='identities'))
    ctl(cmd='mode', mode=mode)
    e = raises(p3().Unavailable, p3().execute, '1')
    assert e.details.get('sent') is True, e.details
    assert 'reply' in str(e) and 'id' in str(e), e
    ctl(cmd='mode', mode='ok')
    assert p3().execute('2') == 'fake'
    first, second = _sockets_since(seen - 1)[-2:]
    assert first != second, 'the socket that got the wrong reply was pooled and used again'
    return e


def test_a_reply_with_another_id_is_a_link_error_and_its_socket_is_dropped():
    e = _mismatch_is_a_link_error('wrong')
    assert 'another call' in str(e), e


def test_a_success_with_a_null_id_is_a_link_error_and_its_socket_is_dropped():
    _mismatch_is_a_link_error('null')


def test_a_mismatch_is_the_same_error_with_and_without_the_helper_jars_path():
    import re
    for mode in ('wrong', 'null'):
        with_jar = _mismatch_is_a_link_error(mode)
        without = _mismatch_is_a_link_error(mode, pure=True)
        texts = [re.sub(r'\d+L?', 'N', str(e)) for e in (with_jar, without)]
        assert texts[0] == texts[1], texts
        assert with_jar.details == without.details, (with_jar.details, without.details)
    save_project()


def test_a_failure_with_a_null_id_is_still_the_sidecars_answer():
    # A sidecar that could not read a request answers with id null (docs/protocol.md).
    at_peer()
    ctl(cmd='mode', mode='ok')
    assert p3().execute('1') == 'fake'
    seen = len(ctl(cmd='identities'))
    ctl(cmd='mode', mode='null-error')
    e = raises(p3().BadRequest, p3().execute, '1')
    assert 'unreadable' in str(e), e
    ctl(cmd='mode', mode='ok')
    assert p3().execute('2') == 'fake'
    ids = _sockets_since(seen - 1)
    assert len(set(ids)) == 1, ('an answered socket is kept', ids)


def _reset_mid_reply_ends_at_once(which, failover, expr, **overrides):
    """A call whose reply the proxy `which` cuts in half, then resets: Unavailable at once."""
    backup = {'NAME': 'backup', 'ZMQ_ENDPOINT': INFO['nobody_endpoint'], 'TOKEN': 'unused'}
    settings = dict(DEFAULT_TIMEOUT_MS=TIMEOUT_MS, CLIENT_GRACE_MS=GRACE_MS,
                    CONNECT_TIMEOUT_MS=300, BREAKER_OPEN_MS=1000,
                    FAILOVER_SIDECARS=[backup] if failover else [])
    settings.update(overrides)
    at_peer(**settings)
    first = p3().execute(expr)  # pools the connection whose reply is cut below
    ctl(cmd='reset-reply', which=which)
    t0 = time.time()
    try:
        e = raises(p3().Python3Error, p3().execute, expr)
    finally:
        resets = ctl(cmd='heal', which=which)
    took = time.time() - t0
    ctl(cmd='figure', name='seconds_to_unavailable_after_reset_mid_reply_%s_%s'
        % (which, 'failover' if failover else 'alone'), value=round(took, 3))
    assert resets == 1, 'the proxy did not cut the reply'
    assert isinstance(e, p3().Unavailable), (type(e).__name__, str(e))
    if failover:
        assert 'lost' in ' '.join(e.details.get('failover') or []), e.details
    else:
        assert e.details.get('sent') is True and 'lost' in str(e), (e.details, str(e))
    # At once: the reset (JeroMQ: at most the link check, PROBE_AFTER_MS), then the backup's
    # 300 ms connect timeout; far from the 7 s the call would otherwise wait.
    assert took < 0.5 + 0.3 + SLACK_S, took
    return first


def _answered_again(call):
    # The link is used again once it is back (its breaker may be open: wait).
    deadline = time.time() + 10
    while True:
        try:
            if call():
                return
        except p3().Unavailable:
            pass
        assert time.time() < deadline, p3().clientStatus()


def test_with_failover_a_reset_mid_reply_ends_at_once():
    # The default transport: ZMTP/3.0 PLAIN through the helper jar's dealer, a real sidecar.
    assert _reset_mid_reply_ends_at_once(
        'sidecar', True, "'x' * 200", ZMQ_ENDPOINT=INFO['proxy_endpoint'], TOKEN=None,
        TOKEN_FILE=INFO['token_file']) == 'x' * 200
    _answered_again(lambda: p3().callFull('operator:add', [20, 22])['sidecar'] == 'local')


def test_without_failover_a_reset_mid_reply_ends_at_once():
    assert _reset_mid_reply_ends_at_once(
        'sidecar', False, "'x' * 200", ZMQ_ENDPOINT=INFO['proxy_endpoint'], TOKEN=None,
        TOKEN_FILE=INFO['token_file']) == 'x' * 200
    assert p3().execute('6 * 7') == 42


def test_jeromq_with_failover_a_reset_mid_reply_ends_at_once():
    # JeroMQ (ZMQ_MECHANISM 'null') against a NULL-mechanism peer: its link-check pings.
    assert _reset_mid_reply_ends_at_once(
        'null', True, '1', ZMQ_ENDPOINT=INFO['null_proxy_endpoint'], ZMQ_MECHANISM='null',
        TOKEN='unused') == 'fake' * 50
    _answered_again(lambda: p3().execute('1') == 'fake' * 50)  # the backup is nobody


def test_jeromq_with_failover_a_silent_link_ends_at_the_link_check():
    # The link-check pings: the peer vanishes (half-open, nothing is ever answered or closed),
    # so only an unanswered ping (PROBE_AFTER_MS, then CONNECT_TIMEOUT_MS) can tell.
    backup = {'NAME': 'backup', 'ZMQ_ENDPOINT': INFO['nobody_endpoint'], 'TOKEN': 'unused'}
    at_peer(ZMQ_ENDPOINT=INFO['null_proxy_endpoint'], ZMQ_MECHANISM='null', TOKEN='unused',
            DEFAULT_TIMEOUT_MS=TIMEOUT_MS, CLIENT_GRACE_MS=GRACE_MS, CONNECT_TIMEOUT_MS=300,
            BREAKER_OPEN_MS=1000, FAILOVER_SIDECARS=[backup])
    assert p3().execute('1') == 'fake' * 50
    ctl(cmd='half-open', which='null')
    t0 = time.time()
    try:
        e = raises(p3().Python3Error, p3().execute, '1')
    finally:
        ctl(cmd='heal', which='null')
    took = time.time() - t0
    ctl(cmd='figure', name='seconds_to_unavailable_on_a_silent_link_jeromq', value=round(took, 3))
    assert isinstance(e, p3().Unavailable), (type(e).__name__, str(e))
    assert 'link check' in ' '.join(e.details.get('failover') or []), e.details
    assert 0.5 <= took < 0.5 + 0.3 + SLACK_S, took
    _answered_again(lambda: p3().execute('1') == 'fake' * 50)  # on a new connection


def test_with_failover_a_long_call_on_a_sound_link_is_answered():
    # The link checks (a ping after 500 ms, then every second) must not disturb the call: its
    # reply, even one that arrives while a ping is out, is the call's.
    backup = {'NAME': 'backup', 'ZMQ_ENDPOINT': INFO['nobody_endpoint'], 'TOKEN': 'unused'}
    at_peer(ZMQ_ENDPOINT=INFO['proxy_endpoint'], TOKEN=None, TOKEN_FILE=INFO['token_file'],
            DEFAULT_TIMEOUT_MS=TIMEOUT_MS, CLIENT_GRACE_MS=GRACE_MS, CONNECT_TIMEOUT_MS=1000,
            FAILOVER_SIDECARS=[backup])
    for seconds in (0.6, 1.55, 2.5):
        r = p3().callFull('time:sleep', [seconds])
        assert r['sidecar'] == 'local' and r['value'] is None, r


def teardown_module():
    p3().close()
