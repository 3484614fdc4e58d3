"""Covers: sidecar.pool.local, bridge.codec, sidecar.pool.call, sidecar.supervision.score.

How the pool forwards a worker's reply (Pool.answer_from_worker), without processes.

A success the codec's fast path cannot splice is decoded and still counted as a success (it
must never feed the breaker or the score as ``internal``)."""

from __future__ import annotations

from collections import deque

import pytest

from bridge.codec import pack_raw, unpack_raw
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.pool.local import Pool, PoolSettings
from sidecar.supervision.score import HealthScore, ScoreConfig


class WorkerDouble:
    """Test double: the few WorkerHandle fields answer_from_worker reads and writes."""

    def __init__(self) -> None:
        self.id = 5
        self.score = HealthScore(ScoreConfig(), clock=lambda: 0.0)
        self.wall_ms: deque[float] = deque()
        self.cpu_ms: deque[float] = deque()
        self.recycle_after_call = ""


@pytest.fixture
def pool(tmp_path) -> Pool:
    pool = Pool(Loop(), PoolSettings(stack_root=str(tmp_path)))
    yield pool
    pool.terminate(0.1)


def answered(pool: Pool, frame: bytes) -> tuple[dict, Call, WorkerDouble]:
    replies: list[bytes] = []
    call = Call("r1", b"", 5.0, replies.append, 0.0)
    worker = WorkerDouble()
    pool.answer_from_worker(worker, call, frame, 0.01)
    assert len(replies) == 1
    return unpack_raw(replies[0]), call, worker


def test_a_spliceable_success_is_forwarded_and_counted(pool: Pool) -> None:
    frame = pack_raw({"ok": True, "ms": 2.0, "cpu": 1.5, "value": 9, "stdout": "", "stderr": ""})
    reply, call, worker = answered(pool, frame)
    assert reply["id"] == "r1" and reply["worker"] == 5 and reply["value"] == 9
    assert call.outcome is None and pool.counters["succeeded"] == 1
    assert list(worker.wall_ms) == [2.0] and list(worker.cpu_ms) == [1.5]


def test_a_success_the_fast_path_cannot_splice_is_decoded_not_a_failure(pool: Pool) -> None:
    frame = pack_raw({"ok": True, "value": 9, "ms": 2.0, "cpu": 1.5, "extra": [1]})
    reply, call, worker = answered(pool, frame)
    assert reply == {"ok": True, "value": 9, "ms": 2.0, "cpu": 1.5, "extra": [1], "id": "r1",
                     "worker": 5}
    assert call.outcome is None
    assert pool.counters["succeeded"] == 1 and pool.errors_by_kind == {}
    assert worker.score.success_rate() == 1.0


def test_an_error_reply_is_counted_by_its_kind(pool: Pool) -> None:
    frame = pack_raw({"ok": False, "ms": 0.0, "cpu": 0.0,
                      "error": {"kind": "user", "type": "ValueError", "message": "no"}})
    reply, call, _ = answered(pool, frame)
    assert reply["error"]["kind"] == "user" and call.outcome == "user"
    assert pool.errors_by_kind == {"user": 1} and pool.counters["succeeded"] == 0
