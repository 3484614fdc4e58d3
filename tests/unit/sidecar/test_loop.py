"""Covers: sidecar.loop.

The event loop: timers in order, cancelled ones purged, a thread-safe wake-up, and a stop
before run that is not lost."""

import threading

from sidecar.loop import Loop


def test_loop_timers_order_cancel_and_threadsafe_wakeup():
    now = [0.0]
    loop = Loop(clock=lambda: now[0])
    fired = []
    loop.call_at(2.0, lambda: fired.append("b"))
    loop.call_at(1.0, lambda: fired.append("a"))
    loop.call_at(1.5, lambda: fired.append("never")).cancel()
    now[0] = 3.0
    loop.call_soon_threadsafe(loop.stop)
    loop.run()
    assert fired == ["a", "b"]
    t = threading.Thread(target=lambda: loop.call_soon_threadsafe(loop.stop))
    t.start()
    # The loop sleeps with no timer due (the fake clock stands still): it returns only because
    # the other thread woke it. It runs in a thread of its own so the wait has a deadline.
    returned = threading.Event()
    runner = threading.Thread(target=lambda: (loop.run(), returned.set()), daemon=True)
    runner.start()
    assert returned.wait(10), "call_soon_threadsafe did not wake the sleeping loop"
    t.join(10)
    runner.join(10)
    loop.close()


def test_cancelled_timers_are_purged():
    loop = Loop()
    timers = [loop.call_later(100, lambda: None) for _ in range(5000)]
    for t in timers:
        t.cancel()
    assert len(loop.timers) < 2500
    loop.close()


def test_a_stop_before_run_is_not_lost():
    """SIGTERM during start-up (before the loop runs) must still stop the serve loop."""
    loop = Loop()
    safety: list[str] = []
    loop.stop()  # what the signal handler does while the service is still starting
    loop.call_later(5.0, lambda: (safety.append("stop was lost"), loop.stop()))
    loop.run()
    assert safety == []
    # consumed: a later run (the drain) runs until its own condition
    ran: list[int] = []
    loop.call_soon_threadsafe(lambda: ran.append(1))
    loop.run(until=lambda: bool(ran))
    assert ran == [1]
    loop.close()
