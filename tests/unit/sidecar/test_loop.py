import os
import threading

from sidecar.channel import FrameReader, FrameTooLarge, encode_frame, read_frame, write_frame
from sidecar.loop import Loop


def test_frames_split_across_reads_are_reassembled():
    r, w = os.pipe()
    os.set_blocking(r, False)
    reader = FrameReader(r, 1 << 20)
    data = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"x" * 1000)
    os.write(w, data[:7])
    assert reader.feed() == []
    os.write(w, data[7:])
    assert reader.feed() == [b"hello", b"", b"x" * 1000]
    assert reader.feed() is None  # nothing to read
    os.close(w)
    assert reader.feed() == [] and reader.eof
    os.close(r)


def test_oversized_frame_is_refused():
    r, w = os.pipe()
    os.write(w, (10_000).to_bytes(4, "big"))
    try:
        read_frame(r, 100)
    except FrameTooLarge as exc:
        assert "10000 bytes" in str(exc)
    else:
        raise AssertionError("FrameTooLarge not raised")
    os.close(r)
    os.close(w)


def test_blocking_round_trip():
    r, w = os.pipe()
    write_frame(w, b"abc")
    assert read_frame(r, 10) == b"abc"
    os.close(w)
    assert read_frame(r, 10) is None
    os.close(r)


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
    loop.run()  # returns only because the other thread woke it
    t.join()
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
