"""Fuzz frames, the two fronts' wire clients and the sidecar's resource figures.

Owns: hypothesis strategies over the request envelope and every extension type (valid and
malformed: bigint, decimal, timestamp, Dataset, unknown codes), byte-level mutations of the
packed frames, the check that a reply is one well-formed envelope and never `internal`, and
the RSS/fd/thread figures of a sidecar process. Must not touch the sidecar's internals: all
goes through ZeroMQ, Py4J sockets and /proc (psutil).

Used by tests/fuzz/test_fuzz_fronts.py (bounded, in `make test`) and tests/fuzz/run_fuzz.py
(`make fuzz`, a million frames). User code in frames comes from a harmless menu: random text
is never executed and random targets never name an importable module.
"""
from __future__ import annotations

import base64
import datetime as dt
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack
import psutil
from hypothesis import strategies as st

from bridge import codec
from bridge.protocol import ERROR_KINDS

TOKEN = object()  # stands for the sidecar's token until a frame is packed
MISSING = object()  # a member left out of the frame

SAFE_CODE = ["v", "1 + 1", "result = v", "len(repr(v))", "raise ValueError('fuzz')", "x = (",
             "print('a' * 10)", "import sys; sys.stderr.write('e')", "type(v).__name__",
             "[type(x).__name__ for x in v] if isinstance(v, list) else v"]
SAFE_TARGETS = ["builtins:repr", "builtins:len", "json:dumps", "math:floor", "builtins:nope",
                "fuzz_missing_module_0:f", "builtins:", ":x"]
# Never `open`/`disable`: a forced-open breaker would stop the fuzz reaching the workers.
COMMANDS = ["help", "workers", "config", "status", "close", "", "nope"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1),
    st.floats(), st.text(max_size=12), st.binary(max_size=12))


def _dataset_payload(columns: list, types: list, rows: list) -> bytes:
    return msgpack.packb([columns, types, rows], use_bin_type=True)


def _block(dtype: str, count: int, body: bytes) -> msgpack.ExtType:
    """A numeric block (extension 4) as a Dataset column carries one; its body may not fit."""
    header = msgpack.packb([dtype, [count]])
    return msgpack.ExtType(codec.EXT_NDARRAY, len(header).to_bytes(4, "big") + header + body)


def _columns_ext(columns: list, types: list, nrows: Any, data: list) -> msgpack.ExtType:
    return msgpack.ExtType(codec.EXT_COLUMNS,
                           msgpack.packb([columns, types, nrows, data], use_bin_type=True))


def _well_formed_columns(shape: tuple[int, int]) -> Any:
    nrows, ncols = shape
    column = st.one_of(
        st.tuples(st.lists(scalars, min_size=nrows, max_size=nrows), st.none()),
        st.builds(lambda d, body: (_block(d, nrows, body), None),
                  st.sampled_from(sorted(codec.COLUMN_DTYPES.values())), st.binary(max_size=16)))
    return st.builds(lambda t, cols: _columns_ext([f"c{i}" for i in range(ncols)], t, nrows,
                                                  [list(c) for c in cols]),
                     st.lists(st.sampled_from(codec.COLUMN_TYPES), min_size=ncols,
                              max_size=ncols),
                     st.lists(column, min_size=ncols, max_size=ncols))


