"""The config sections of encryption on the sidecar's fronts: ``python3.bridge.py4j.tls`` and
``python3.http.tls``.

Owns: those models, their defaults and checks (a file that ``serve`` could not load is a config
error here, so ``config --check`` refuses what ``serve`` would). Must not touch: sockets and
contexts at run time (``bridge.tls``), the other sections (``sidecar.config``,
``sidecar.config_monitoring``, which include these).
"""

from __future__ import annotations

from pydantic import model_validator

from bridge.tls import cert_problem
from sidecar.config_types import Section


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
