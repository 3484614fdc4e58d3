"""Covers: sidecar.http.actions.

The console's sessions: they expire and are bounded."""

from __future__ import annotations

from sidecar.http.actions import SESSION_TTL, Sessions


def test_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    sessions = Sessions(clock=lambda: now[0])
    sid, csrf = sessions.create()
    assert sessions.csrf_of(sid) == csrf and sessions.csrf_of("forged") is None
    now[0] += SESSION_TTL + 1
    assert sessions.csrf_of(sid) is None
    ids = [sessions.create()[0] for _ in range(70)]
    assert len(sessions.by_id) == 64 and sessions.csrf_of(ids[-1]) is not None
