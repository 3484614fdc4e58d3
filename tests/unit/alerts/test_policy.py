"""Covers: sidecar.alerts.policy, sidecar.alerts.channels, sidecar.alerts.manager,
sidecar.config.model.

The alert policy (sidecar/alerts/policy.py) on a fake clock: grouping, repeats, resolution, the
cap."""

from __future__ import annotations

import pytest

from sidecar.alerts.channels import AlertChannels
from sidecar.alerts.manager import AlertManager
from sidecar.alerts.policy import AlertPolicy, Level, ThrottleSettings
from sidecar.loop import Loop

from ..clock_double import FakeClock


def run_until(policy: AlertPolicy, clock: FakeClock, end: float) -> list:
    """Step the clock from one due time to the next (as the sidecar's timer does)."""
    sent = []
    while True:
        sent += policy.take_due()
        due = policy.next_due()
        if due is None or due > end:
            clock.now = max(clock.now, end)
            sent += policy.take_due()
            return sent
        clock.now = max(clock.now, due)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_new_condition_waits_group_wait_then_is_told_once(clock: FakeClock) -> None:
    policy = AlertPolicy(ThrottleSettings(group_wait=30), clock=clock)
    policy.raise_condition("worker_crashed/primary", Level.CRITICAL, "worker 3 died",
                           group="pool primary")
    clock.advance(29)
    assert policy.take_due() == []
    policy.raise_condition("spawn_failed/primary", "WARNING", "cannot start", group="pool primary")
    clock.advance(1)
    [note] = policy.take_due()
    assert note.kind == "firing" and note.level is Level.CRITICAL
    assert {c["key"] for c in note.firing} == {"worker_crashed/primary", "spawn_failed/primary"}
    assert note.title.startswith("[CRITICAL] Python3 Module: pool primary")
    clock.advance(60)
    assert policy.take_due() == []


def test_duplicates_are_counted_not_sent_and_repeat_after_repeat_interval(clock: FakeClock) -> None:
    policy = AlertPolicy(ThrottleSettings(group_wait=0, group_interval=300,
                                          repeat_interval=3600), clock=clock)
    policy.raise_condition("k", Level.WARNING, "slow")
    assert len(policy.take_due()) == 1
    for _ in range(5):
        clock.advance(10)
        policy.raise_condition("k", Level.WARNING, "slow again")
    clock.advance(1000)
    assert policy.take_due() == []  # same condition, same level: de-duplicated
    clock.advance(3600 - 1050)
    [repeat] = policy.take_due()
    assert repeat.kind == "repeat" and repeat.firing[0]["occurrences"] == 6
    assert repeat.firing[0]["new"] == 5


def test_an_escalated_level_is_a_change(clock: FakeClock) -> None:
    policy = AlertPolicy(ThrottleSettings(group_wait=0, group_interval=60), clock=clock)
    policy.raise_condition("k", Level.WARNING, "degraded")
    policy.take_due()
    clock.advance(5)
    policy.raise_condition("k", Level.CRITICAL, "down")
    assert policy.take_due() == []      # group-interval not over yet
    clock.advance(55)
    [note] = policy.take_due()
    assert note.level is Level.CRITICAL and note.firing[0]["summary"] == "down"


def test_resolution_is_told_and_the_condition_forgotten(clock: FakeClock) -> None:
    policy = AlertPolicy(ThrottleSettings(group_wait=0, group_interval=10), clock=clock)
    policy.raise_condition("breaker_open/primary", Level.CRITICAL, "breaker open")
    policy.take_due()
    assert policy.resolve("breaker_open/primary", "breaker closed")
    assert not policy.resolve("breaker_open/primary")
    clock.advance(10)
    [note] = policy.take_due()
    assert note.kind == "resolved" and note.resolved[0]["summary"] == "breaker closed"
    assert note.title == "[CRITICAL] Python3 Module: breaker_open/primary: resolved: breaker closed"
    assert policy.firing() == [] and policy.next_due() is None


def test_a_condition_that_fired_and_cleared_between_two_sends_is_still_told(clock) -> None:
    policy = AlertPolicy(ThrottleSettings(group_wait=30), clock=clock)
    policy.raise_condition("worker_crashed/primary", Level.CRITICAL, "worker 1 died")
    clock.advance(1)
    policy.resolve("worker_crashed/primary")
    clock.advance(29)
    [note] = policy.take_due()
    assert note.resolved[0]["key"] == "worker_crashed/primary" and note.level is Level.CRITICAL


def test_storm_of_1000_deaths_in_a_minute_with_the_spec_defaults(clock: FakeClock) -> None:
    policy = AlertPolicy(ThrottleSettings(), clock=clock)   # 10/h, 30 s, 5 min, 4 h
    start = clock.now
    sent = []
    for i in range(1000):  # a death every 60 ms, each followed by its replacement
        clock.now = start + i * 0.06
        sent += run_until(policy, clock, clock.now)
        policy.raise_condition("worker_crashed/primary", Level.CRITICAL, f"worker {i} died",
                               group="pool primary")
        clock.advance(0.03)
        policy.resolve("worker_crashed/primary")
    sent += run_until(policy, clock, start + 3600)
    assert 1 <= len(sent) <= 10
    told = sum(c["new"] for n in sent for c in n.firing + n.resolved)
    assert told == 1000  # grouping folded every death into a few notifications, none lost