extensions = st.one_of(
    # column-wise Datasets (code 5): consistent shapes (lists, blocks that may not fit their
    # rows), then wrong members and junk payloads
    st.tuples(st.integers(0, 3), st.integers(0, 3)).flatmap(_well_formed_columns),
    st.builds(_columns_ext, st.lists(st.text(max_size=3), max_size=2),
              st.lists(st.sampled_from(codec.COLUMN_TYPES), max_size=2), scalars,
              st.lists(st.lists(st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=3),
                       max_size=2)),
    st.builds(lambda b: msgpack.ExtType(codec.EXT_COLUMNS, b), st.binary(max_size=16)),
    # bigint: linear-size valid ones (past 64 bits, either sign) and any payload
    st.integers(min_value=2 ** 64, max_value=2 ** 400), st.integers(max_value=-(2 ** 63) - 1,
                                                                      min_value=-(2 ** 400)),
    st.builds(lambda b: msgpack.ExtType(codec.EXT_BIGINT, b), st.binary(max_size=24)),
    # decimal: real ones and junk text/bytes
    st.decimals(allow_nan=True, allow_infinity=True).map(
        lambda d: msgpack.ExtType(codec.EXT_DECIMAL, str(d).encode())),
    st.builds(lambda b: msgpack.ExtType(codec.EXT_DECIMAL, b), st.binary(max_size=16)),
    # timestamps: any seconds msgpack can carry (2**40 s and beyond is outside datetime)
    st.builds(msgpack.Timestamp, st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
              st.integers(min_value=0, max_value=999_999_999)),
    st.datetimes(timezones=st.just(dt.UTC)),
    # Datasets: well-formed, ragged, wrongly typed members, junk payloads
    st.builds(lambda c, t, r: msgpack.ExtType(codec.EXT_DATASET, _dataset_payload(c, t, r)),
              st.lists(st.text(max_size=4), max_size=3),
              st.lists(st.sampled_from(codec.COLUMN_TYPES), max_size=3),
              st.lists(st.lists(scalars, max_size=3), max_size=3)),
    st.builds(lambda v: msgpack.ExtType(codec.EXT_DATASET, msgpack.packb(v)),
              st.lists(scalars, max_size=4)),
    st.builds(lambda b: msgpack.ExtType(codec.EXT_DATASET, b), st.binary(max_size=16)),
    st.builds(msgpack.ExtType, st.integers(min_value=0, max_value=127), st.binary(max_size=8)),
)

values = st.recursive(
    st.one_of(scalars, extensions),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=4), st.integers()),
                                            inner, max_size=4)),
    max_leaves=10)

names = st.one_of(st.sampled_from(["v", "w"]), st.text(max_size=4))

rich_values = st.one_of(extensions, values)  # what execute/call carry to the worker
GOOD = {
    "v": st.just(1),
    "id": st.one_of(st.integers(min_value=0, max_value=2 ** 31), st.text(max_size=8)),
    "timeout": st.floats(min_value=0.5, max_value=5),
    "code": st.sampled_from(SAFE_CODE),
    "vars": st.dictionaries(names, rich_values, max_size=3),
    "target": st.sampled_from(SAFE_TARGETS),
    "args": st.lists(rich_values, max_size=3),
    "kwargs": st.dictionaries(names, rich_values, max_size=2),
    "command": st.sampled_from(COMMANDS),
    "name": st.sampled_from(["primary", "secondary", "x"]),
    "pool": st.sampled_from(["primary", "no-such-pool"]),
    # the gateway route's mark: the access policy's path (python3.access.routed)
    "routed": st.fixed_dictionaries({"route": st.just("message-handler")},
                                    optional={"project": st.one_of(st.none(), st.text(max_size=8)),
                                              "user": st.one_of(st.none(), st.text(max_size=8))}),
}
# hypothesis's one_of does not weight repeated branches: choose by sampled_from instead.
TOKEN_CHOICES = ["token"] * 7 + ["missing", "wrong", "value"]
OP_CHOICES = ["execute"] * 3 + ["call"] * 3 + ["ping", "health", "diag", "breaker", "value"]
MEMBER_CHOICES = ["absent"] * 3 + ["good"] * 4 + ["wrong"]


@st.composite
def envelopes(draw: Any) -> dict[str, Any]:
    """A request envelope: mostly authenticated and well-formed enough to reach validation
    and the workers, every member sometimes absent or of a wrong type."""
    token = draw(st.sampled_from(TOKEN_CHOICES))
    env: dict[str, Any] = {"token": {"token": TOKEN, "missing": MISSING,
                                     "wrong": "wrong"}.get(token) or draw(values)}
    op = draw(st.sampled_from(OP_CHOICES))
    env["op"] = draw(values) if op == "value" else op
    for member, good in GOOD.items():
        choice = draw(st.sampled_from(MEMBER_CHOICES))
        if choice != "absent":
            env[member] = draw(good if choice == "good" else values)
    return env


