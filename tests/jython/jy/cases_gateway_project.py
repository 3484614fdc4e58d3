"""Jython cases: the bundle's runnable project py3sidecar-gateway (its 8.3 resources, as
sidecar/deploy/gateway_project.py writes them): the route answers from it, the health poll runs once
per gateway with the timer in two projects, python3.selfTest(), the site settings file."""
import json
import os
import tempfile

import harness
from harness import save_project

SYSTEM = harness.SYSTEM
PROJECT = os.environ['PY3_GATEWAY_PROJECT_DIR']
RUNNABLE = 'py3sidecar-gateway'


def p3():
    return harness.MODULES['python3']


def _event(folder, name):
    """The function a shipped 8.3 event file defines (def <name>(...): + tab-indented body)."""
    path = os.path.join(PROJECT, folder, name + '.py')
    ns = {}
    exec compile(open(path).read(), path, 'exec') in ns
    return ns[name]


def setup_module():
    save_project()
    SYSTEM.util.register_message_handler(
        RUNNABLE, 'py3sidecar', _event('ignition/message/py3sidecar', 'handleMessage'))


def test_route_answers_from_the_runnable_project():
    SYSTEM.util.enter_scope('designer')
    del SYSTEM.util.requests[:]
    try:
        assert SYSTEM.util.project == 'plant'  # the operator's project, a child of the library
        assert p3().call('operator:add', [2, 3]) == 5
        assert SYSTEM.util.requests == [(RUNNABLE, 'py3sidecar', 'designer')], \
            SYSTEM.util.requests
    finally:
        SYSTEM.util.enter_scope('gateway')


def test_health_poll_runs_once_with_the_timer_in_two_projects():
    poll = harness.MODULES['py3sidecar.healthpoll']
    SYSTEM.util.getGlobals().pop(poll._LEASE_KEY, None)
    timer = _event('ignition/timer/py3sidecar-healthpoll', 'handleTimerEvent')
    writes = []
    original = SYSTEM.tag.writeBlocking

    def counting(paths, values, timeout=45000):
        writes.append(SYSTEM.util.project)
        return original(paths, values, timeout)
    SYSTEM.tag.writeBlocking = counting
    clock = poll._now_ms
    try:
        for _ in range(3):  # two projects carry the timer: 3 ticks each
            for project in (RUNNABLE, 'plant'):
                SYSTEM.util.project = project
                timer()
        assert writes == [RUNNABLE] * 3, writes
        assert poll.lease_holder() == RUNNABLE
        # the holder stops polling (its project disabled): past the lease the other takes over
        later = clock() + harness.MODULES['py3sidecar.settings'].HEALTH_POLL_LEASE_MS + 1
        poll._now_ms = lambda: later
        SYSTEM.util.project = 'plant'
        timer()
        assert writes[-1] == 'plant' and poll.lease_holder() == 'plant', writes
        SYSTEM.util.project = RUNNABLE
        timer()
        assert writes[-1] == 'plant' and len(writes) == 4, writes  # now it skips
    finally:
        poll._now_ms = clock
        SYSTEM.tag.writeBlocking = original
        SYSTEM.util.project = 'plant'


def test_startup_resource_pings():
    _event('ignition/startup', 'onStartup')()  # raises nothing, connects the shared client
    assert p3().clientStatus()[0]['state'] == 'closed'


def test_self_test_from_a_gateway_script():
    result = p3().selfTest()
    names = [c['name'] for c in result['checks']]
    assert result['ok'] and result['scope'] == 'gateway', result['report']
    for name in ('jar py4j', 'jar msgpack-core', 'ping'):
        assert name in names, names
    assert 'all passed' in result['report']


def test_self_test_names_a_missing_jar_and_setting():
    # this JVM has no jeromq.jar on its class path (see test_gateway_project_jython.py)
    save_project(TRANSPORT='zmq', CONNECTION_FILE='/nonexistent/connection.json')
    try:
        result = p3().selfTest()
        failed = dict((c['name'], c) for c in result['checks'] if not c['ok'])
        assert not result['ok'], result['report']
        assert 'jar jeromq' in failed and 'lib/core/gateway' in failed['jar jeromq']['fix']
        assert 'connection file' in failed and failed['connection file']['fix']
        assert 'FAIL jar jeromq' in result['report'], result['report']
    finally:
        save_project()


def test_self_test_from_the_designer_goes_through_the_handler():
    SYSTEM.util.enter_scope('designer')
    try:
        result = p3().selfTest()
        assert result['ok'] and result['scope'] == 'designer', result['report']
        assert SYSTEM.util.requests[-1][0] == RUNNABLE
    finally:
        SYSTEM.util.enter_scope('gateway')


def test_site_settings_file_overrides_the_shipped_settings():
    settings = harness.MODULES['py3sidecar.settings']
    fd, path = tempfile.mkstemp(suffix='.json')
    os.write(fd, json.dumps({'HEALTH_TAG_FOLDER': 'SiteFolder', 'BOGUS': 1}))
    os.close(fd)
    try:
        applied, problems = settings.load_site(path)
        assert applied == path and settings.HEALTH_TAG_FOLDER == 'SiteFolder'
        assert len(problems) == 1 and 'BOGUS' in problems[0], problems
        open(path, 'w').write('{not json')
        applied, problems = settings.load_site(path)
        assert applied is None and 'cannot read' in problems[0], problems
    finally:
        os.remove(path)
        save_project()
    assert settings.HEALTH_TAG_FOLDER == 'Python3Sidecar'
