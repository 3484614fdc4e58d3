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


def test_a_quiet_zmq_socket_costs_no_getsockopt_until_it_fires_or_is_sent_on(monkeypatch):
    """A socket registered with ``tells_sends``: turns woken by something else read none of
    its events; its descriptor firing, or a send on it (``sent_on``), has them read."""
    import os
    import time

    import zmq

    from sidecar import loop as loop_module

    reads: list[object] = []
    real_get = loop_module._zmq_get
    monkeypatch.setattr(loop_module, "_zmq_get", lambda s, o: (reads.append(s), real_get(s, o))[1])
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.linger = dealer.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    loop = Loop()
    served: list[bytes] = []

    def on_router() -> bool:
        while router.get(zmq.EVENTS) & zmq.POLLIN:
            ident, body = router.recv_multipart()
            served.append(body)
            router.send_multipart([ident, b"re:" + body])
            loop.sent_on(router)
        return False

    loop.add_reader(router, on_router, tells_sends=True)
    r, w = os.pipe()
    loop.add_reader(r, lambda: os.read(r, 100))

    def turns(until, timeout=5.0):
        deadline = time.monotonic() + timeout
        loop.run(until=lambda: until() or time.monotonic() > deadline)
        assert until()

    dealer.send(b"one")
    turns(lambda: served == [b"one"])
    assert dealer.poll(5000) and dealer.recv() == b"re:one"
    turns(lambda: router in loop.quiet)  # nothing waits, nothing sent since
    reads.clear()
    for _ in range(5):  # turns woken by the pipe only
        os.write(w, b"x")
        woke = [False]
        loop.call_soon_threadsafe(lambda woke=woke: woke.__setitem__(0, True))
        turns(lambda woke=woke: woke[0])
    assert router not in reads, "a quiet socket's events were read"
    loop.sent_on(router)
    os.write(w, b"x")
    turns(lambda: router in loop.quiet)
    assert router in reads  # read once after the send, then quiet again
    dealer.send(b"two")
    turns(lambda: served == [b"one", b"two"])  # its descriptor fired: served
    loop.remove_reader(router)
    assert router not in loop.quiet and router not in loop.tells_sends
    loop.close()
    os.close(r)
    os.close(w)
    router.close()
    dealer.close()
    ctx.term()