def pack(envelope: dict[str, Any], token: str, rid: Any = None) -> bytes:
    """The envelope as bytes: the token placeholder filled, ``rid`` (if given) as its id."""
    env = {k: (token if v is TOKEN else v) for k, v in envelope.items() if v is not MISSING}
    if rid is not None:
        env["id"] = rid
    return codec.packb(env)


MUTATIONS = ("none",) * 12 + ("truncate", "flip", "junk", "timestamp")


@st.composite
def mutations(draw: Any) -> tuple[str, int, int]:
    """(kind, position seed, byte): applied by ``mutate`` to a packed frame."""
    return (draw(st.sampled_from(MUTATIONS)), draw(st.integers(min_value=0, max_value=2 ** 16)),
            draw(st.integers(min_value=0, max_value=255)))


def mutate(data: bytes, kind: str, seed: int, byte: int) -> bytes:
    if kind == "none" or not data:
        return data
    at = seed % len(data)
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes((data[at] ^ (byte or 1),)) + data[at + 1:]
    if kind == "junk":
        return bytes((byte,)) + data[at:]
    # "timestamp": turn the first fixext/ext code into -1 (a timestamp of the wrong length)
    for head in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
        i = data.find(bytes((head,)))
        if 0 <= i < len(data) - 1:
            return data[:i + 1] + b"\xff" + data[i + 2:]
    return data


@dataclass
class Tally:
    """What came back: kinds seen, and what broke the contract."""

    frames: int = 0
    replies: int = 0
    kinds: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def check(self, reply: bytes, sent_id: Any) -> dict[str, Any] | None:
        """Count one reply; record why it breaks the contract (if it does)."""
        self.replies += 1
        try:
            message = codec.unpack_raw(reply)
        except ValueError as exc:
            return self.violation(f"a reply that is not msgpack: {exc}")
        if not isinstance(message, dict) or not isinstance(message.get("ok"), bool):
            return self.violation(f"a reply without a boolean 'ok': {message!r:.200}")
        rid = message.get("id")
        if sent_id is not None and rid is not None and rid != sent_id:
            return self.violation(f"reply id {rid!r:.60} for request id {sent_id!r:.60}")
        if message["ok"]:
            self.kinds["ok"] += 1
            return message
        error = message.get("error")
        if not (isinstance(error, dict) and error.get("kind") in ERROR_KINDS
                and isinstance(error.get("message"), str)):
            return self.violation(f"a malformed error: {error!r:.200}")
        self.kinds[error["kind"]] += 1
        if error["kind"] in ("internal", "crashed"):
            self.violation(f"kind {error['kind']}: {error['message']:.300}")
        return message

    def violation(self, text: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(text)
        return None


class Py4JPeer:
    """One authenticated py4j connection, as a JVM thread's ClientServerConnection uses it."""

    def __init__(self, port: int, token: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sock.sendall(f"A\n{token}\ne\n".encode())
        answer = self.readline()
        if answer != b"!yv":
            raise ConnectionError(f"py4j authentication refused: {answer!r}")

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("the front closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def apply(self, payload: bytes) -> bytes:
        """``apply("request", payload)``; the reply envelope (raises on a py4j-level error)."""
        self.sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(payload) + b"\ne\n")
        answer = self.readline()
        if not answer.startswith(b"!yj"):
            raise ConnectionError(f"py4j answered {answer[:200]!r}")
        return base64.b64decode(answer[3:])

    def close(self) -> None:
        self.sock.close()


def resources(pid: int) -> dict[str, int]:
    """The sidecar process's own RSS, open descriptors and threads (its workers excluded)."""
    proc = psutil.Process(pid)
    return {"rss": proc.memory_info().rss, "fds": proc.num_fds(), "threads": proc.num_threads()}
