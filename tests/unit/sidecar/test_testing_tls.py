"""Covers: sidecar.testing_tls.

The test certificates: a handshake with the server certificate succeeds for a client that
trusts the CA and fails for one that trusts only the other CA; the key is owner-only.
"""

from __future__ import annotations

import ssl
import stat

import pytest

from sidecar.testing_tls import make_test_certificates


def handshake(certs, trusted) -> None:
    """A TLS handshake in memory (no socket): raises ``ssl.SSLError`` when it fails."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(certs.cert), str(certs.key))
    client_context = ssl.create_default_context(cafile=str(trusted))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def test_trusting_the_ca_verifies_and_the_other_ca_does_not(tmp_path):
    certs = make_test_certificates(tmp_path)
    handshake(certs, certs.ca)
    with pytest.raises(ssl.SSLError):
        handshake(certs, certs.other_ca)
    assert stat.S_IMODE(certs.key.stat().st_mode) & 0o077 == 0
