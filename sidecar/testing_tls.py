"""Throwaway certificates for tests and benchmarks: a CA and a certificate it signed for
``localhost``/``127.0.0.1``/``::1``, made with the ``openssl`` command in a folder the caller
owns (a pytest ``tmp_path``); nothing here is ever committed.

Owns: making those files. Must not touch: the sidecar (it only reads the paths it is given).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
"""


@dataclass(frozen=True)
class CertificateSet:
    ca: Path      # the CA's certificate: what clients trust
    cert: Path    # the server's certificate (also a client certificate: Dask's TLS wants both)
    key: Path     # its private key (unencrypted, mode 0600)
    other_ca: Path  # a CA that signed nothing here: trusting it must fail the handshake


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key.name, "-out", cert.name, "-days", "2",
             "-subj", f"/CN=py3sidecar test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return cert, key


def make_test_certificates(folder: Path) -> CertificateSet:
    """Writes ca.pem, server.pem, server.key (and other-ca.pem) into ``folder``."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca(folder, "ca")
    other_ca, _ = _ca(folder, "other-ca")
    (folder / "server.ext").write_text(_EXTENSIONS)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=folder)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name,
             "-set_serial", str(secrets.randbits(63)), "-days", "2", "-out", "server.pem",
             "-extfile", "server.ext", cwd=folder)
    key = folder / "server.key"
    key.chmod(0o600)
    return CertificateSet(ca=ca, cert=folder / "server.pem", key=key, other_ca=other_ca)
