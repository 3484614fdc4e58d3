"""Covers: sidecar.routing.chain, bridge.protocol, bridge.breaker, bridge.codec, sidecar.pool.call.

The fallback chain's routing, with test-double strategies in a real loop (no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import protocol
from bridge.breaker import BreakerConfig, CircuitBreaker
from bridge.codec import pack_raw, unpack_raw
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.routing.chain import Attempt, FallbackChain, Strategy


class ScriptedStrategy(Strategy):
    """Test double: answers every attempt at once with a scripted kind (None = success)."""

    def __init__(self, name: str, kind: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.seen: list[Attempt] = []

    def submit(self, attempt: Attempt) -> None:
        self.seen.append(attempt)
        if self.kind is None:
            attempt.answer(b"\x84\xa2ok\xc3\xa2id" + pack_raw(attempt.rid)
                           + b"\xa5value\x2a\xa6worker\x01")
        else:
            attempt.fail(self.kind, f"{self.name} says {self.kind}")


class HoldingStrategy(ScriptedStrategy):
    """Test double: keeps attempts unanswered until the test answers them."""

    def submit(self, attempt: Attempt) -> None:
        self.seen.append(attempt)


def run(chain: FallbackChain, loop: Loop, timeout: float = 5.0) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []
    chain.submit(Call(7, b"payload", timeout, lambda data: replies.append(unpack_raw(data)),
                      loop.clock()))
    return replies


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.close()


def test_success_says_which_strategy_served_it(loop):
    chain = FallbackChain(loop, [ScriptedStrategy("primary")])
    assert run(chain, loop) == [{"ok": True, "id": 7, "value": 42, "worker": 1,
                                 "via": "primary"}]


@pytest.mark.parametrize("kind", ["circuit_open", "overloaded", "unavailable"])
def test_fall_through_kinds_go_to_the_next_strategy(loop, kind):
    first, second = ScriptedStrategy("primary", kind), ScriptedStrategy("secondary")
    chain = FallbackChain(loop, [first, second])
    assert run(chain, loop)[0]["via"] == "secondary"
    assert chain.fell_through == {"primary": 1, "secondary": 0}
    assert second.seen[0].deadline == first.seen[0].deadline  # one shared budget


@pytest.mark.parametrize("kind", ["user", "timeout", "crashed", "bad_request"])
def test_other_kinds_are_answered_by_the_strategy_that_met_them(loop, kind):
    second = ScriptedStrategy("direct")
    chain = FallbackChain(loop, [ScriptedStrategy("primary", kind), second])
    [reply] = run(chain, loop)
    assert reply["error"]["kind"] == kind and reply["via"] == "primary"
    assert second.seen == []


def test_user_and_timeout_can_never_be_configured_to_fall_through(loop):
    with pytest.raises(ValueError, match="never fall through"):
        FallbackChain(loop, [ScriptedStrategy("primary")], fall_through=["user"])


def test_all_failing_lists_every_answer_and_the_soonest_retry(loop):
    breaker = CircuitBreaker(BreakerConfig(open_timeout=30), clock=loop.clock, name="primary")
    primary = ScriptedStrategy("primary")
    primary.breaker = breaker
    for _ in range(5):
        breaker.try_acquire().record(protocol.CRASHED)
    chain = FallbackChain(loop, [primary, ScriptedStrategy("direct", "overloaded")])
    [reply] = run(chain, loop)
    error = reply["error"]
    assert error["kind"] == "unavailable"
    assert [a["strategy"] for a in error["attempts"]] == ["primary", "direct"]
    assert "primary: circuit_open" in error["message"] and "direct: overloaded" in error["message"]
    assert 29 < error["retry_after"] <= 30
    assert primary.seen == []  # rejected by the breaker: the strategy never saw it


def test_a_chain_of_one_passes_circuit_open_through_with_retry_after(loop):
    primary = HoldingStrategy("primary")
    primary.breaker = CircuitBreaker(BreakerConfig(failure_threshold=1), clock=loop.clock)
    chain = FallbackChain(loop, [primary])
    run(chain, loop)
    primary.seen[0].fail(protocol.CRASHED, "died")
    [reply] = run(chain, loop)
    assert reply["error"]["kind"] == "circuit_open" and reply["error"]["retry_after"] > 59


def test_breaker_records_each_attempt_once_and_user_errors_as_success(loop):
    primary = HoldingStrategy("primary")
    primary.breaker = CircuitBreaker(BreakerConfig(failure_threshold=2), clock=loop.clock)
    chain = FallbackChain(loop, [primary])
    run(chain, loop)
    run(chain, loop)
    run(chain, loop)
    first, second, third = primary.seen
    first.fail(protocol.CRASHED, "died")
    first.fail(protocol.CRASHED, "again")  # exactly once: ignored
    second.fail(protocol.USER, "the user's fault")
    third.fail(protocol.CRASHED, "died")
    assert str(primary.breaker.state) == "closed"  # crash, user (success), crash: not 2 in a row


def test_no_time_left_means_no_next_strategy(loop):
    now = [100.0]
    loop.clock = lambda: now[0]
    primary, second = HoldingStrategy("primary"), ScriptedStrategy("secondary")
    chain = FallbackChain(loop, [primary, second])
    replies = run(chain, loop, timeout=1.0)
    now[0] += 2.0
    primary.seen[0].fail(protocol.OVERLOADED, "full")
    assert second.seen == []
    assert "before the call's deadline" in replies[0]["error"]["message"]


def test_each_pool_has_its_own_route_through_shared_strategies(loop):
    primary, ml = ScriptedStrategy("primary"), ScriptedStrategy("ml", "overloaded")
    stats = ScriptedStrategy("stats", "unavailable")
    chain = FallbackChain(loop, [primary, ml, stats],
                          routes={"primary": ["primary"], "ml": ["ml", "primary"],
                                  "stats": ["stats"]})
    replies: list[dict[str, Any]] = []

    def submit(pool: str | None) -> dict[str, Any]:
        chain.submit(Call(1, b"p", 5.0, lambda data: replies.append(unpack_raw(data)),
                          loop.clock()), pool)
        return replies[-1]

    assert submit(None)["via"] == "primary" and not ml.seen  # no pool: the first route
    assert submit("ml")["via"] == "primary"  # ml overloaded -> its route's next: primary
    assert len(ml.seen) == 1
    reply = submit("stats")  # a route of one: its own answer, nothing else tried
    assert reply["error"]["kind"] == "unavailable" and reply["via"] == "stats"
    assert chain.served == {"primary": 2, "ml": 0, "stats": 0}
    assert chain.snapshot()["routes"] == {"primary": ["primary"], "ml": ["ml", "primary"],
                                          "stats": ["stats"]}
