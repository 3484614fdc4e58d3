"""Covers: benchmarks.profile_call.

benchmarks/profile_call.py's matching of stamps to calls, on made-up stamps (no processes):
a milestone another process reaches before the previous one is stamped, a stray stamp from a
health-check ping between calls, and a call that lost a stamp."""

from benchmarks import profile_call


def stamps_of_one_call(start: int, step: int = 10) -> list[tuple[str, int]]:
    events = [(label, start + i * step) for i, (label, _, _) in
              enumerate(profile_call.MILESTONES)]
    at = {label: t for label, t in events}
    events.append(("c.send>", at["c.encode<"] + 1))  # the causes of s.handler> and
    events.append(("w.write>", at["w.encode<"] + 1))  # s.pipe_read< (entry stamps)
    return events


def test_every_part_of_each_call_is_found():
    events = stamps_of_one_call(1000) + stamps_of_one_call(5000)
    calls, skipped = profile_call.parts_per_call(events)
    assert skipped == 0
    assert calls == [[10] * (len(profile_call.MILESTONES) - 1)] * 2


def test_a_stamp_from_a_ping_between_calls_is_stepped_over():
    events = stamps_of_one_call(1000) + [("w.decode<", 500), ("w.decode<", 3000)]
    calls, _ = profile_call.parts_per_call(events)
    assert calls == [[10] * (len(profile_call.MILESTONES) - 1)]


def test_a_reader_may_wake_before_the_writer_stamps_its_return():
    events = [e for e in stamps_of_one_call(1000) if e[0] != "w.read<"]
    write_done = next(t for label, t in events if label == "s.pipe_write<")
    calls, skipped = profile_call.parts_per_call(events + [("w.read<", write_done - 3)])
    assert skipped == 0
    names = [label for label, _, _ in profile_call.MILESTONES[1:]]
    assert calls[0][names.index("w.read<")] == -3  # overlapped: the part is negative


def test_the_sidecar_may_stamp_its_send_after_the_client_is_done():
    events = [e for e in stamps_of_one_call(1000) if e[0] != "s.reply<"]
    end = next(t for label, t in events if label == "c.call<")
    calls, skipped = profile_call.parts_per_call(events + [("s.reply<", end + 5)])
    assert skipped == 0 and len(calls) == 1


def test_a_call_without_its_worker_stamps_is_left_out():
    events = [e for e in stamps_of_one_call(1000) if e[0] != "w.encode<"]
    calls, skipped = profile_call.parts_per_call(events + stamps_of_one_call(5000))
    assert skipped == 1 and len(calls) == 1
