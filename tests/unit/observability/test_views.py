"""Covers: sidecar.observability.views.

The views' pure parts: the alert state kept by key."""

from sidecar.observability.views import alert_state


def test_alert_state_keeps_open_conditions_by_key():
    records = [{"key": "a", "level": "CRITICAL", "title": "worker died"},
               {"key": "b", "level": "WARNING", "title": "memory high"},
               {"key": "a", "level": "CRITICAL", "title": "worker died", "resolved": True}]
    state = alert_state(records)
    assert (state["level"], state["active"]) == ("WARNING", 1)
    assert state["last"]["resolved"] is True
    assert alert_state([]) == {"level": "OK", "active": 0, "last": None}