def test_storm_hits_max_per_hour_and_the_last_notification_counts_what_was_suppressed(
        clock: FakeClock) -> None:
    policy = AlertPolicy(ThrottleSettings(max_per_hour=10, group_wait=0, group_interval=1,
                                          repeat_interval=14400), clock=clock)
    start = clock.now
    sent = []
    for i in range(1000):
        clock.now = start + i * 0.06
        sent += run_until(policy, clock, clock.now)
        policy.raise_condition("worker_crashed/primary", Level.CRITICAL, f"worker {i} died",
                               group="pool primary")
        clock.advance(0.03)
        policy.resolve("worker_crashed/primary")
    sent += run_until(policy, clock, start + 3599)
    assert len(sent) == 10
    last = sent[-1]
    assert last.kind == "suppressed" and last.suppressed > 0
    assert f"{last.suppressed} notification(s)" in last.body
    # every death is either in a sent notification or counted in the summary
    told = sum(c["new"] for n in sent[:-1] for c in n.firing + n.resolved)
    assert told + last.suppressed_events == 1000
    assert policy.snapshot()["counts"]["suppressed"] == last.suppressed
    # the rolling hour is full until the first send is an hour old
    policy.raise_condition("late", Level.CRITICAL, "one more")
    clock.now = start + 3599.5
    assert policy.take_due() == []          # the hour is full: held back, counted
    clock.now = start + 3600 + 2
    [after] = run_until(policy, clock, clock.now + 1)
    assert after.kind == "suppressed" and after.suppressed == 1
    assert [c["key"] for c in after.firing] == ["late"]   # still firing, so it is shown


def test_next_due_never_points_into_the_past_while_the_hour_is_full(clock: FakeClock) -> None:
    policy = AlertPolicy(ThrottleSettings(max_per_hour=2, group_wait=0, group_interval=1),
                         clock=clock)
    for i in range(5):
        policy.raise_condition(f"k{i}", Level.WARNING, "x")
        policy.take_due()
    clock.advance(100)
    assert len(policy.take_due()) == 1      # the summary takes the last slot
    assert policy.take_due() == []
    policy.raise_condition("k9", Level.WARNING, "x")
    for _ in range(3):
        policy.take_due()
        due = policy.next_due()
        assert due is None or due > clock.now


def test_bad_settings_and_levels_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="max-per-hour"):
        ThrottleSettings(max_per_hour=1)
    with pytest.raises(ValueError, match="group-wait"):
        ThrottleSettings(group_wait=-1)
    with pytest.raises(ValueError, match="'LOUD' is not one of"):
        Level.parse("LOUD")


def test_config_alerts_and_cloudwatch_blocks_in_the_spec_shape() -> None:
    from sidecar.config.model import ConfigError, load

    config = load(text="""
python3:
  alerts:
    enabled: true
    channels:
      - url: "json://127.0.0.1:8080/alerts"
        levels: [WARNING, CRITICAL]
    throttle:
      max-per-hour: 10
      group-wait: 30s
      group-interval: 5m
      repeat-interval: 4h
""")
    alerts = config.python3.alerts
    assert alerts.channels[0].levels == ["WARNING", "CRITICAL"]
    assert (alerts.throttle.group_wait, alerts.throttle.group_interval,
            alerts.throttle.repeat_interval) == (30, 300, 14400)
    assert load().python3.alerts.channels == []          # by default: the log only
    assert load().python3.monitoring.cloudwatch.enabled is False
    with pytest.raises(ConfigError, match=r"alerts.channels.0.levels.0 = 'LOUD'"):
        load(text="python3: {alerts: {channels: [{url: 'json://x', levels: [LOUD]}]}}")
    with pytest.raises(ConfigError, match=r"alerts.throttle.max-per-hour = 1"):
        load(text="python3: {alerts: {throttle: {max-per-hour: 1}}}")
    with pytest.raises(ConfigError, match=r"monitoring.cloudwatch.endpoint = 'http://x'"):
        load(text="python3: {monitoring: {cloudwatch: {endpoint: 'http://x'}}}")


def test_a_channel_url_apprise_cannot_use_is_refused_naming_it() -> None:
    from sidecar.alerts.channels import Channel

    with pytest.raises(ValueError, match=r"python3.alerts.channels.3.url: apprise cannot use "
                       "this nosuchservice:// URL") as err:
        Channel.build("nosuchservice://user:hunter22@host/x", ["CRITICAL"], 3)
    assert "hunter22" not in str(err.value) and "host" not in str(err.value)


def test_the_manager_shows_when_the_policy_is_due_and_when_the_loop_will_ask(clock) -> None:
    loop = Loop(clock=clock)
    policy = AlertPolicy(ThrottleSettings(group_wait=30, repeat_interval=3600), clock=clock)
    manager = AlertManager(loop, policy, AlertChannels([]))
    try:
        assert manager.snapshot()["next_due_in"] is None
        assert manager.snapshot()["timer_in"] is None
        manager.raise_condition("worker_crashed/primary", "CRITICAL", "died", group="pool primary")
        shown = manager.snapshot()
        assert shown["next_due_in"] == pytest.approx(30) and shown["timer_in"] == pytest.approx(30)
        clock.advance(30)
        manager.flush()  # what the loop's timer calls at that time
        shown = manager.snapshot()
        assert shown["counts"]["sent"] == 1
        # still firing: the reminder is next, and the loop's timer is armed for it
        assert shown["next_due_in"] == pytest.approx(3600)
        assert shown["timer_in"] == pytest.approx(3600)
    finally:
        manager.close()
        loop.close()
