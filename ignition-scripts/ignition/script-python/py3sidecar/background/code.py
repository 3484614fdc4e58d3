"""py3sidecar.background - executeAsync/callAsync: run a python3 call on a background thread.

Owns: the task that runs the call and hands its value or exception to onSuccess/onError, the
choice of executor (the direct route's, kept by py3sidecar.client, or the gateway route's, kept
by py3sidecar.gatewayroute), logging a failure nobody asked to hear about, and the daemon thread
factory both executors use. Must not touch: the call itself (python3), the executors' life
(their owners close them), the wire.

Every scope (resource scope "A"): the Designer and Vision clients use it too.
"""
import java.lang
from java.util.concurrent import ThreadFactory, RejectedExecutionException
from java.util.concurrent.atomic import AtomicLong


class DaemonThreads(ThreadFactory):
    """Names and daemonizes the async threads, so a stuck call never keeps a JVM alive."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.count = AtomicLong()

    def newThread(self, runnable):
        t = java.lang.Thread(runnable, '%s-%d' % (self.prefix, self.count.incrementAndGet()))
        t.setDaemon(True)
        return t


def submit(fn, onSuccess, onError):
    """Runs fn() on the route's executor; returns its Future, or None when the call could not
    even be queued (onError was then already called with Overloaded or Unavailable)."""
    p3 = python3  # noqa: F821 (project library global: the exception classes)

    class _Task(java.lang.Runnable):
        def run(self):
            try:
                value = fn()
            except Exception, e:
                _deliver(onError, e, 'onError')
                return
            except java.lang.Throwable, e:
                _deliver(onError, p3.InternalError('%s' % e), 'onError')
                return
            _deliver(onSuccess, value, 'onSuccess')

    try:
        if py3sidecar.gatewayroute.route() == 'gateway':  # noqa: F821
            executor = py3sidecar.gatewayroute.executor()  # noqa: F821
        else:
            executor = py3sidecar.client.executor()  # noqa: F821
        return executor.submit(_Task())
    except RejectedExecutionException:
        _deliver(onError, p3.Overloaded('too many python3 async calls waiting '
                                        '(py3sidecar.settings.ASYNC_QUEUE)'), 'onError')
    except p3.Python3Error, e:
        _deliver(onError, e, 'onError')
    return None


def _logger():
    return system.util.getLogger(py3sidecar.settings.LOGGER_NAME)  # noqa: F821


def _deliver(callback, value, name):
    if callback is None:
        if name == 'onError':
            _logger().warn('python3 async call failed (no onError given): %s' % (value,))
        return
    try:
        callback(value)
    except Exception, e:
        _logger().error('python3 async %s callback raised: %s' % (name, e))
    except java.lang.Throwable, e:
        _logger().error('python3 async %s callback raised: %s' % (name, e))
