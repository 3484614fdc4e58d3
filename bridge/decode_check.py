"""Where a msgpack value that failed to decode sat, and why (the slow path after a failure).

Owns: walking encoded msgpack bytes header by header to find the first value that cannot be
decoded (truncated data, the reserved byte 0xc1, invalid UTF-8, a container used as a map key,
a malformed or out-of-range timestamp, an extension its converter refuses) and naming its
position, e.g. ``vars['v']`` or ``args[0][2]``. Must not touch: the extension types' meaning
(``codec`` passes its converter in), the envelope's meaning, sockets, processes.

The fast path stays msgpack's C decoder (``codec.unpackb``/``unpack_raw``); only when it raises
does this module walk the same bytes again, in Python, to explain the failure. The walk is
linear in the size of the data, recursion is capped and the number of values it looks at is
capped (``budget``: the sidecar's loop thread explains with a small one), so a hostile frame
cannot stall the loop.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgpack

MAX_DEPTH = 400  # below Python's recursion limit; msgpack's own C stack allows 1024 levels
TIMESTAMP = -1
MAX_KEY_SHOWN = 40  # characters of one key in a path
MAX_PATH_SHOWN = 200

Convert = Callable[[int, bytes], Any]


class DecodeError(ValueError):
    """A value that cannot be decoded; ``path`` names its position, ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or 'the value'} cannot be decoded: {reason}")
        self.path = path
        self.reason = reason


class _OutOfBudget(Exception):
    """The walk looked at as many values as it may: the position stays unnamed."""


class _Found(Exception):
    def __init__(self, steps: list[Any], reason: str) -> None:
        super().__init__(reason)
        self.steps = list(steps)
        self.reason = reason


