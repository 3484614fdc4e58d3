"""Covers: sidecar.pool.events.

Pool events reach the handler for their type; other types are ignored; a handler keyed by a
type that is no pool event is refused when the listener is wired.
"""

from __future__ import annotations

import pytest

from sidecar.pool import events


def test_each_event_reaches_its_handler_only():
    seen = []
    listener = events.route({events.PoolResized: seen.append})
    resized = events.PoolResized("primary", 2, 3, "load")
    listener(resized)
    listener(events.RestartLimit("primary", 5, 60.0))
    listener("not an event")
    assert seen == [resized]


def test_a_handler_for_something_else_is_refused_at_wiring():
    with pytest.raises((TypeError, ValueError)):
        events.route({dict: print})


def test_events_are_frozen():
    event = events.RestartLimit("primary", 5, 60.0)
    with pytest.raises(AttributeError):
        event.restarts = 6  # type: ignore[misc]
