"""Covers: sidecar.config.tls, sidecar.config.model.

python3.bridge.py4j.tls and python3.http.tls: what ``config --check`` (``config.load``)
refuses, each message naming the key and the file, never a key's content; and what it builds."""

from __future__ import annotations

import pytest

from sidecar.config import model as config
from sidecar.testing_tls import make_test_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_certificates(tmp_path_factory.mktemp("tls-config"))


def load(text: str) -> config.Config:
    return config.load(text="python3:\n" + text) if text else config.load(text="python3: {}\n")


def py4j_tls(**keys) -> str:
    body = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {str(v).lower()}"
                     for k, v in keys.items())
    return f"  bridge:\n    py4j:\n      tls: {{{body}}}\n"


def http_tls(**keys) -> str:
    body = ", ".join(f"{k}: {v!r}" for k, v in keys.items())
    return f"  http:\n    tls: {{{body}}}\n"


def test_py4j_tls_is_off_by_default_and_on_with_loadable_files(certs):
    assert load("").python3.bridge.py4j.tls.enabled is False
    c = load(py4j_tls(enabled=True, **{"cert-file": str(certs.cert), "key-file": str(certs.key)}))
    assert c.python3.bridge.py4j.tls.cert_file == str(certs.cert)


@pytest.mark.parametrize("keys, message", [
    ({"enabled": True}, "python3.bridge.py4j.tls.cert-file is not set"),
    ({"enabled": True, "cert-file": "/nonexistent.pem", "key-file": "/nonexistent.key"},
     "python3.bridge.py4j.tls.cert-file = '/nonexistent.pem': no such file"),
    ({"cert-file": "x.pem"}, "set python3.bridge.py4j.tls.enabled: true"),
])
def test_py4j_tls_refusals_name_the_key(keys, message):
    with pytest.raises(config.ConfigError) as info:
        load(py4j_tls(**keys))
    assert message in str(info.value)


def test_a_key_that_does_not_match_the_certificate_is_refused_without_its_content(certs):
    with pytest.raises(config.ConfigError) as info:
        load(py4j_tls(enabled=True, **{"cert-file": str(certs.other_ca),
                                       "key-file": str(certs.key)}))
    text = str(info.value)
    assert "cannot be used together" in text and "PRIVATE KEY" not in text
    assert certs.key.read_text().splitlines()[1] not in text


def test_http_tls_needs_both_files(certs):
    assert load("").python3.http.tls.enabled is False
    on = load(http_tls(**{"cert-file": str(certs.cert), "key-file": str(certs.key)}))
    assert on.python3.http.tls.enabled
    with pytest.raises(config.ConfigError) as info:
        load(http_tls(**{"cert-file": str(certs.cert)}))
    assert "python3.http.tls.key-file is not set" in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("  http: {max-connections: 0}\n", "expected 1 to 1024 threads"),
    ("  http: {header-timeout: 0}\n", "header-timeout must be greater than 0"),
    ("  http: {allowed-hosts: ['http://x/']}\n", "is not a host name"),
])
def test_http_hardening_keys_are_checked(text, message):
    with pytest.raises(config.ConfigError) as info:
        load(text)
    assert message in str(info.value)


def test_allowed_hosts_are_kept_lower_case():
    assert load("  http: {allowed-hosts: [SCADA.plant.local]}\n").python3.http.allowed_hosts == [
        "scada.plant.local"]
