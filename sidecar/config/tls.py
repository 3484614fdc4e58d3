"""The config sections of encryption on the sidecar's fronts: ``python3.bridge.py4j.tls`` and
``python3.http.tls``; and the check of a ``kind: dask`` pool's ``tls-*`` files.

Owns: those models, their defaults and checks (a file that ``serve`` could not load is a config
error here, so ``config --check`` refuses what ``serve`` would). Must not touch: sockets and
contexts at run time (``bridge.tls``), the other sections (``sidecar.config.model``,
``sidecar.config.monitoring``, which include these).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import model_validator

from bridge.tls import cert_problem
from sidecar.config.fields import Section


class Py4JTlsConfig(Section):
    """``python3.bridge.py4j.tls``: the Py4J front speaks TLS only (plain peers get nothing)."""

    enabled: bool = False
    cert_file: str = ""
    key_file: str = ""

    @model_validator(mode="after")
    def _loadable(self) -> Py4JTlsConfig:
        if self.enabled:
            problem = cert_problem(self.cert_file, self.key_file, "python3.bridge.py4j.tls")
            if problem:
                raise ValueError(problem)
        elif self.cert_file or self.key_file:
            raise ValueError("cert-file/key-file are set but enabled is false: set "
                             "python3.bridge.py4j.tls.enabled: true to serve Py4J over TLS, "
                             "or remove them")
        return self


class HttpTlsConfig(Section):
    """``python3.http.tls``: both files set -> the HTTP front serves HTTPS only."""

    cert_file: str = ""
    key_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file or self.key_file)

    @model_validator(mode="after")
    def _loadable(self) -> HttpTlsConfig:
        if self.enabled:
            problem = cert_problem(self.cert_file, self.key_file, "python3.http.tls")
            if problem:
                raise ValueError(problem)
        return self


def dask_tls_problem(address: str, ca_file: str, cert_file: str, key_file: str) -> str | None:
    """A pool's (``python3.pools.<name>``) ``tls://`` scheduler needs distributed's three files
    (its servers ask for a client certificate); a ``tcp://`` one takes none. None: all is well."""
    files = {"tls-ca-file": ca_file, "tls-cert-file": cert_file, "tls-key-file": key_file}
    if not address.startswith("tls://"):
        if any(files.values()):
            return ("tls-ca-file/tls-cert-file/tls-key-file are for a tls:// scheduler "
                    f"address, and address = {address!r}; write it tls://HOST:PORT")
        return None
    for option, path in files.items():
        if not path:
            return (f"{option} is not set: a tls:// Dask scheduler needs the CA that "
                    "signed the cluster's certificates (tls-ca-file) and this client's "
                    "certificate and key (tls-cert-file, tls-key-file), all PEM")
        if not Path(path).is_file():
            return f"{option} = {path!r}: no such file"
    try:
        context = ssl.create_default_context(cafile=ca_file)
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return (f"tls-ca-file, tls-cert-file and tls-key-file cannot be used ({reason}); "
                "they must be PEM, the key unencrypted and matching the certificate")
    return None
