"""py4j's wire protocol as the Py4J front speaks it: the messages, not the conversation.

Owns: the constants of the entry point (its object id ``t``, the one ``apply`` method name), the
fixed answers (``!yv``, ``!y``, ``!xn``), building return messages (``!yj`` base64 bytes, ``!xs``
an escaped error), py4j's escaping of new lines (``escape``/``unescape``, exactly as py4j and the
JVM's ``StringUtil`` do) and reading one command part as a Python value (``decode_arg``). Must
not touch: sockets, a connection's state (``py4j_connection``), the envelope's meaning
(``protocol``). Pure: no I/O, no logging.
"""

from __future__ import annotations

import binascii

#: The only `method` the entry point's apply() accepts; the payload is one request envelope.
METHOD = "request"
ENTRY_POINT_ID = b"t"  # py4j's ENTRY_POINT_OBJECT_ID

AUTH_OK = b"!yv\n"  # OUTPUT_VOID_COMMAND
ERROR_RETURN = b"!xn\n"  # ERROR_RETURN_MESSAGE
SUCCESS_RETURN = b"!y\n"  # SUCCESS_RETURN_MESSAGE


def escape(text: str) -> str:
    """py4j's escape_new_line (and the JVM's StringUtil.escape)."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def unescape(escaped: str) -> str:
    """py4j's unescape_new_line, exactly (including its handling of odd input)."""
    if not escaped:
        return escaped
    return "\\".join("\n".join("\r".join(p.split("\\r")).split("\\n"))
                     for p in escaped.split("\\\\"))


def error_return(message: str) -> bytes:
    """``!xs<message>``: what py4j returns when the Python side of a proxy call raised."""
    return b"!xs" + escape(message).encode("utf-8") + b"\n"


def bytes_return(data: bytes) -> bytes:
    return b"!yj" + binascii.b2a_base64(data, newline=False) + b"\n"


class JavaRef:
    """An argument that is a JVM object (``r<id>``) or another py4j type we do not convert."""

    __slots__ = ("part",)

    def __init__(self, part: str) -> None:
        self.part = part

    def __repr__(self) -> str:
        return f"<JVM value {self.part!r}>"


def decode_arg(part: bytes) -> object:
    """One py4j command part (as ``get_return_value("y" + part)`` reads it) -> a Python value."""
    kind, value = part[:1], part[1:]
    if kind == b"j":
        return binascii.a2b_base64(value)  # non-strict, like py4j's standard_b64decode
    text = value.decode("utf-8")
    if kind == b"s":
        return unescape(text)
    if kind == b"n":
        return None
    if kind in (b"i", b"L"):
        return int(text)
    if kind == b"b":
        return text.lower() == "true"
    if kind == b"d":
        return float(text)
    return JavaRef(part.decode("utf-8"))
