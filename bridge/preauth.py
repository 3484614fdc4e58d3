"""A bounded look at a request envelope before its token has been checked.

Owns: finding the top-level ``token`` (and a short ``id``) in an encoded msgpack envelope by
walking its headers, with a fixed budget of values, without building any value. Must not touch:
the envelope's meaning beyond those two keys (``protocol``), sockets, the full decoder
(``codec``).

Why: decoding a whole envelope before the token is known lets anyone who can connect make the
sidecar build millions of objects (a 16 MiB frame of empty maps is 16M dicts, 1 GiB of RSS and
seconds of a stalled loop). Walking headers costs one step per value; a string, bytes or an
extension value of any size is one step (its length is in its header). Until the token is
found, at most ``ELEMENT_BUDGET`` values are stepped over, so an unauthenticated frame costs
the loop a bounded, small amount of work whatever it holds. Clients therefore send ``token``
before large members (the CPython client and the Jython library put it first).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

#: Values (of any kind, nested ones included) the walk may step over before it finds the token.
ELEMENT_BUDGET = 4096
#: Top-level members looked at; an envelope has about ten.
MAX_MEMBERS = 64
#: A token longer than this is wrong without being compared (the sidecar's is 43 characters).
MAX_TOKEN_BYTES = 1024
#: The longest string ``id`` echoed in a reply to an unauthenticated request.
MAX_ECHOED_ID = 64

# Header byte -> (bytes of length field, fixed extra bytes) for strings, bytes and extensions;
# their payload is skipped in one step whatever its size.
_RAW = {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0),          # bin 8/16/32
        0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),          # ext 8/16/32 (+ type byte)
        0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0)}          # str 8/16/32
# Header byte -> total size of a fixed-size value.
_FIXED = {0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9,
          0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9, 0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18}
_STR_HEADERS = {0xD9: 1, 0xDA: 2, 0xDB: 4}


class Unreadable(ValueError):
    """The frame is not a msgpack value (or is cut short); the message says where."""


class OverBudget(Exception):
    """More values than ``ELEMENT_BUDGET`` came before the token."""


@dataclass(frozen=True)
class EnvelopeHead:
    """What the walk found: the token's bytes (None: no string token), a short id."""

    token: bytes | None
    request_id: int | str | None
    over_budget: bool = False

    def token_matches(self, expected: bytes) -> bool:
        # compare_digest on bytes: constant time in the token's content.
        return self.token is not None and hmac.compare_digest(self.token, expected)


def _length(data: bytes, pos: int, size: int) -> int:
    if pos + size > len(data):
        raise Unreadable(f"the frame ends inside a header at byte {pos}")
    return int.from_bytes(data[pos:pos + size], "big")


def skip_values(data: bytes, pos: int, count: int, budget: int) -> tuple[int, int]:
    """Step over ``count`` consecutive values from ``pos``; return (new position, budget left).

    Raises ``OverBudget`` once more than ``budget`` values were stepped over, ``Unreadable``
    for a byte that starts no msgpack value or a frame cut short.
    """
    end = len(data)
    pending = count
    while pending:
        if pos >= end:
            raise Unreadable(f"the frame ends at byte {end} where a value was expected")
        budget -= 1
        if budget < 0:
            raise OverBudget()
        pending -= 1
        b = data[pos]
        if b <= 0x7F or b >= 0xE0:              # fixint
            pos += 1
        elif b <= 0x8F:                          # fixmap: keys and values follow
            pending += 2 * (b & 0x0F)
            pos += 1
        elif b <= 0x9F:                          # fixarray
            pending += b & 0x0F
            pos += 1
        elif b <= 0xBF:                          # fixstr
            pos += 1 + (b & 0x1F)
        elif b in _FIXED:
            pos += _FIXED[b]
        elif b in _RAW:
            size, extra = _RAW[b]
            pos += 1 + size + extra + _length(data, pos + 1, size)
        elif b in (0xDC, 0xDD):                  # array 16/32
            size = 2 if b == 0xDC else 4
            pending += _length(data, pos + 1, size)
            pos += 1 + size
        elif b in (0xDE, 0xDF):                  # map 16/32
            size = 2 if b == 0xDE else 4
            pending += 2 * _length(data, pos + 1, size)
            pos += 1 + size
        else:  # 0xC1 is never used by msgpack
            raise Unreadable(f"byte 0x{b:02x} at position {pos} starts no msgpack value")
    if pos > end:
        raise Unreadable(f"the frame ends before the value that starts before byte {end}")
    return pos, budget


