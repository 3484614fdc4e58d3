"""A Windows gateway served by sidecars on Linux hosts: the python3 library configured only by
its site settings file (PY3SIDECAR_SITE_SETTINGS), as INSTALL.txt section I says, against two
sidecars listening beyond loopback with Py4J over TLS (linux1 = the "local" entry, linux2 =
FAILOVER_SIDECARS[0]), reached at localhost/127.0.0.1.

Run by test_windows_gateway_jython.py, which serves the CTL requests (info, stop/start linux1).
Every wait has a deadline; nothing sleeps to synchronise (one case sleeps past the
transport's STALE_AFTER_MS: its scenario is a host that has been down a while).
"""
import time

import java.lang
from javax.net.ssl import SSLSocket

import harness
from harness import SYSTEM, ctl, raises, save_project

INFO = {}
FOLDER = '[default]Python3Sidecar'


def p3():
    return harness.MODULES['python3']


def settings():
    return harness.MODULES['py3sidecar.settings']


def poll():
    return harness.MODULES['py3sidecar.healthpoll']


def status():
    return dict((s['name'], s) for s in p3().clientStatus())


def tags():
    return dict((p[len(FOLDER) + 1:], v) for p, v in SYSTEM.tag.values.items()
                if p.startswith(FOLDER + '/'))


def served_by():
    r = p3().callFull('operator:add', [20, 22])
    assert r['value'] == 42, r
    return r['sidecar']


def elapsed_ms(t0):
    return (java.lang.System.nanoTime() - t0) / 1000000.0


def setup_module():
    INFO.update(ctl(cmd='info'))
    save_project()  # the site file only (PY3_SETTINGS is empty)


def test_the_site_file_is_all_the_configuration():
    s = settings()
    assert s.SITE_SETTINGS_FILE == INFO['site'], s.SITE_SETTINGS_FILE
    assert s.SITE_LOADED == INFO['site'] and s.SITE_PROBLEMS == [], (s.SITE_LOADED,
                                                                    s.SITE_PROBLEMS)
    assert s.CONNECTION_FILE is None and s.TOKEN_FILE is None, (s.CONNECTION_FILE, s.TOKEN_FILE)
    assert s.PY4J_HOST == 'localhost' and s.TOKEN and s.PY4J_TLS_CERT, s.get()
    assert [f['NAME'] for f in s.FAILOVER_SIDECARS] == ['linux2'], s.FAILOVER_SIDECARS


def test_where_a_windows_gateway_looks_for_the_site_file():
    f = settings().site_settings_file
    assert f({}, 'Windows Server 2022') == 'C:\\ProgramData\\py3sidecar\\ignition-site.json'
    assert f({'ProgramData': 'D:\\PD\\'}, 'Windows 11') == 'D:\\PD\\py3sidecar\\ignition-site.json'
    assert f({}, 'Linux') == '/etc/py3sidecar/ignition-site.json'
    assert f({'PY3SIDECAR_SITE_SETTINGS': 'E:\\site.json'}, 'Windows 10') == 'E:\\site.json'


def test_a_call_is_served_over_tls_by_the_first_linux_host():
    assert served_by() == 'local'
    sc = harness.MODULES['py3sidecar.client']._connection().sidecars[0]
    assert sc.address == 'localhost:%d' % settings().PY4J_PYTHON_PORT, sc.address
    sock = sc.transport._client.getPerThreadConnection().getSocket()
    assert isinstance(sock, SSLSocket), sock
    assert sock.getSession().getProtocol() in ('TLSv1.3', 'TLSv1.2'), sock.getSession()
    st = status()
    assert st['local']['active'] and st['linux2']['state'] == 'closed', st


def test_an_untrusted_certificate_is_unavailable_naming_PY4J_TLS_CERT():
    save_project(PY4J_TLS_CERT=INFO['other_ca'], FAILOVER_SIDECARS=[])
    try:
        e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
        assert 'PY4J_TLS_CERT' in str(e) and 'TLS handshake' in str(e), str(e)
    finally:
        save_project()


