"""Covers: sidecar.routing.route_policy, bridge.protocol, sidecar.routing.quarantine.

sidecar/routing/route_policy.py: what the gateway route is granted (python3.access.routed), and
the relay's mark as bridge/protocol.py validates it. Pure: no sockets, no processes."""

from __future__ import annotations

import pytest

from bridge import protocol
from sidecar.routing import route_policy as rp
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


# ---------------------------------------------------------------- exact outputs (mutation)
ROUTED = {"route": "message-handler", "project": "plant"}


def refusal(policy: RoutePolicy, op: str, routed=ROUTED, **members) -> str | None:
    return policy.refusal({"op": op, "routed": routed, **members})


def test_a_call_refusal_word_for_word():
    assert refusal(RoutePolicy(), "call", target="os:system") == (
        "the call of 'os:system' came through the message-handler route of project 'plant', "
        "and python3.access.routed.allow-targets does not list it; set "
        "python3.access.routed.allow-targets to include 'os:system' in the sidecar's config, "
        "or call it from a gateway script")


def test_a_call_without_a_string_target_is_refused():
    policy = RoutePolicy(allow_targets=("*",))
    assert refusal(policy, "call", target=None).startswith("the call of None came through")
    assert refusal(policy, "call", target="m:f") is None


def test_an_execute_refusal_word_for_word():
    assert refusal(RoutePolicy(), "execute") == (
        "execute came through the message-handler route of project 'plant': running code sent "
        "by a client is off for that route; set python3.access.routed.execute to true in the "
        "sidecar's config (anyone who can open a client of that project can then run any "
        "Python as the sidecar's user), or list the functions clients need in "
        "python3.access.routed.allow-targets")
    assert refusal(RoutePolicy(execute=True), "execute") is None


@pytest.mark.parametrize("op", ["diag", "breaker", "quarantine"])
def test_a_diag_refusal_word_for_word(op):
    assert refusal(RoutePolicy(), op) == (
        f"the {op} op came through the message-handler route of project 'plant': diagnostics "
        "and operator ops are off for that route; set python3.access.routed.diag to true in "
        "the sidecar's config, or use `py3sidecar diag|breaker|quarantine` on the sidecar's "
        "host")
    assert refusal(RoutePolicy(diag=True), op) is None


def test_an_unknown_op_is_not_offered():
    assert refusal(RoutePolicy(execute=True, diag=True), "stats") == (
        "the op 'stats' is not offered to the message-handler route of project 'plant'")


@pytest.mark.parametrize(("routed", "name"), [
    (None, "the gateway route"),
    ("message-handler", "the gateway route"),
    ({}, "the a relay route"),
    ({"route": "", "project": ""}, "the a relay route"),
    ({"route": "perspective"}, "the perspective route"),
    ({"project": "p1"}, "the a relay route of project 'p1'"),
])
def test_the_route_is_named(routed, name):
    shown = refusal(RoutePolicy(), "nope", routed=routed)
    assert shown == f"the op 'nope' is not offered to {name}"


@pytest.mark.parametrize("text", [None, 3, "", "   "])
def test_not_a_pattern_word_for_word(text):
    with pytest.raises(PatternError) as err:
        parse_pattern(text)
    assert str(err.value) == (f"{text!r} is not a target pattern; write 'module:function', "
                              "'package.module:*' or 'package.*'")


@pytest.mark.parametrize("text", [":f", "a b:f", "m:f:g"])
def test_a_bad_module_part_word_for_word(text):
    with pytest.raises(PatternError) as err:
        parse_pattern(text)
    assert str(err.value) == (f"{text!r}: expected 'module:function' (one ':', no spaces), "
                              "e.g. 'mymodule:predict' or 'plant.models.*'")


@pytest.mark.parametrize(("text", "function"), [("m:", ""), ("m:a..b", "a..b"),
                                                ("m:a. b", "a. b")])
def test_a_bad_function_part_word_for_word(text, function):
    with pytest.raises(PatternError) as err:
        parse_pattern(text)
    assert str(err.value) == (f"{text!r}: the function part {function!r} has an empty or "
                              "spaced name; write e.g. 'mymodule:Model.predict' or "
                              "'mymodule:*'")


def test_a_pattern_keeps_its_text_and_stands_for_module_star():
    pattern = parse_pattern(" plant.* ")
    assert pattern.text == " plant.* "
    assert pattern.matches("plant.models", ["predict"])
    assert not pattern.matches("plant.models", ["_private"])
    assert [private for _, private in parse_pattern("m:_a.b").names] == [True, False]


def test_a_target_splits_at_its_first_colon():
    policy = RoutePolicy(allow_targets=("a.b:c.d",))
    assert policy.target_allowed("a.b:c.d")
    assert not policy.target_allowed("a.b:c.d:e")
    assert not policy.target_allowed("a.b:c")
    assert RoutePolicy(allow_targets=("a:b",)).target_allowed("a:b:c") is False
    assert RoutePolicy(allow_targets=("*:c",)).target_allowed("a:b:c") is False


def test_the_decisions_are_cleared_when_the_bound_is_reached(monkeypatch):
    monkeypatch.setattr(rp, "_CACHE_LIMIT", 3)
    policy = RoutePolicy(allow_targets=("m:*",))
    for name in ("a", "b", "c"):
        policy.target_allowed(f"m:{name}")
    assert len(policy.decided) == 3
    assert policy.target_allowed("m:d") is True
    assert policy.decided == {"m:d": True}
    assert policy.target_allowed("x:y") is False
    assert policy.decided == {"m:d": True, "x:y": False}
    assert policy.target_allowed("x:y") is False
