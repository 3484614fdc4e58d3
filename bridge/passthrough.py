"""The sidecar's pass-through flavour of the codec: msgpack bytes forwarded, not rebuilt.

Owns: ``pack_raw``/``unpack_raw`` (extension values stay opaque, ``msgpack.ExtType`` /
``msgpack.Timestamp``, so the supervisor never imports pandas or pays to rebuild a Dataset it
only forwards), appending members to an encoded map without decoding its values
(``extend_map``), and the worker's success reply's byte layout (``splice_success``). Must not
touch: the extension types' meaning (``codec``), sockets, processes, the envelope's meaning
(``protocol``).

Everything here is re-exported by ``bridge.codec``, where callers import it from.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from bridge.decode_check import explain

RAW_EXPLAIN_BUDGET = 20_000  # values the sidecar's decoder looks at to name a bad one


def pack_raw(obj: Any) -> bytes:
    """The sidecar's encoder: extension values are forwarded as they came."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack_raw(data: bytes) -> Any:
    """The sidecar's decoder: extension values stay opaque (see module docstring); raises
    ``DecodeError`` naming where the first undecodable value sat."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types for junk
        # The loop thread explains this (maybe before authentication): a small budget keeps
        # a frame of millions of tiny values from stalling it (about 20 ms at most).
        raise explain(data, exc, budget=RAW_EXPLAIN_BUDGET) from None


def extend_map(data: bytes, members: dict[str, Any]) -> bytes:
    """Append ``members`` to the encoded map ``data`` without decoding its values.

    Rewrites only the header (fixmap, map16 or map32; a fixmap that outgrows 15 members becomes
    a map16) and appends the new key/value pairs. The keys must not already be in the map.
    """
    tail = b"".join(pack_raw(k) + pack_raw(v) for k, v in members.items())
    return extend_map_encoded(data, len(members), tail)


def extend_map_encoded(data: bytes, added: int, tail: bytes) -> bytes:
    """``extend_map`` with the ``added`` members already encoded as ``tail`` (hot paths)."""
    head = data[0]
    view = memoryview(data)  # the body is copied once, into the result, never sliced first
    if 0x80 <= head <= 0x8F:
        count, body = head & 0x0F, view[1:]
    elif head == 0xDE:
        count, body = int.from_bytes(data[1:3], "big"), view[3:]
    elif head == 0xDF:
        count, body = int.from_bytes(data[1:5], "big"), view[5:]
    else:
        raise ValueError(f"not an encoded msgpack map (first byte 0x{head:02x})")
    count += added
    if count <= 15:
        header = bytes((0x80 | count,))
    elif count <= 0xFFFF:
        header = b"\xde" + count.to_bytes(2, "big")
    else:
        header = b"\xdf" + count.to_bytes(4, "big")
    return b"".join((header, body, tail))


# ---------------------------------------------------------------- the worker's success reply

# A worker's success reply (``sidecar.worker.main.Worker.run_call``) is a 6-member fixmap whose
# first members are ok: true, ms and cpu, the two times float64s at fixed offsets. The sidecar
# forwards it without decoding the value: a new header, id, worker, then the worker's members.
_OK_PREFIX = b"\x86\xa2ok\xc3\xa2ms\xcb"
_CPU_KEY = b"\xa3cpu\xcb"
_TIMES = struct.Struct(">d5xd")  # ms at offset 9, then _CPU_KEY, then cpu at offset 22
_SPLICED_HEADER = b"\x88\xa2id"
_WORKER_KEY = b"\xa6worker"


_UINT = ((0x100, b"\xcc", 1), (0x10000, b"\xcd", 2), (1 << 32, b"\xce", 4))
_FIXINTS = tuple(bytes((n,)) for n in range(0x80))


def pack_id(value: Any) -> bytes:
    """``pack_raw(value)`` for the ids a reply carries, without building a ``Packer``: a
    non-negative int is encoded here as msgpack encodes it (the smallest form: positive fixint,
    uint8, uint16, uint32); anything else is ``pack_raw``'s. Byte for byte the same."""
    if type(value) is int and value >= 0:
        if value < 0x80:
            return _FIXINTS[value]
        for limit, head, size in _UINT:
            if value < limit:
                return head + value.to_bytes(size, "big")
    return pack_raw(value)


def splice_success(frame: bytes, rid: Any, worker: int) -> tuple[bytes, float, float] | None:
    """The client's reply for a worker's success ``frame`` with ``id`` and ``worker`` spliced
    in front, and the call's wall and CPU milliseconds; None when ``frame`` does not have the
    success layout (an error, or a layout this fast path does not know): decode it instead."""
    if frame[:9] != _OK_PREFIX or frame[17:22] != _CPU_KEY or len(frame) < 30:
        return None
    wall, cpu = _TIMES.unpack_from(frame, 9)
    # memoryview: the worker's members are copied once, into the joined reply
    return (b"".join((_SPLICED_HEADER, pack_id(rid), _WORKER_KEY, pack_id(worker),
                      memoryview(frame)[1:])),
            wall, cpu)
