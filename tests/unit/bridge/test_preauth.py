"""Covers: bridge.preauth.

The bounded pre-authentication walk (bridge/preauth.py): it finds the token and a short id
without building values, and gives up after a fixed number of values."""

import msgpack
import pytest

from bridge import preauth
from bridge.preauth import (
    ELEMENT_BUDGET,
    MAX_ECHOED_ID,
    OverBudget,
    Unreadable,
    peek_envelope,
    skip_values,
    token_near_start_matches,
)


def test_token_and_id_are_found_without_decoding_large_members():
    data = msgpack.packb({"op": "execute", "code": "x" * 1_000_000, "vars": {"b": b"y" * 10**6},
                          "id": 7, "token": "secret"})
    head = peek_envelope(data)
    assert head.token == b"secret" and head.request_id == 7 and not head.over_budget
    assert head.token_matches(b"secret") and not head.token_matches(b"secreT")


@pytest.mark.parametrize("envelope, expected", [
    ({"id": 12345678901, "token": "t"}, 12345678901),
    ({"id": -5, "token": "t"}, -5),
    ({"id": "short-id", "token": "t"}, "short-id"),
    ({"id": "x" * (MAX_ECHOED_ID + 1), "token": "t"}, None),  # long ids are never echoed
    ({"id": [1, 2], "token": "t"}, None),
])
def test_only_short_ids_are_kept(envelope, expected):
    assert peek_envelope(msgpack.packb(envelope)).request_id == expected