def test_a_plain_connection_to_the_tls_front_is_unavailable_naming_PY4J_TLS_CERT():
    save_project(PY4J_TLS_CERT=None, FAILOVER_SIDECARS=[])
    try:
        e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
        assert 'PY4J_TLS_CERT' in str(e), str(e)
    finally:
        save_project()


def test_the_jython_library_refuses_the_curve_front_with_advice():
    save_project(TRANSPORT='zmq', ZMQ_ENDPOINT=INFO['zmq_endpoint'], ZMQ_MECHANISM='curve',
                 FAILOVER_SIDECARS=[])
    try:
        e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
        assert 'CURVE' in str(e) and 'py4j' in str(e), str(e)
    finally:
        save_project()


def test_the_linux_host_down_is_unavailable_within_the_connect_timeout():
    """No failover entry: the call fails with Unavailable, no later than CONNECT_TIMEOUT_MS
    (plus the load's slack); then the breaker skips the host without touching the network; the
    health poll writes UNREACHABLE and does not raise.

    The host has been down longer than the transport's STALE_AFTER_MS, so this thread's socket
    is pinged before the request goes out and the request is never sent (sent False). A call
    within STALE_AFTER_MS of the last success rides the old socket and is honestly reported
    'may or may not have run' (sent True): that is the link-lost case, not a host that is down."""
    save_project(FAILOVER_SIDECARS=[])
    assert served_by() == 'local'
    ctl(cmd='stop')
    # not a synchronisation: the scenario's precondition (the host down for a while)
    time.sleep(harness.MODULES['py3sidecar.transport'].STALE_AFTER_MS / 1000.0 + 0.05)
    try:
        t0 = java.lang.System.nanoTime()
        e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
        took = elapsed_ms(t0)
        limit = settings().CONNECT_TIMEOUT_MS + 1500
        assert took < limit, (took, limit, str(e))
        assert e.details.get('sidecar') == 'local' and e.details.get('sent') is False, e.details
        assert status()['local']['state'] == 'open', status()
        t0 = java.lang.System.nanoTime()
        e = raises(p3().Unavailable, p3().call, 'operator:add', [1, 2])
        assert 'client circuit breaker' in str(e) and elapsed_ms(t0) < 500, str(e)
        values = poll().run()  # never raises
        assert values['Status'] == 'UNREACHABLE' and values['Reachable'] is False, values
        t = tags()
        assert t['Status'] == 'UNREACHABLE' and t['Reachable'] is False and t['LastError'], t
        assert t['ActiveSidecar'] == '' and 'local=open' in t['Sidecars'], t
    finally:
        ctl(cmd='start')


def test_failover_to_the_second_linux_host_and_back():
    """With FAILOVER_SIDECARS (the site file's linux2, also TLS), linux1 down: calls are served
    by linux2 and the tags say so. linux1 up again: a remote gateway has no connection file to
    see it restart, so traffic returns at the first call past its breaker's BREAKER_OPEN_MS
    (one probe call), not before."""
    save_project()
    open_ms = settings().BREAKER_OPEN_MS
    assert served_by() == 'local'
    ctl(cmd='stop')
    stopped = time.time()
    try:
        assert served_by() == 'linux2', status()
        st = status()
        assert st['local']['state'] == 'open' and st['linux2']['active'], st
        values = poll().run()
        assert values['ActiveSidecar'] == 'linux2' and values['Reachable'] is True, values
        assert values['Status'] != 'UNREACHABLE', values
        t = tags()
        assert 'local=open' in t['Sidecars'] and 'linux2=closed' in t['Sidecars'], t
    finally:
        ctl(cmd='start')
    deadline = time.time() + open_ms / 1000.0 + 15
    while True:
        who = served_by()
        if who == 'local':
            break
        assert time.time() < deadline, 'traffic never returned to linux1: %s' % status()
    back = time.time() - stopped
    assert back >= open_ms / 1000.0 * 0.95, back
    st = status()
    assert st['local']['state'] == 'closed' and st['local']['active'], st
    assert poll().run()['ActiveSidecar'] == 'local'


def teardown_module():
    p3().close()
