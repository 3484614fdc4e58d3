"""Covers: sidecar.routing.route_policy, bridge.protocol, sidecar.routing.quarantine.

sidecar/routing/route_policy.py: what the gateway route is granted (python3.access.routed), and
the relay's mark as bridge/protocol.py validates it. Pure: no sockets, no processes."""

from __future__ import annotations

import pytest

from bridge import protocol
from sidecar.routing.route_policy import (
    ALLOW_TARGETS_KEY,
    DIAG_KEY,
    EXECUTE_KEY,
    PatternError,
    RoutePolicy,
    parse_pattern,
)

MARK = {"route": "message-handler", "project": "plant", "user": "claimed:op1",
        "session": None}


def req(op: str, **members) -> dict:
    return {"v": 1, "id": 1, "op": op, "routed": MARK, **members}


def call(target: str) -> dict:
    return req("call", target=target, args=[])


# (pattern, target, granted)
TARGETS = [
    ("mymodule:predict", "mymodule:predict", True),
    ("mymodule:predict", "mymodule:predict2", False),
    ("mymodule:predict", "mymodule2:predict", False),
    ("mymodule:predict", "mymodule:predict.__globals__", False),
    ("statistics:*", "statistics:mean", True),
    ("statistics:*", "statistics:_sum", False),                    # private: only when spelled
    ("statistics:*", "statistics:random._os.system", False),       # no attribute paths
    ("statistics:*", "statisticsx:mean", False),
    ("plant.models.*", "plant.models.pump:predict", True),         # a module pattern: MODULE:*
    ("plant.models.*", "plant.models.line.pump:predict", True),    # * spans dots in MODULE
    ("plant.models.*", "plant.modelsx:predict", False),
    ("plant.models.*", "plant.models.pump:_private", False),
    ("plant.models.*", "plant.models.pump:Model.fit", False),      # one name after ':'
    ("plant.models.*:Model.*", "plant.models.pump:Model.fit", True),
    ("plant.models.*:Model.*", "plant.models.pump:Model._fit", False),
    ("mymodule:_helper", "mymodule:_helper", True),                # spelled: granted
    ("mymodule:pre*", "mymodule:predict", True),
    ("mymodule:pre?ict", "mymodule:predict", True),
    ("MyModule:f", "mymodule:f", False),                           # case-sensitive
    ("*:*", "os:system", True),                                    # what the operator wrote
]


@pytest.mark.parametrize("pattern, target, granted", TARGETS,
                         ids=[f"{p} {t}" for p, t, _ in TARGETS])
def test_call_targets_follow_the_patterns(pattern: str, target: str, granted: bool) -> None:
    policy = RoutePolicy((pattern,))
    assert (policy.refusal(call(target)) is None) is granted
    assert policy.target_allowed(target) is granted  # the remembered decision agrees


def test_defaults_grant_only_ping_and_health() -> None:
    policy = RoutePolicy()
    assert policy.allow_targets == () and not policy.execute and not policy.diag
    assert policy.refusal(req("ping")) is None
    assert policy.refusal(req("health")) is None
    for request in (req("execute", code="1"), call("statistics:mean"),
                    req("diag", command="config"), req("breaker", command="open"),
                    req("quarantine", action="clear")):
        assert policy.refusal(request) is not None, request["op"]


def test_execute_and_diag_are_granted_by_their_keys() -> None:
    policy = RoutePolicy(execute=True, diag=True)
    assert policy.refusal(req("execute", code="import os")) is None
    for op in ("diag", "breaker", "quarantine"):
        assert policy.refusal(req(op)) is None
    assert policy.refusal(call("os:getuid")) is not None  # execute does not list targets


@pytest.mark.parametrize("request_, key, advice", [
    (call("os:getuid"), ALLOW_TARGETS_KEY, "to include 'os:getuid'"),
    (req("execute", code="import os"), EXECUTE_KEY, "to true"),
    (req("diag", command="config"), DIAG_KEY, "to true"),
    (req("breaker", command="open"), DIAG_KEY, "py3sidecar diag|breaker|quarantine"),
], ids=["call", "execute", "diag", "breaker"])
def test_a_refusal_names_the_setting_to_change(request_: dict, key: str, advice: str) -> None:
    message = RoutePolicy().refusal(request_)
    assert message is not None and f"set {key}" in message and advice in message, message
    assert "message-handler route of project 'plant'" in message, message


def test_an_execute_refusal_never_shows_the_code() -> None:
    message = RoutePolicy().refusal(req("execute", code="import os; os.getuid()  # s3cr3t"))
    assert message is not None and "s3cr3t" not in message and "getuid" not in message


def test_patterns_are_compiled_once_and_decisions_remembered() -> None:
    policy = RoutePolicy(("statistics:*",))
    assert [p.text for p in policy.patterns] == ["statistics:*"]
    assert policy.target_allowed("statistics:mean")
    assert policy.decided == {"statistics:mean": True}
    policy.patterns = ()  # a remembered decision does not look at the patterns again
    assert policy.target_allowed("statistics:mean")
    assert not policy.target_allowed("statistics:median")


@pytest.mark.parametrize("text", ["", "  ", "m:", ":f", "m:f:g", "m:a..b", "m :f", "m:f.", 3,
                                  None])
def test_a_pattern_that_cannot_match_a_target_is_refused(text) -> None:
    with pytest.raises(PatternError):
        parse_pattern(text)


def test_a_pattern_error_says_what_to_write() -> None:
    with pytest.raises(PatternError, match="'module:function'"):
        parse_pattern("m:f:g")


# ---------------------------------------------------------------- the mark (bridge/protocol.py)
def validate(request: dict) -> dict:
    return protocol.validate_request(request, max_timeout=3600)


def test_a_well_formed_mark_passes_validation() -> None:
    assert validate(call("statistics:mean"))["routed"] == MARK
    assert validate(req("ping", routed={"route": "message-handler"}))


@pytest.mark.parametrize("routed", [
    "message-handler", ["message-handler"], {}, {"route": None}, {"route": 1},
    {"route": "message-handler", "roles": ["admin"]},               # only the four members
    {"route": "message-handler", "user": {"name": "x"}},
    {"route": "message-handler", "user": "x" * 257},
    {"route": "message-handler", "project": 5},
], ids=repr)
def test_a_malformed_mark_is_bad_request(routed) -> None:
    with pytest.raises(protocol.BadRequest, match="routed"):
        validate(req("ping", routed=routed))


def test_forbidden_is_a_kind_with_its_exception() -> None:
    assert protocol.FORBIDDEN in protocol.ERROR_KINDS
    exc = protocol.exception_from_error(protocol.error("forbidden", "set it"))
    assert isinstance(exc, protocol.Forbidden) and exc.kind == "forbidden"


def test_the_mark_is_not_part_of_a_quarantine_fingerprint() -> None:
    """A poison request is the same whoever relays it (sidecar/routing/quarantine.py)."""
    from sidecar.routing.quarantine import fingerprint

    plain = {"v": 1, "id": 1, "op": "execute", "code": "import os"}
    key = b"k" * 16
    assert fingerprint(plain, key) == fingerprint({**plain, "id": 2, "routed": MARK}, key)
    assert fingerprint(plain, key) != fingerprint({**plain, "code": "import sys"}, key)
