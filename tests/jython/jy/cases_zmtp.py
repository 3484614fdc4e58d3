"""ZeroMQ from Jython against the sidecar's authenticated front (bridge/zmq_auth.py): JeroMQ
0.3.6 (ZMTP/2.0, no mechanism) gets nothing; the library's ZMTP/3.0 PLAIN transport (the helper
jar's ZmtpPlainDealer) is served; a CURVE sidecar is a clear error naming the setting.

Run by test_zmtp_jython.py; INFO (PY3_ZMTP_INFO) names a PLAIN sidecar and a CURVE one.
"""
import json
import os
import time

import java.io

import harness
from harness import raises, save_project

INFO = json.loads(os.environ['PY3_ZMTP_INFO'])
PLAIN, CURVE = INFO['plain'], INFO['curve']


def p3():
    return harness.MODULES['python3']


def transport():
    return harness.MODULES['py3sidecar.transport']


def zmtp():
    return harness.MODULES['py3sidecar.zmtp']


def _token(sidecar):
    f = open(sidecar['token_file'])
    try:
        return f.read().strip()
    finally:
        f.close()


def _ping_bytes(token):
    codec = harness.MODULES['py3sidecar.codec']
    return codec.encode_request({'v': 1, 'id': 7, 'token': token, 'op': 'ping'})


def test_jeromq_null_peer_gets_nothing_from_a_plain_router():
    from org.zeromq import ZMQ
    ctx = ZMQ.context(1)
    s = ctx.socket(ZMQ.DEALER)
    s.setLinger(0)
    s.setReceiveTimeOut(700)
    try:
        s.connect(PLAIN['endpoint'])
        s.send(_ping_bytes(_token(PLAIN)), ZMQ.DONTWAIT)  # even with the right token inside
        assert s.recv(0) is None, 'a ZMTP/2.0 peer of a PLAIN front got a reply'
    finally:
        s.close()
        ctx.term()


def test_plain_transport_is_served_small_and_large():
    save_project(TRANSPORT='zmq', CONNECTION_FILE=PLAIN['connection_file'])
    try:
        assert p3().call('operator:add', [1, 2]) == 3
        big = u'x' * (3 << 20)  # long frames both ways
        assert p3().call('builtins:len', [big]) == len(big)
        assert p3().execute('s * 2', {'s': u'ab' * 200}) == u'ab' * 400
    finally:
        save_project()


def test_plain_wrong_token_is_refused_at_the_handshake():
    t = transport()
    tr = zmtp().PlainZmqTransport(PLAIN['endpoint'], 'wrong-token', 2000)
    try:
        t0 = time.time()
        e = raises(t.AuthFailed, tr.request, _ping_bytes('wrong-token'), 2000)
        assert time.time() - t0 < 1.5
        assert 'refused the token' in str(e), e
    finally:
        tr.close()
    save_project(TRANSPORT='zmq', CONNECTION_FILE=PLAIN['connection_file'], TOKEN='wrong')
    try:
        e = raises(p3().Unauthorized, p3().call, 'operator:add', [1, 2])
        assert 'token' in str(e), e
    finally:
        save_project()


def _idle_connection_replaced(java_pool):
    tr = zmtp().PlainZmqTransport(PLAIN['endpoint'], _token(PLAIN), 2000)
    assert (tr.link is not None) is True  # this jar has the Java pool (ZmtpPool)
    if not java_pool:
        tr.link = None  # the Jython pool (an older helper jar without ZmtpPool)
    peek = tr.link.idlePeek if java_pool else tr._idle.peek
    try:
        assert tr.request(_ping_bytes(_token(PLAIN)), 2000) is not None
        idle = peek()
        idle.close()  # as if the sidecar had closed it while it sat in the pool
        assert not idle.isOpen()
        assert tr.request(_ping_bytes(_token(PLAIN)), 2000) is not None
        assert peek() is not None and peek() is not idle
    finally:
        tr.close()


def test_idle_connection_the_sidecar_closed_is_replaced():
    _idle_connection_replaced(java_pool=True)


def test_idle_connection_the_sidecar_closed_is_replaced_by_the_jython_pool():
    _idle_connection_replaced(java_pool=False)


def test_jeromq_transport_against_a_plain_front_is_never_served():
    save_project(TRANSPORT='zmq', CONNECTION_FILE=PLAIN['connection_file'], ZMQ_MECHANISM='null',
                 CONNECT_TIMEOUT_MS=300, DEFAULT_TIMEOUT_MS=300, CLIENT_GRACE_MS=200)
    try:
        e = raises(p3().Python3Error, p3().call, 'operator:add', [1, 2])
        assert isinstance(e, (p3().Timeout, p3().Unavailable)), e
    finally:
        save_project()


def test_curve_sidecar_over_zmq_names_the_setting():
    save_project(TRANSPORT='zmq', CONNECTION_FILE=CURVE['connection_file'])
    try:
        e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
        assert 'python3.bridge.zmq.curve.enabled' in str(e) and 'py4j' in str(e), e
    finally:
        save_project()


def test_dealer_against_a_jeromq_router_is_a_protocol_mismatch():
    from org.zeromq import ZMQ
    from com.py3sidecar.gateway import ZmtpPlainDealer
    ctx = ZMQ.context(1)
    router = ctx.socket(ZMQ.ROUTER)
    router.setLinger(0)
    port = router.bindToRandomPort('tcp://127.0.0.1')
    try:
        e = raises(java.io.IOException, ZmtpPlainDealer, '127.0.0.1', port, 'py3sidecar', 't',
                   1000, 1 << 20)
        assert 'ZMTP/2.0 without security' in str(e), e
    finally:
        router.close()
        ctx.term()
