# -*- coding: utf-8 -*-
"""TEST DOUBLE of Ignition's `system.*` scripting API (Jython 2.7) - NOT Ignition.

Only what the python3 library and its tests touch: util.getGlobals/getLogger, dataset.toDataSet
(a real dataset class with getColumnNames/getColumnTypes/getRowCount/getValueAt), and an
in-memory tag store (tag.exists/configure/writeBlocking/readBlocking).
"""
import threading

import java.lang
import java.util
from java.lang import Class as JClass


class DoubleDataset(object):
    """A minimal stand-in for com.inductiveautomation.ignition.common.Dataset."""

    def __init__(self, names, types, rows):
        self._names = list(names)
        self._types = list(types)
        self._rows = [list(r) for r in rows]

    def getColumnNames(self):
        return java.util.ArrayList(self._names)

    def getColumnTypes(self):
        return java.util.ArrayList(self._types)

    def getColumnCount(self):
        return len(self._names)

    def getRowCount(self):
        return len(self._rows)

    def getValueAt(self, row, col):
        if isinstance(col, basestring):
            col = self._names.index(col)
        return self._rows[row][col]

    def __repr__(self):
        return 'DoubleDataset(%d rows x %d cols)' % (len(self._rows), len(self._names))


_TYPE_BY_PY = [
    (bool, 'java.lang.Boolean'), (int, 'java.lang.Integer'), (long, 'java.lang.Long'),
    (float, 'java.lang.Double'), (basestring, 'java.lang.String'),
]


def _infer_class(values):
    for v in values:
        if v is None:
            continue
        for t, name in _TYPE_BY_PY:
            if isinstance(v, t):
                return JClass.forName(name)
        if isinstance(v, java.lang.Object):
            return v.getClass()
        return JClass.forName('java.lang.Object')
    return JClass.forName('java.lang.Object')


class _Dataset(object):
    def toDataSet(self, headers, rows):
        """Like system.dataset.toDataSet(headers, data): column types inferred from the values."""
        cols = [[r[c] for r in rows] for c in range(len(headers))]
        return DoubleDataset(headers, [_infer_class(c) for c in cols], rows)


class DoubleLogger(object):
    def __init__(self, name, sink):
        self.name = name
        self.sink = sink

    def _log(self, level, msg):
        self.sink.append((self.name, level, unicode(msg)))

    def trace(self, m): self._log('TRACE', m)
    def debug(self, m): self._log('DEBUG', m)
    def info(self, m): self._log('INFO', m)
    def warn(self, m): self._log('WARN', m)
    def error(self, m): self._log('ERROR', m)
    def infof(self, m, *a): self._log('INFO', m % a)
    def warnf(self, m, *a): self._log('WARN', m % a)
    def errorf(self, m, *a): self._log('ERROR', m % a)


class _Util(object):
    """system.util. The scope is the JVM's: 'gateway' (default) or 'designer' (enter_scope);
    in gateway scope getSystemFlags does not exist, as in Ignition. sendRequest runs the gateway
    message handler registered with register_message_handler on ANOTHER thread (standing in
    for the gateway's JVM) and waits at most timeoutSec for its return value (a double: values
    are passed as they are, not serialized as Ignition does)."""

    DESIGNER_FLAG = 1

    def __init__(self):
        self._globals = {}
        self.log_records = []
        self._scope = 'gateway'
        self.handlers = {}
        self.requests = []
        self.project = 'plant'

    def getGlobals(self):
        return self._globals

    def getLogger(self, name):
        return DoubleLogger(name, self.log_records)

    def getProjectName(self):
        return self.project

    def enter_scope(self, scope):
        # In gateway scope the function is absent (not a raising property: a lookup of a
        # missing attribute costs Jython no exception, as on Ignition's own system.util).
        self._scope = scope
        if scope == 'gateway':
            self.__dict__.pop('getSystemFlags', None)
        else:
            self.getSystemFlags = lambda: self.DESIGNER_FLAG

    def scope(self):
        return self._scope

    def register_message_handler(self, project, name, fn):
        self.handlers[(project, name)] = fn

    def sendRequest(self, project, messageHandler, payload=None, remoteServer=None,
                    timeoutSec=60):
        self.requests.append((project, messageHandler, self.scope()))
        fn = self.handlers.get((project, messageHandler))
        if fn is None:
            raise java.lang.IllegalArgumentException(
                'no message handler %r in project %r' % (messageHandler, project))
        box = {}
        done = threading.Event()

        def run():
            box['thread'] = threading.current_thread().getName()
            try:
                box['value'] = fn(payload)
            except Exception, e:
                box['error'] = e
            done.set()

        t = threading.Thread(target=run, name='gateway-message-handler')
        t.setDaemon(True)
        t.start()
        if not done.wait(timeoutSec):
            raise java.util.concurrent.TimeoutException(
                'Timeout waiting for response from gateway after %ss' % timeoutSec)
        self.last_handler_thread = box.get('thread')
        if 'error' in box:
            raise box['error']
        return box.get('value')


class QualityCode(object):
    def __init__(self, good):
        self._good = good

    def isGood(self):
        return self._good


class QualifiedValue(object):
    def __init__(self, value, good):
        self.value = value
        self.quality = QualityCode(good)


class _Tag(object):
    """Memory tags: paths like '[default]Folder/Name'."""

    def __init__(self):
        self.values = {}
        self.configured = []
        self._lock = threading.Lock()

    def exists(self, path):
        with self._lock:
            return path in self.values or any(p.startswith(path + '/') for p in self.values)

    def configure(self, basePath, tags, collisionPolicy='o'):
        base = basePath.rstrip('/')
        with self._lock:
            for t in tags:
                self.configured.append((base, dict(t)))
                if t.get('tagType') == 'AtomicTag':
                    self.values.setdefault('%s/%s' % (base, t['name']), t.get('value'))
        return [QualityCode(True) for _ in tags]

    def writeBlocking(self, paths, values, timeout=45000):
        out = []
        with self._lock:
            for p, v in zip(paths, values):
                if p in self.values:
                    self.values[p] = v
                    out.append(QualityCode(True))
                else:
                    out.append(QualityCode(False))
        return out

    def readBlocking(self, paths, timeout=45000):
        with self._lock:
            return [QualifiedValue(self.values.get(p), p in self.values) for p in paths]


class DoubleSystem(object):
    """The test double's `system` object."""

    def __init__(self):
        self.util = _Util()
        self.dataset = _Dataset()
        self.tag = _Tag()