def format_path(root: str, steps: list[Any]) -> str:
    """``root`` plus ``[key]``/``[index]`` steps; with no root a first string key stands bare
    (the envelope's members read as ``vars['v']``, not ``['vars']['v']``)."""
    out = root
    for i, step in enumerate(steps):
        if isinstance(step, _Raw):
            out += step.text
        elif i == 0 and not root and isinstance(step, str) and step.isidentifier():
            out = _short(step, MAX_KEY_SHOWN)
        else:
            out += f"[{_short(repr(step), MAX_KEY_SHOWN)}]"
    # A path is echoed to the peer (maybe before authentication): never the peer's megabytes.
    return out if len(out) <= MAX_PATH_SHOWN else "..." + out[-(MAX_PATH_SHOWN - 3):]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Raw:
    """A step written as it is: ``.rows`` (a part of an extension's payload), ``{key 2}``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_LENGTH = {1: ">B", 2: ">H", 4: ">I"}
# first byte -> (width of the length field, kind) for variable-length values
_SIZED = {0xC4: (1, "bin"), 0xC5: (2, "bin"), 0xC6: (4, "bin"),
          0xD9: (1, "str"), 0xDA: (2, "str"), 0xDB: (4, "str"),
          0xC7: (1, "ext"), 0xC8: (2, "ext"), 0xC9: (4, "ext")}
_FIXED = {0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9,
          0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


class _Walker:
    def __init__(self, data: bytes, convert: Convert | None,
                 nested: dict[int, tuple[str, ...]], budget: list[int]) -> None:
        self.data = memoryview(data)
        self.convert = convert
        self.nested = nested
        self.budget = budget  # values left to look at, shared with nested payloads' walkers
        self.steps: list[Any] = []

    def fail(self, reason: str) -> None:
        raise _Found(self.steps, reason)

    def need(self, pos: int, size: int) -> None:
        if pos + size > len(self.data):
            self.fail(f"the data ends early (truncated at byte {len(self.data)}; "
                      f"{pos + size - len(self.data)} more expected)")

    def length(self, pos: int, width: int) -> int:
        self.need(pos, width)
        return struct.unpack_from(_LENGTH[width], self.data, pos)[0]

    def value(self, pos: int, depth: int) -> int:
        """Check the value starting at ``pos``; return where the next one starts."""
        self.need(pos, 1)
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise _OutOfBudget
        b = self.data[pos]
        if b <= 0x7F or b >= 0xE0:
            return pos + 1
        if 0x80 <= b <= 0x8F:
            return self.map(pos + 1, b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(pos + 1, b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.text(pos + 1, b & 0x1F)
        if b in (0xDC, 0xDD):
            width = 2 if b == 0xDC else 4
            return self.array(pos + 1 + width, self.length(pos + 1, width), depth)
        if b in (0xDE, 0xDF):
            width = 2 if b == 0xDE else 4
            return self.map(pos + 1 + width, self.length(pos + 1, width), depth)
        if b in _FIXED:
            self.need(pos, _FIXED[b])
            return pos + _FIXED[b]
        if b in _FIXEXT:
            self.need(pos + 1, 1)
            return self.ext(pos + 2, struct.unpack_from(">b", self.data, pos + 1)[0],
                            _FIXEXT[b], depth)
        if b in _SIZED:
            width, kind = _SIZED[b]
            size = self.length(pos + 1, width)
            start = pos + 1 + width
            if kind == "bin":
                self.need(start, size)
                return start + size
            if kind == "str":
                return self.text(start, size)
            self.need(start, 1)
            return self.ext(start + 1, struct.unpack_from(">b", self.data, start)[0], size, depth)
        self.fail(f"byte 0x{b:02x} at offset {pos} is not a msgpack value (0xc1 is reserved)")
        return pos  # not reached: fail() raises

    def text(self, start: int, size: int) -> int:
        self.need(start, size)
        try:
            bytes(self.data[start:start + size]).decode("utf-8")
        except UnicodeDecodeError as exc:
            self.fail(f"the string is not valid UTF-8 ({exc.reason} at its byte {exc.start})")
        return start + size

    def deeper(self, depth: int) -> int:
        if depth >= MAX_DEPTH:
            self.fail(f"it is nested more than {MAX_DEPTH} levels deep")
        return depth + 1

    def array(self, pos: int, count: int, depth: int) -> int:
        depth = self.deeper(depth)
        for i in range(count):
            self.steps.append(i)
            pos = self.value(pos, depth)
            self.steps.pop()
        return pos

    def map(self, pos: int, count: int, depth: int) -> int:
        depth = self.deeper(depth)
        for i in range(count):
            self.steps.append(_Raw(f"{{key {i}}}"))
            self.need(pos, 1)
            head = self.data[pos]
            if 0x80 <= head <= 0x9F or head in (0xDC, 0xDD, 0xDE, 0xDF):
                self.fail("a map key is an array or a map; keys must be strings or numbers")
            end = self.value(pos, depth)
            self.steps.pop()
            key = self.key(pos, end, i)
            self.steps.append(key)
            pos = self.value(end, depth)
            self.steps.pop()
        return pos

    def key(self, start: int, end: int, index: int) -> Any:
        try:
            key = msgpack.unpackb(self.data[start:end], raw=False, strict_map_key=False)
            hash(key)
        except Exception:  # noqa: BLE001 - any key we cannot show is named by its index
            return _Raw(f"{{key {index}}}")
        return key

    def ext(self, start: int, code: int, size: int, depth: int) -> int:
        self.need(start, size)
        payload = bytes(self.data[start:start + size])
        if code == TIMESTAMP:
            self.timestamp(payload)
        elif self.convert is not None:
            parts = self.nested.get(code)
            if parts is not None:
                self.walk_payload(payload, parts, depth)
            try:
                self.convert(code, payload)
            except DecodeError as exc:  # the converter knows a finer position (".rows[3]")
                self.steps.append(_Raw(exc.path))
                self.fail(exc.reason)
            except Exception as exc:  # noqa: BLE001 - a converter's refusal is the reason
                self.fail(f"the extension (code {code}, {size} bytes) is malformed: "
                          f"{type(exc).__name__}: {exc}")
        return start + size

    def walk_payload(self, payload: bytes, parts: tuple[str, ...], depth: int) -> None:
        inner = _Walker(payload, self.convert, self.nested, self.budget)
        try:
            end = inner.value(0, depth)
        except _Found as found:  # positions inside the payload continue this path
            steps = found.steps
            top_is_array = bool(payload) and (0x90 <= payload[0] <= 0x9F
                                              or payload[0] in (0xDC, 0xDD))
            if (top_is_array and steps and type(steps[0]) is int
                    and 0 <= steps[0] < len(parts)):
                steps[0] = _Raw(f".{parts[steps[0]]}")
            self.steps.extend(steps)
            self.fail(found.reason)
        if end != len(payload):
            self.fail(f"the extension's payload has {len(payload) - end} bytes after its value")

    def timestamp(self, payload: bytes) -> None:
        try:
            stamp = msgpack.Timestamp.from_bytes(payload)
        except ValueError:
            self.fail(f"the timestamp extension (code -1) has {len(payload)} bytes; "
                      "it must have 4, 8 or 12")
        if self.convert is not None:
            try:
                stamp.to_datetime()
            except (ValueError, OverflowError, OSError):
                self.fail(f"the timestamp {stamp.seconds} s is outside the dates Python can "
                          "hold (years 1 to 9999)")


def explain(data: bytes, error: Exception, *, root: str = "", convert: Convert | None = None,
            nested: dict[int, tuple[str, ...]] | None = None,
            budget: int = 1_000_000) -> DecodeError:
    """The ``DecodeError`` for ``data``, whose decoding raised ``error``.

    ``convert(code, payload)`` is the extension converter (None: extensions stay opaque, only
    timestamps are checked for shape); ``nested`` maps extension codes whose payload is itself
    msgpack to the names of its members, so a position inside one reads ``.rows[1][2]``.
    At most ``budget`` values are looked at, so explaining costs a bounded time.
    """
    walker = _Walker(data, convert, nested or {}, [budget])
    try:
        end = walker.value(0, 0)
    except _Found as found:
        return DecodeError(format_path(root, found.steps), found.reason)
    except _OutOfBudget:  # past the first ``budget`` values: msgpack's own words, no position
        return DecodeError(root, f"{_words(error)} (the position is not looked for past the "
                                 f"first {budget:,} values)")
    if end != len(data):
        return DecodeError(root, f"{len(data) - end} extra bytes follow the value")
    return DecodeError(root, _words(error))


def _words(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else (
        f"{type(error).__name__} (the bytes are not valid msgpack)")