def _str_at(data: bytes, pos: int, limit: int) -> tuple[bytes | None, int]:
    """The bytes of the string at ``pos`` if it is one of at most ``limit`` bytes, else None;
    and where the value ends (only meaningful for strings: callers skip anything else)."""
    b = data[pos] if pos < len(data) else -1
    if 0xA0 <= b <= 0xBF:
        start, length = pos + 1, b & 0x1F
    elif b in _STR_HEADERS:
        size = _STR_HEADERS[b]
        start, length = pos + 1 + size, _length(data, pos + 1, size)
    else:
        return None, pos
    if start + length > len(data):
        raise Unreadable(f"the frame ends inside the string at byte {pos}")
    return (data[start:start + length] if length <= limit else None), start + length


_INT_SIZES = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}


def _short_id(data: bytes, pos: int) -> int | str | None:
    b = data[pos] if pos < len(data) else -1
    if b <= 0x7F and b >= 0:
        return b
    if b >= 0xE0:
        return b - 0x100
    if b in _INT_SIZES:
        size = _INT_SIZES[b]
        if pos + 1 + size > len(data):
            return None
        return int.from_bytes(data[pos + 1:pos + 1 + size], "big", signed=b >= 0xD0)
    text, _ = _str_at(data, pos, MAX_ECHOED_ID)
    if text is None:
        return None  # a long or odd id is dropped, never echoed before authentication
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        return None


_TOKEN_KEY = b"\xa5token"  # "token" as a fixstr: how every msgpack encoder writes it
_FAST_WINDOW = 128


def token_near_start_matches(data: bytes, expected: bytes) -> bool:
    """The hot path: our clients put ``token`` among the first members, so a correct token is
    found by looking for its key in the first bytes, without walking. A hit inside some other
    value cannot let anyone in: it would have to hold the right token, and ``dispatch`` checks
    the decoded envelope's own token again. A miss falls back to ``peek_envelope``."""
    at = data.find(_TOKEN_KEY, 0, _FAST_WINDOW)
    if at < 0:
        return False
    try:
        token, _ = _str_at(data, at + len(_TOKEN_KEY), MAX_TOKEN_BYTES)
    except Unreadable:
        return False
    return token is not None and hmac.compare_digest(token, expected)


def peek_envelope(data: bytes) -> EnvelopeHead:
    """Find the top-level ``token`` and a short ``id`` of an encoded envelope, boundedly.

    Raises ``Unreadable`` when the frame is not msgpack at all. A frame that is not a map, or
    whose token is missing, not a string or too long, comes back with ``token=None``.
    """
    if not data:
        raise Unreadable("the frame is empty")
    b = data[0]
    if 0x80 <= b <= 0x8F:
        count, pos = b & 0x0F, 1
    elif b in (0xDE, 0xDF):
        size = 2 if b == 0xDE else 4
        count, pos = _length(data, 1, size), 1 + size
    else:
        if b == 0xC1:
            raise Unreadable("byte 0xc1 at position 0 starts no msgpack value")
        return EnvelopeHead(None, None)  # a value, but not a map: no token in it
    budget = ELEMENT_BUDGET
    token: bytes | None = None
    request_id: int | str | None = None
    found_token = False
    try:
        for _ in range(min(count, MAX_MEMBERS)):
            key, value_at = _str_at(data, pos, 16)
            if key is None:  # not a short string key: never "token" or "id"
                value_at, budget = skip_values(data, pos, 1, budget)
            if key == b"token":
                token, _ = _str_at(data, value_at, MAX_TOKEN_BYTES)
                found_token = True
            elif key == b"id":
                request_id = _short_id(data, value_at)
            if found_token and request_id is not None:
                break
            pos, budget = skip_values(data, value_at, 1, budget)
    except OverBudget:
        return EnvelopeHead(token, request_id, over_budget=not found_token)
    return EnvelopeHead(token, request_id)
