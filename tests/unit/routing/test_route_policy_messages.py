"""Covers: sidecar.routing.route_policy.

The route policy's refusals and pattern errors word for word (an operator acts on them), the
``module:function`` split of a target and the bound of the remembered decisions."""

from __future__ import annotations

import pytest

from sidecar.routing import route_policy as rp
from sidecar.routing.route_policy import PatternError, RoutePolicy, parse_pattern

MARK = {"route": "message-handler", "project": "plant"}


def refusal(policy: RoutePolicy, op: str, routed=MARK, **members) -> str | None:
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