def test_many_values_before_the_token_stop_the_walk():
    hostile = msgpack.packb({"op": "execute", "vars": [{}] * (ELEMENT_BUDGET * 4),
                             "token": "secret"})
    head = peek_envelope(hostile)
    assert head.over_budget and head.token is None
    within = msgpack.packb({"vars": list(range(ELEMENT_BUDGET // 2)), "token": "secret"})
    assert peek_envelope(within).token == b"secret"


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x81\xa5token", b"\x81\xa5token\xa5ab",
                                  b"\x81\xc1\x00"])
def test_junk_is_unreadable(data):
    with pytest.raises(Unreadable):
        peek_envelope(data)


@pytest.mark.parametrize("value", [[1, 2, 3], "text", 5, None])
def test_a_value_that_is_not_a_map_has_no_token(value):
    head = peek_envelope(msgpack.packb(value))
    assert head.token is None and not head.over_budget


@pytest.mark.parametrize("token", [123, b"secret", ["secret"], "s" * 5000])
def test_a_token_that_is_not_a_short_string_never_matches(token):
    head = peek_envelope(msgpack.packb({"id": 1, "token": token}))
    assert not head.token_matches(b"secret")


def test_the_fast_path_finds_a_token_sent_first_and_nothing_else():
    first = msgpack.packb({"v": 1, "id": 9, "token": "secret", "code": "x" * 10_000})
    assert token_near_start_matches(first, b"secret")
    assert not token_near_start_matches(first, b"secreX")
    late = msgpack.packb({"code": "x" * 10_000, "token": "secret"})
    assert not token_near_start_matches(late, b"secret")  # the walk handles it instead
    assert peek_envelope(late).token_matches(b"secret")
    assert not token_near_start_matches(b"\x81\xa5token\xd9", b"secret")  # cut short


def count_values(value) -> int:
    """How many msgpack values ``value`` is made of (itself and everything inside)."""
    if isinstance(value, msgpack.ExtType):  # a namedtuple, but one value on the wire
        return 1
    if isinstance(value, dict):
        return 1 + sum(count_values(k) + count_values(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 1 + sum(count_values(v) for v in value)
    return 1


VALUES = {
    "fixint": 5, "fixint 127": 127, "negative fixint": -1, "negative fixint -32": -32,
    "nil": None, "false": False, "true": True, "float64": 1.5,
    "uint8": 200, "uint16": 60_000, "uint32": 4_000_000_000, "uint64": 2**64 - 1,
    "int8": -100, "int16": -30_000, "int32": -2_000_000_000, "int64": -(2**63),
    "fixstr": "abc", "fixstr 31": "s" * 31, "str8": "s" * 32, "str16": "s" * 256,
    "str32": "s" * 65_536,
    "bin8": b"b" * 3, "bin16": b"b" * 256, "bin32": b"b" * 65_536,
    "fixext1": msgpack.ExtType(1, b"x"), "fixext2": msgpack.ExtType(1, b"xy"),
    "fixext4": msgpack.ExtType(1, b"x" * 4), "fixext8": msgpack.ExtType(1, b"x" * 8),
    "fixext16": msgpack.ExtType(1, b"x" * 16), "ext8": msgpack.ExtType(2, b"x" * 3),
    "ext16": msgpack.ExtType(2, b"x" * 256), "ext32": msgpack.ExtType(2, b"x" * 65_536),
    "fixarray": [1, "a", None], "fixarray 15": list(range(15)),
    "array16": list(range(16)), "array32": [0] * 65_536,
    "fixmap": {"a": 1, "b": [2, 3]}, "fixmap 15": {str(i): i for i in range(15)},
    "map16": {str(i): i for i in range(16)}, "map32": {i: None for i in range(65_536)},
    "nested": {"a": [{"b": [1, {"c": b"d"}]}, []], "e": {}},
    "empty map": {}, "empty array": [],
}


@pytest.mark.parametrize("name", list(VALUES))
def test_each_value_is_stepped_over_exactly_at_one_unit_per_value(name):
    value = VALUES[name]
    packed = msgpack.packb(value)
    cost = count_values(value)
    assert skip_values(packed + b"\xc0tail", 0, 1, cost + 10) == (len(packed), 10)
    assert skip_values(b"\x00" + packed, 1, 1, cost) == (1 + len(packed), 0)  # just enough
    with pytest.raises(OverBudget):
        skip_values(packed, 0, 1, cost - 1)


def test_float32_and_several_values_in_a_row():
    float32 = msgpack.packb(1.5, use_single_float=True)
    assert float32[0] == 0xCA and skip_values(float32, 0, 1, 1) == (5, 0)
    row = msgpack.packb(1) + msgpack.packb("two") + msgpack.packb([3, 4])
    assert skip_values(row, 0, 3, 10) == (len(row), 5)
    assert skip_values(row, 0, 0, 10) == (0, 10)


@pytest.mark.parametrize("name", ["uint16", "str8", "str16", "bin8", "ext8", "fixext4",
                                  "array16", "map16", "float64", "fixstr"])
def test_a_value_cut_short_anywhere_is_unreadable(name):
    packed = msgpack.packb(VALUES[name])
    for cut in range(1, len(packed)):
        with pytest.raises(Unreadable):
            skip_values(packed[:cut], 0, 1, 1_000_000)


def test_unreadable_says_where():
    with pytest.raises(Unreadable) as info:
        skip_values(b"\x92\x01", 0, 1, 10)
    assert str(info.value) == "the frame ends at byte 2 where a value was expected"
    with pytest.raises(Unreadable) as info:
        skip_values(b"\x00\xda\x00", 1, 1, 10)
    assert str(info.value) == "the frame ends inside a header at byte 2"
    with pytest.raises(Unreadable) as info:
        skip_values(b"\xa5ab", 0, 1, 10)
    assert str(info.value) == "the frame ends before the value that starts before byte 3"
    with pytest.raises(Unreadable) as info:
        skip_values(b"\x00\x00\xc1", 0, 3, 10)
    assert str(info.value) == "byte 0xc1 at position 2 starts no msgpack value"


@pytest.mark.parametrize(("packed", "expected"), [
    (b"\x00", 0), (b"\x7f", 127), (b"\xff", -1), (b"\xe0", -32),
    (b"\xcc\xff", 255), (b"\xcd\x01\x00", 256), (b"\xce\x00\x01\x00\x00", 65536),
    (b"\xcf" + (2**40).to_bytes(8, "big"), 2**40),
    (b"\xd0\xff", -1), (b"\xd1\xff\x00", -256), (b"\xd2\xff\xff\xff\xfe", -2),
    (b"\xd3" + (-(2**40)).to_bytes(8, "big", signed=True), -(2**40)),
    (b"\xa2id", "id"), (b"\xd9\x03abc", "abc"), (b"\xa0", ""),
    (b"\xcd\x01", None),  # cut short
    (b"\xa2\xff\xfe", None),  # not UTF-8: dropped, never echoed
    (b"\xc0", None), (b"\xc3", None), (b"\x90", None),
])
def test_short_ids_of_every_kind(packed, expected):
    found = preauth._short_id(b"\x00" + packed, 1)
    assert found == expected and type(found) is type(expected)
    if expected is not None:  # and so through the walk
        assert peek_envelope(b"\x81\xa2id" + packed).request_id == expected
    assert preauth._short_id(packed, len(packed)) is None  # nothing there


def test_the_longest_echoed_id():
    ok = "i" * preauth.MAX_ECHOED_ID
    assert peek_envelope(msgpack.packb({"id": ok})).request_id == ok
    assert peek_envelope(msgpack.packb({"id": ok + "i"})).request_id is None


def test_map16_and_map32_envelopes_are_walked():
    members = {f"k{i}": i for i in range(20)}
    envelope = msgpack.packb({**members, "id": 3, "token": "secret"})
    assert envelope[0] == 0xDE
    head = peek_envelope(envelope)
    assert (head.token, head.request_id, head.over_budget) == (b"secret", 3, False)
    map32 = b"\xdf\x00\x00\x00\x02" + msgpack.packb("id")[0:] + b"\x07" + b"\xa5token\xa1t"
    assert peek_envelope(map32) == preauth.EnvelopeHead(b"t", 7)
    with pytest.raises(Unreadable):
        peek_envelope(b"\xde\x00")


def test_only_the_first_members_are_looked_at():
    members = {f"m{i:02d}": 0 for i in range(preauth.MAX_MEMBERS)}
    late = msgpack.packb({**members, "token": "secret"})
    assert peek_envelope(late).token is None
    early = msgpack.packb({**dict(list(members.items())[:-1]), "token": "secret"})
    assert peek_envelope(early).token == b"secret"


def test_keys_that_are_not_short_strings_are_stepped_over():
    envelope = msgpack.packb({1: "x", b"token": "no", "k" * 17: "long key", ("a",): 1,
                              "token": "secret", "id": 4}, use_bin_type=True)
    assert peek_envelope(envelope) == preauth.EnvelopeHead(b"secret", 4)


def test_the_walk_stops_once_token_and_id_are_found():
    # Junk after both would be Unreadable if the walk went on: it must not.
    found = b"\x83\xa5token\xa1t\xa2id\x01\xc1"
    assert peek_envelope(found) == preauth.EnvelopeHead(b"t", 1)
    only_token = b"\x82\xa5token\xa1t\xa1x\xc1"
    with pytest.raises(Unreadable):
        peek_envelope(only_token)


def test_over_budget_is_reported_only_when_the_token_was_not_found():
    many = list(range(preauth.ELEMENT_BUDGET * 2))
    before = peek_envelope(msgpack.packb({"id": 5, "vars": many, "token": "secret"}))
    assert (before.token, before.request_id, before.over_budget) == (None, 5, True)
    after = peek_envelope(msgpack.packb({"token": "secret", "vars": many, "id": 5}))
    assert (after.token, after.request_id, after.over_budget) == (b"secret", None, False)


def test_a_token_at_the_length_limit_and_beyond():
    at_limit = "t" * preauth.MAX_TOKEN_BYTES
    assert peek_envelope(msgpack.packb({"token": at_limit})).token == at_limit.encode()
    assert peek_envelope(msgpack.packb({"token": at_limit + "t"})).token is None


def test_a_frame_that_is_no_map_or_is_empty():
    assert peek_envelope(b"\x01") == preauth.EnvelopeHead(None, None)
    with pytest.raises(Unreadable) as info:
        peek_envelope(b"")
    assert str(info.value) == "the frame is empty"
    with pytest.raises(Unreadable) as info:
        peek_envelope(b"\xc1")
    assert str(info.value) == "byte 0xc1 at position 0 starts no msgpack value"
    with pytest.raises(Unreadable) as info:
        peek_envelope(b"\x81\xa5token\xd9\x09abc")
    assert str(info.value) == "the frame ends inside the string at byte 7"


def test_the_fast_path_looks_only_at_the_first_bytes():
    pad = "p" * (preauth._FAST_WINDOW - 20)
    near = msgpack.packb({"pad": pad, "token": "secret"})
    assert near.find(b"\xa5token") < preauth._FAST_WINDOW
    assert preauth.token_near_start_matches(near, b"secret")
    far = msgpack.packb({"pad": pad + "p" * 40, "token": "secret"})
    assert far.find(b"\xa5token") >= preauth._FAST_WINDOW
    assert not preauth.token_near_start_matches(far, b"secret")
    str8_token = msgpack.packb({"token": "s" * 40})
    assert preauth.token_near_start_matches(str8_token, b"s" * 40)
    assert not preauth.token_near_start_matches(msgpack.packb({"token": 5}), b"5")
    assert not preauth.token_near_start_matches(msgpack.packb({"token": "s" * 2000}),
                                                b"s" * 2000)


def test_token_matches_only_the_exact_bytes():
    head = preauth.EnvelopeHead(b"secret", 1)
    assert head.token_matches(b"secret")
    assert not head.token_matches(b"secret2") and not head.token_matches(b"")
    assert not preauth.EnvelopeHead(None, 1).token_matches(b"")


def test_a_header_that_ends_exactly_at_the_end_of_the_frame_is_whole():
    assert skip_values(b"\xda\x00\x00", 0, 1, 5) == (3, 4)  # an empty str16
    assert skip_values(b"\xdc\x00\x00", 0, 1, 5) == (3, 4)  # an empty array16


@pytest.mark.parametrize("name", ["array16", "map16", "array32", "map32"])
def test_a_long_container_adds_to_what_is_pending(name):
    packed = msgpack.packb(VALUES[name])
    row = packed + b"\x07"
    cost = count_values(VALUES[name]) + 1
    assert skip_values(row, 0, 2, cost) == (len(row), 0)


def test_an_id_that_is_a_map_or_array_is_dropped():
    assert preauth._short_id(b"\x80", 0) is None
    assert preauth._short_id(b"\x90", 0) is None


def test_the_longest_fixstr_token_and_a_fifteen_member_fixmap():
    token = "t" * 31
    assert peek_envelope(msgpack.packb({"token": token})).token == token.encode()
    members = {f"k{i}": i for i in range(14)}
    envelope = msgpack.packb({**members, "token": "secret"})
    assert envelope[0] == 0x8F and peek_envelope(envelope).token == b"secret"


def test_a_map16_envelope_is_walked_to_its_last_member_and_no_further():
    members = {f"k{i}": i for i in range(20)}
    envelope = msgpack.packb({**members, "token": "secret"})
    assert envelope[0] == 0xDE
    assert peek_envelope(envelope) == preauth.EnvelopeHead(b"secret", None)


def test_the_fast_path_takes_the_first_token_key_even_at_the_very_start():
    assert preauth.token_near_start_matches(b"\xa5token\xa6secret", b"secret")
    envelope = msgpack.packb({"token": "secret", "x": b"\xa5token\xa5wrong"},
                             use_bin_type=True)
    assert preauth.token_near_start_matches(envelope, b"secret")
