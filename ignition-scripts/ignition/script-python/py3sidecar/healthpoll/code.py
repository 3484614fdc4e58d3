"""py3sidecar.healthpoll - the gateway timer script that shows the sidecar's health as tags.

Install: Gateway Events > Timer > add a script, delay 10000 ms (fixed delay, dedicated thread),
body:

    py3sidecar.healthpoll.run()

Every run calls python3.health() and writes memory tags under
[HEALTH_TAG_PROVIDER]HEALTH_TAG_FOLDER (py3sidecar.settings), creating them when missing:

    Status            HEALTHY / DEGRADED / UNHEALTHY / ... or UNREACHABLE
    Reason            why (the sidecar's reason, or the error when unreachable)
    Reachable         True when the sidecar answered
    WorkersTotal      live workers          WorkersHealthy   workers whose status is HEALTHY
    WorkersBusy       busy workers          QueueLength      calls waiting for a worker
    BreakerState      the primary circuit breaker's state (closed / open / half_open ...)
    Pools             every pool of the sidecar, the primary first, e.g.
                      'primary=HEALTHY 2/2 ml=DEGRADED 1/2 cluster=HEALTHY dask:3'
    LastError         the last failure the sidecar recorded (or the last poll error)
    ActiveSidecar     the sidecar that answered ('local', or the NAME of a FAILOVER_SIDECARS
                      entry when the local one is down); '' when none answered
    Sidecars          every sidecar's client circuit breaker, e.g. 'local=open(1500ms) backup=closed'
    AlertLevel        the worst level among the sidecar's open alerts: OK / INFO / WARNING /
                      CRITICAL ('' when unreachable)
    AlertsActive      how many alert conditions are open     LastAlert   'LEVEL title' of the last
    CallsPerSecond    calls answered per second over the last minute or two
    LatencyP50Ms      median call duration (ms) over the same window (0 without calls)
    LatencyP99Ms      99th percentile call duration (ms) over the same window
    LastPoll          java.util.Date of this run

It never raises out of the timer: any failure is logged through system.util.getLogger and
reported as Status UNREACHABLE.

Once per gateway: the timer lives in the runnable project py3sidecar-gateway, but a project that
inherits the library may carry it too (an 8.1 copy pasted into a second project, say). The first
project to poll takes a lease kept in system.util.getGlobals() (one per JVM); while it renews it,
every other project's timer returns at once (run() -> None) and writes nothing. When the holder
stops polling (its project disabled or deleted), the lease lapses after HEALTH_POLL_LEASE_MS and
the next timer takes it over.
"""
import java.lang
import java.util
from java.util.concurrent.locks import ReentrantLock

TAGS = [
    ('Status', 'String', ''),
    ('Reason', 'String', ''),
    ('Reachable', 'Boolean', False),
    ('WorkersTotal', 'Int4', 0),
    ('WorkersHealthy', 'Int4', 0),
    ('WorkersBusy', 'Int4', 0),
    ('QueueLength', 'Int4', 0),
    ('BreakerState', 'String', ''),
    ('Pools', 'String', ''),
    ('LastError', 'String', ''),
    ('ActiveSidecar', 'String', ''),
    ('Sidecars', 'String', ''),
    ('AlertLevel', 'String', ''),
    ('AlertsActive', 'Int4', 0),
    ('LastAlert', 'String', ''),
    ('CallsPerSecond', 'Float8', 0.0),
    ('LatencyP50Ms', 'Float8', 0.0),
    ('LatencyP99Ms', 'Float8', 0.0),
    ('LastPoll', 'DateTime', None),
]

UNREACHABLE = 'UNREACHABLE'

_LEASE_KEY = 'py3sidecar.healthpoll.lease'   # (project, expires at ms): plain values only
_LOCK_KEY = 'py3sidecar.healthpoll.lock'     # a Java lock: no project class pinned by globals


def _now_ms():
    return java.lang.System.currentTimeMillis()


def _this_project():
    try:
        return system.util.getProjectName() or '?'  # noqa: F821
    except Exception:
        return '?'


def lease_holder():
    """The project whose timer polls (None before the first poll)."""
    lease = system.util.getGlobals().get(_LEASE_KEY)  # noqa: F821
    return lease[0] if lease else None


def take_lease(project=None, now_ms=None):
    """Whether this project's timer polls now: True when it holds the lease (renewed) or the
    lease is free or has lapsed (taken); False while another project holds it."""
    g = system.util.getGlobals()  # noqa: F821
    lock = g.get(_LOCK_KEY)
    if lock is None:
        g.setdefault(_LOCK_KEY, ReentrantLock())
        lock = g.get(_LOCK_KEY)
    project = project or _this_project()
    now = _now_ms() if now_ms is None else now_ms
    length = int(getattr(py3sidecar.settings, 'HEALTH_POLL_LEASE_MS', 30000))  # noqa: F821
    lock.lock()
    try:
        lease = g.get(_LEASE_KEY)
        if lease is not None and lease[0] != project and lease[1] > now:
            return False
        g[_LEASE_KEY] = (project, now + length)
        return True
    finally:
        lock.unlock()


def _folder():
    s = py3sidecar.settings  # noqa: F821 (project library global)
    return '[%s]%s' % (s.HEALTH_TAG_PROVIDER, s.HEALTH_TAG_FOLDER.strip('/'))


