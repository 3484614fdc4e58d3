"""Covers: sidecar.supervision.score.

Per-worker health score: rewards, penalties by kind, history ring and metrics."""

from __future__ import annotations

import threading

import pytest

from sidecar.supervision.score import HealthScore, ScoreConfig, ScoreEvent

from ..clock_double import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0)


@pytest.fixture
def score(clock: FakeClock) -> HealthScore:
    return HealthScore(clock=clock)


def test_defaults_match_the_spec() -> None:
    cfg = ScoreConfig()
    assert (cfg.max_score, cfg.success_reward, cfg.timeout_penalty, cfg.crashed_penalty,
            cfg.other_penalty, cfg.replace_threshold,
            cfg.history_size) == (100, 1, 20, 50, 10, 30, 100)


@pytest.mark.parametrize("bad, words", [
    ({"history_size": 0}, "history_size"),
    ({"timeout_penalty": -1}, "timeout_penalty"),
    ({"replace_threshold": 101}, "replace_threshold"),
])
def test_invalid_config_is_rejected_with_its_name(bad: dict[str, int], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ScoreConfig(**bad)


def test_a_fresh_worker_scores_100_and_successes_are_capped(score: HealthScore) -> None:
    for _ in range(10):
        score.record(None, 0.001)
    assert score.score == 100
    assert not score.should_replace()


@pytest.mark.parametrize("kind, expected", [
    ("timeout", 80),
    ("unresponsive", 80),
    ("crashed", 50),
    ("unavailable", 90),
    ("internal", 90),
    ("something_new", 90),
])
def test_penalty_by_kind(score: HealthScore, kind: str, expected: int) -> None:
    assert score.record(kind) is True
    assert score.score == expected
    assert score.last_failure_kind == kind


@pytest.mark.parametrize("kind", ["user", "bad_request", "unauthorized", "overloaded",
                                  "circuit_open"])
def test_errors_that_are_not_the_workers_fault_do_not_count_at_all(score: HealthScore,
                                                                   kind: str) -> None:
    score.record(None, 0.004)
    score.record("timeout")
    for _ in range(50):
        assert score.record(kind, 9.0) is False
    assert score.score == 80
    assert len(score.history()) == 2
    assert score.success_rate() == 0.5
    assert score.mean_execution_ms() == pytest.approx(4.0)
    assert score.last_failure_kind == "timeout"


def test_successes_earn_back_one_point_each(score: HealthScore) -> None:
    score.record("timeout")
    for _ in range(5):
        score.record_success()
    assert score.score == 85


def test_score_never_goes_below_zero(score: HealthScore) -> None:
    for _ in range(5):
        score.record("crashed")
    assert score.score == 0
    assert score.history()[-1].score_after == 0


def test_replace_strictly_below_threshold(score: HealthScore) -> None:
    score.record("crashed")
    score.record("timeout")
    assert score.score == 30
    assert not score.should_replace()
    score.record("internal")
    assert score.score == 20
    assert score.should_replace()


def test_custom_config_changes_the_arithmetic(clock: FakeClock) -> None:
    score = HealthScore(ScoreConfig(timeout_penalty=5, success_reward=2, replace_threshold=90),
                        clock=clock)
    score.record("timeout")
    score.record("timeout")
    assert (score.score, score.should_replace()) == (90, False)
    score.record("timeout")
    assert (score.score, score.should_replace()) == (85, True)
    score.record(None)
    assert score.score == 87


def test_history_keeps_the_last_events_oldest_first(clock: FakeClock) -> None:
    score = HealthScore(ScoreConfig(history_size=3), clock=clock)
    for kind in ("crashed", None, "timeout", None):
        clock.advance(1)
        score.record(kind, 0.5)
    history = score.history()
    assert history == [
        ScoreEvent("success", 502.0, 0.5, 51),
        ScoreEvent("timeout", 503.0, 0.5, 31),
        ScoreEvent("success", 504.0, 0.5, 32),
    ]
    assert score.success_rate() == pytest.approx(2 / 3)  # the crash slid out of the window


def test_default_history_is_bounded_at_100(score: HealthScore) -> None:
    for _ in range(250):
        score.record(None, 0.001)
    assert len(score.history()) == 100


def test_metrics(score: HealthScore, clock: FakeClock) -> None:
    assert (score.success_rate(), score.mean_execution_ms(), score.last_failure_at) == (
        None, None, None)
    score.record(None, 0.010)
    score.record(None, 0.020)
    score.record(None)  # no duration reported: not part of the mean
    clock.advance(7)
    score.record("timeout", 30.0)  # failures do not skew the mean execution time
    assert score.success_rate() == 0.75
    assert score.mean_execution_ms() == pytest.approx(15.0)
    assert (score.last_failure_at, score.last_failure_kind) == (507.0, "timeout")


def test_snapshot(score: HealthScore, clock: FakeClock) -> None:
    score.record(None, 0.002)
    score.record("user")
    score.record("timeout")
    clock.advance(3.25)
    assert score.snapshot() == {
        "score": 80, "should_replace": False, "success_rate": 0.5,
        "mean_execution_ms": pytest.approx(2.0), "events_in_history": 2,
        "successes_total": 1, "failures_total": 1, "last_failure_kind": "timeout",
        "last_failure_seconds_ago": 3.25,
    }


def test_concurrent_records_lose_no_update(clock: FakeClock) -> None:
    score = HealthScore(ScoreConfig(max_score=10_000, other_penalty=1, history_size=10),
                        clock=clock)
    barrier = threading.Barrier(8)

    def hammer() -> None:
        barrier.wait(timeout=10)
        for _ in range(500):
            score.record("internal")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert score.score == 10_000 - 8 * 500
    assert score.snapshot()["failures_total"] == 4000
