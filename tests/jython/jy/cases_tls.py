"""Py4J over TLS from the python3 library: a real sidecar whose Py4J front serves TLS only
(python3.bridge.py4j.tls) and, for the figures, a plain one beside it.

Run by test_tls_jython.py, which serves the CTL requests (info, figure). Every wait has a
deadline; nothing sleeps to synchronise.
"""
import time

import java.lang
import java.net
from javax.net.ssl import SSLHandshakeException, SSLSocket

import harness
from harness import ctl, raises, save_project

INFO = {}


def p3():
    return harness.MODULES['python3']


def transport():
    return harness.MODULES['py3sidecar.client']._connection().sidecars[0].transport


def setup_module():
    INFO.update(ctl(cmd='info'))


def tls_by_file(**overrides):
    settings = dict(TRANSPORT='py4j', CONNECTION_FILE=INFO['tls']['connection_file'])
    settings.update(overrides)
    save_project(**settings)


def test_a_call_goes_over_tls_found_through_the_connection_file():
    tls_by_file()
    assert p3().call('operator:add', [1, 2]) == 3
    tr = transport()
    assert tr.tls_cert == INFO['tls']['cert'], tr.tls_cert
    sock = tr._client.getPerThreadConnection().getSocket()
    assert isinstance(sock, SSLSocket), sock
    assert sock.getSession().getProtocol() in ('TLSv1.3', 'TLSv1.2'), sock.getSession()
    # many threads, each its own TLS socket
    results = []
    def worker():
        results.append(p3().call('operator:mul', [6, 7]))
    threads = [java.lang.Thread(worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20000)
    assert results == [42] * 4, results


def test_a_certificate_set_by_hand_and_localhost_as_the_host():
    save_project(TRANSPORT='py4j', CONNECTION_FILE=None, PY4J_HOST='localhost',
                 PY4J_PYTHON_PORT=INFO['tls']['py4j_port'], TOKEN_FILE=INFO['tls']['token_file'],
                 PY4J_TLS_CERT=INFO['tls']['ca'])
    assert p3().call('operator:add', [2, 3]) == 5


def test_an_untrusted_certificate_is_unavailable_and_says_which_setting():
    tls_by_file(PY4J_TLS_CERT=INFO['tls']['other_ca'])
    e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
    assert 'PY4J_TLS_CERT' in str(e) and 'TLS handshake' in str(e), str(e)


def test_the_hostname_is_verified():
    tr_mod = harness.MODULES['py3sidecar.transport']
    factory = tr_mod.tls_socket_factory(INFO['tls']['ca'], 'wrong.example', 3000)
    try:
        factory.createSocket(java.net.InetAddress.getByName('127.0.0.1'),
                             INFO['tls']['py4j_port'])
    except SSLHandshakeException, e:
        assert 'wrong.example' in str(e.getMessage()) or 'subject' in str(e.getMessage()), e
    else:
        raise AssertionError('a certificate without wrong.example was accepted')


def test_a_plain_library_gets_nothing_from_the_tls_front():
    save_project(TRANSPORT='py4j', CONNECTION_FILE=None,
                 PY4J_PYTHON_PORT=INFO['tls']['py4j_port'], TOKEN_FILE=INFO['tls']['token_file'],
                 CONNECT_TIMEOUT_MS=1000, DEFAULT_TIMEOUT_MS=2000, CLIENT_GRACE_MS=500)
    e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
    assert 'sidecar' in str(e), str(e)


def test_the_connection_file_says_tls_but_no_certificate_is_known():
    # a copy of the TLS sidecar's connection file without its certificate's path
    tls_by_file(CONNECTION_FILE=INFO['tls']['file_without_cert'])
    e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
    assert 'PY4J_TLS_CERT' in str(e), str(e)


def _median_us(n):
    samples = []
    for _ in range(n):
        t0 = java.lang.System.nanoTime()
        p3().call('operator:add', [1, 2])
        samples.append((java.lang.System.nanoTime() - t0) / 1000.0)
    samples.sort()
    return samples[len(samples) // 2]


def test_what_tls_costs_a_trivial_call():
    """Figures only (reported, never asserted as a time): plain vs TLS, same JVM, same run."""
    rounds = {'plain': [], 'tls': []}
    for _ in range(3):  # interleaved, so a load change on the machine hits both
        for name in ('plain', 'tls'):
            save_project(TRANSPORT='py4j', CONNECTION_FILE=INFO[name]['connection_file'])
            _median_us(200)  # warm-up (JIT, sockets)
            rounds[name].append(_median_us(1000))
    plain, tls = min(rounds['plain']), min(rounds['tls'])
    ctl(cmd='figure', name='jython_py4j_plain_median_us', value=round(plain, 1))
    ctl(cmd='figure', name='jython_py4j_tls_median_us', value=round(tls, 1))
    ctl(cmd='figure', name='jython_py4j_tls_ratio', value=round(tls / plain, 2))