def ensure_tags(folder=None):
    """Creates the memory tags that are missing (and the folder)."""
    folder = folder or _folder()
    missing = [t for t in TAGS if not system.tag.exists('%s/%s' % (folder, t[0]))]  # noqa: F821
    if not missing:
        return 0
    configs = [{'name': name, 'tagType': 'AtomicTag', 'valueSource': 'memory',
                'dataType': dtype, 'value': value} for name, dtype, value in missing]
    system.tag.configure(folder, configs, 'm')  # noqa: F821 (merge: never overwrite others)
    return len(missing)


def summarize(report):
    """The tag values from a health report (a dict as python3.health() returns it)."""
    pool = report.get('pool') or {}
    workers = [w for w in (pool.get('workers') or []) if w.get('role', 'member') == 'member'
               and w.get('state') != 'stopping']
    by_state = pool.get('workers_by_state') or {}
    breaker = ((report.get('breakers') or {}).get('primary') or {}).get('state') or ''
    failures = (report.get('recovery') or {}).get('recent_failures') or []
    last_error = ''
    if failures:
        f = failures[-1]
        last_error = '%s worker %s: %s' % (f.get('type'), f.get('worker'), f.get('detail'))
    monitoring = report.get('monitoring') or {}
    alerts = monitoring.get('alerts') or {}
    last_alert = alerts.get('last') or {}
    return {
        'AlertLevel': alerts.get('level') or '',
        'AlertsActive': int(alerts.get('active') or 0),
        'LastAlert': ('%s %s' % (last_alert.get('level') or '', last_alert.get('title') or '')
                      ).strip(),
        'CallsPerSecond': float(monitoring.get('calls_per_second') or 0.0),
        'LatencyP50Ms': 1000.0 * (monitoring.get('p50_seconds') or 0.0),
        'LatencyP99Ms': 1000.0 * (monitoring.get('p99_seconds') or 0.0),
        'Status': report.get('status') or '',
        'Reason': report.get('reason') or '',
        'Reachable': True,
        'WorkersTotal': (pool.get('size') or {}).get('live', len(workers)),
        'WorkersHealthy': len([w for w in workers if w.get('status') == 'HEALTHY']),
        'WorkersBusy': by_state.get('busy', 0),
        'QueueLength': (pool.get('queue') or {}).get('length', 0),
        'BreakerState': breaker,
        'Pools': pools_text(report),
        'LastError': last_error,
    }


def pools_text(report):
    """'name=STATUS ready/target' per pool (a Dask cluster: 'dask:<workers>'), the primary
    first (an older sidecar's pool has no status of its own: the report's), then the named
    pools by name."""
    parts = []
    named = report.get('pools') or {}
    primary = dict(report.get('pool') or {})
    primary.setdefault('status', report.get('status'))
    for name, view in [('primary', primary)] + [(n, named[n]) for n in sorted(named)]:
        status = view.get('status')
        if view.get('kind') == 'dask':
            parts.append('%s=%s dask:%s' % (name, status or '', view.get('workers') or 0))
        else:
            size = view.get('size') or {}
            parts.append('%s=%s %s/%s' % (name, status or '', size.get('ready', 0),
                                          size.get('target', 0)))
    return ' '.join(parts)


def sidecars_text(status):
    """One line from python3.clientStatus(): 'name=state' per sidecar, open ones with the time
    until their next probe."""
    parts = []
    for s in status or []:
        text = '%s=%s' % (s.get('name'), s.get('state'))
        if s.get('state') == 'open':
            text += '(%dms)' % (s.get('retryAfterMs') or 0)
        parts.append(text)
    return ' '.join(parts)


def run(timeout=None):
    """One poll: call python3.health() and write the tags. Never raises; returns the values
    written (a dict), for tests and for callers that want them, or None when another project's
    timer holds the poll's lease (see the module's docstring) or the poll failed."""
    try:
        log = system.util.getLogger('%s.health' % py3sidecar.settings.LOGGER_NAME)  # noqa: F821
    except Exception:
        log = None
    try:
        if not take_lease():
            return None
    except Exception, e:  # a broken guard must not stop the poll
        if log is not None:
            log.warn('py3sidecar health poll: lease check failed (%s); polling anyway' % (e,))
    try:
        try:
            report = python3.health(timeout)  # noqa: F821 (project library global)
            values = summarize(report)
            values['ActiveSidecar'] = (report.get('client') or {}).get('sidecar') or ''
        except Exception, e:
            values = {'Status': UNREACHABLE, 'Reachable': False, 'WorkersTotal': 0,
                      'WorkersHealthy': 0, 'WorkersBusy': 0, 'QueueLength': 0,
                      'Reason': 'the Python 3 sidecar did not answer', 'LastError': unicode(e),
                      'ActiveSidecar': '', 'AlertLevel': '', 'AlertsActive': 0,
                      'LastAlert': '', 'CallsPerSecond': 0.0, 'LatencyP50Ms': 0.0,
                      'LatencyP99Ms': 0.0, 'Pools': ''}
            if log is not None:
                log.warn('py3sidecar health poll: sidecar unreachable: %s' % (e,))
        try:
            values['Sidecars'] = sidecars_text(python3.clientStatus())  # noqa: F821
        except Exception, e:
            values['Sidecars'] = unicode(e)
        values['LastPoll'] = java.util.Date()
        folder = _folder()
        ensure_tags(folder)
        names = [t[0] for t in TAGS if t[0] in values]
        system.tag.writeBlocking(['%s/%s' % (folder, n) for n in names],  # noqa: F821
                                 [values[n] for n in names])
        return values
    except Exception, e:
        if log is not None:
            log.error('py3sidecar health poll failed: %s' % (e,))
        return None
    except java.lang.Throwable, e:
        if log is not None:
            log.error('py3sidecar health poll failed: %s' % (e,))
        return None
