"""TLS for the sidecar's fronts: the server context built from a certificate and key file, and
the check that tells an operator, before anything listens, what is wrong with those files.

Owns: ``server_context`` (TLS 1.2 at least, no renegotiation, no compression) and
``cert_problem`` (the advice for a missing, unreadable or mismatched file, naming the config
key, never the key's content). Must not touch: sockets and handshakes (each front drives its
own: ``py4j_tls`` on the loop, ``sidecar.http.server`` in its threads), config parsing.
"""

from __future__ import annotations

import ssl
from pathlib import Path

#: The first byte of every TLS record a client opens with (a handshake record): anything else
#: on a TLS port is a plain peer, which gets nothing.
HANDSHAKE_RECORD = 0x16


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side context for ``cert_file`` (PEM, the chain after the certificate) and
    ``key_file`` (PEM, unencrypted). Raises ``ssl.SSLError``/``OSError`` (see
    ``cert_problem`` for the operator's version)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    context.load_cert_chain(cert_file, key_file)
    return context


def cert_problem(cert_file: str, key_file: str, key: str) -> str | None:
    """None when ``server_context`` can be built, else advice that names ``key`` (the config
    section, e.g. ``python3.http.tls``) and the file, never what the file holds."""
    for name, path in (("cert-file", cert_file), ("key-file", key_file)):
        if not path:
            return (f"{key}.{name} is not set: give the PEM file of the server's certificate "
                    "(cert-file) and of its private key (key-file)")
        file = Path(path)
        if not file.is_file():
            return f"{key}.{name} = {path!r}: no such file"
        try:
            with file.open("rb"):
                pass
        except OSError as exc:
            return (f"{key}.{name} = {path!r} cannot be read by this user ({exc.strerror}); "
                    "give the sidecar's account read access")
    try:
        server_context(cert_file, key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return (f"{key}: the certificate {cert_file!r} and key {key_file!r} cannot be used "
                f"together ({reason}); they must be PEM files, the key unencrypted and "
                "matching the certificate")
    return None
