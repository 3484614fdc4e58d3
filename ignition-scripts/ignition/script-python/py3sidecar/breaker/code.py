"""py3sidecar.breaker - the client-side circuit breaker (one per sidecar), Jython 2.7.

Owns: CircuitBreaker (CLOSED -> OPEN -> HALF_OPEN and its one probe call), the breaker states,
its counters and snapshot. Must not touch: sockets (py3sidecar.transport), which sidecars there
are and which breaker is whose (py3sidecar.endpoints), the failover order (py3sidecar.client).

Pure Jython: needs no jar but the JDK's clock; gateway scope ("G") like its only user,
py3sidecar.endpoints.
"""
import threading

import java.lang

CLOSED = 'closed'
OPEN = 'open'
HALF_OPEN = 'half_open'


def _now_ms():
    return java.lang.System.nanoTime() / 1000000.0


class CircuitBreaker(object):
    """CLOSED -> (failure_threshold consecutive transport failures) -> OPEN -> (open_ms later,
    checked when a call asks) -> HALF_OPEN: ONE probe call; its success closes the breaker, its
    failure opens it again. While OPEN (and while the probe runs) `acquire()` answers None at once:
    the caller skips this sidecar without touching the network.

        gen = breaker.acquire()          # None: skip this sidecar
        ...the call, no lock held...
        breaker.record(gen, True/False)  # or breaker.release(gen): the call was not made / says
                                         # nothing about the sidecar's health

    Thread-safe: a lock guards a few field updates only; the CLOSED path takes no lock at all.
    A result recorded under an older generation (a slow call from before a transition) is ignored.
    `clock()` returns milliseconds (injected by tests).
    """

    def __init__(self, failure_threshold=1, open_ms=2000, clock=_now_ms, name='sidecar'):
        self.failure_threshold = max(1, int(failure_threshold))
        self.open_ms = max(1, int(open_ms))
        self.clock = clock
        self.name = name
        self.state = CLOSED
        self.generation = 0
        self.failures = 0          # consecutive, in CLOSED
        self.open_until = 0.0
        self.probing = False
        self.opened = 0            # times it opened
        self.rejected = 0          # calls skipped while OPEN/HALF_OPEN (approximate: no lock)
        self.last_error = None
        self.last_transition = None  # (from, to, reason, clock ms)
        self.listener = None  # listener(breaker, from, to, reason), called outside the lock
        self._lock = threading.Lock()

    def acquire(self):
        """The generation to record under, or None when this sidecar must be skipped."""
        state = self.state
        if state == CLOSED:
            return self.generation
        if state == OPEN and self.clock() < self.open_until or state == HALF_OPEN and self.probing:
            self.rejected += 1
            return None
        moved = None
        with self._lock:
            if self.state == CLOSED:
                return self.generation
            if self.state == OPEN:
                if self.clock() < self.open_until:
                    self.rejected += 1
                    return None
                moved = self._move(HALF_OPEN, 'open for %d ms: one probe call' % self.open_ms)
            generation = self._claim_probe()
            if generation is None:
                self.rejected += 1
        self._notify(moved)
        return generation

    def probe_now(self, reason):
        """OPEN -> HALF_OPEN at once (e.g. the sidecar's connection file changed: it restarted).
        Returns the probe's generation, or None when the breaker is not OPEN or a probe runs."""
        moved = None
        with self._lock:
            if self.state == OPEN:
                moved = self._move(HALF_OPEN, reason)
            generation = self._claim_probe() if self.state == HALF_OPEN else None
        self._notify(moved)
        return generation

    def _claim_probe(self):
        """Under the lock: the one HALF_OPEN probe's generation, or None if it is taken."""
        if self.probing:
            return None
        self.probing = True
        return self.generation

    def record(self, generation, ok, error=None):
        """The outcome of a call made under `generation`: ok True (the sidecar answered, whatever
        it answered) or False (a transport failure: `error` says which)."""
        if ok and self.state == CLOSED and self.failures == 0:
            return  # the hot path: nothing to change, no lock
        moved = None
        with self._lock:
            if generation != self.generation:
                return
            if ok:
                if self.state == HALF_OPEN:
                    moved = self._move(CLOSED, 'the probe call succeeded')
                self.failures = 0
            else:
                self.last_error = error
                if self.state == HALF_OPEN:
                    moved = self._move(OPEN, 'the probe call failed: %s' % (error,))
                else:
                    self.failures += 1
                    if self.failures >= self.failure_threshold:
                        moved = self._move(OPEN, '%d consecutive failure(s), the last: %s'
                                           % (self.failures, error))
        self._notify(moved)

    def release(self, generation):
        """The permit was not used (or the outcome says nothing): a probe slot is freed."""
        if self.state == CLOSED:
            return
        with self._lock:
            if generation == self.generation and self.state == HALF_OPEN:
                self.probing = False

    def _move(self, to, reason):
        # under self._lock; returns the transition, published by _notify once the lock is free
        now = self.clock()
        self.last_transition = (self.state, to, reason, now)
        self.state = to
        self.generation += 1
        self.probing = False
        self.failures = 0
        if to == OPEN:
            self.opened += 1
            self.open_until = now + self.open_ms
        return self.last_transition

    def _notify(self, moved):
        listener = self.listener
        if moved is not None and listener is not None:
            try:
                listener(self, moved[0], moved[1], moved[2])
            except Exception:
                pass

    def retry_after_ms(self):
        """Milliseconds until the next probe may run (0 when calls pass now)."""
        if self.state == OPEN:
            return max(0.0, self.open_until - self.clock())
        return 0.0

    def snapshot(self):
        """A plain dict: state, failures, retryAfterMs, opened, rejected, lastError,
        lastTransition {from, to, reason, msAgo}."""
        with self._lock:
            state = self.state
            if state == OPEN and self.clock() >= self.open_until:
                state = HALF_OPEN  # what the next call will find
            last = self.last_transition
            snap = {'state': state, 'failures': self.failures,
                    'retryAfterMs': int(self.retry_after_ms()), 'opened': self.opened,
                    'rejected': self.rejected, 'lastError': self.last_error,
                    'probing': self.probing, 'lastTransition': None}
            if last is not None:
                snap['lastTransition'] = {'from': last[0], 'to': last[1], 'reason': last[2],
                                          'msAgo': int(self.clock() - last[3])}
        return snap
