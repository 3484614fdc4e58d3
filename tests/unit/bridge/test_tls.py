"""Covers: bridge.tls, sidecar.testing_tls.

A server context from a real certificate pair, and advice naming the key and the file for a
pair that cannot be used, never the file's content.
"""

from __future__ import annotations

import ssl

from bridge import tls
from sidecar.testing_tls import make_test_certificates


def test_a_real_pair_builds_a_server_context(tmp_path):
    certs = make_test_certificates(tmp_path)
    assert tls.cert_problem(str(certs.cert), str(certs.key), "k") is None
    context = tls.server_context(str(certs.cert), str(certs.key))
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_missing_or_unset_file_is_named_by_key(tmp_path):
    problem = tls.cert_problem("", "", "python3.http.tls")
    assert problem and "python3.http.tls.cert-file" in problem
    problem = tls.cert_problem(str(tmp_path / "no.pem"), str(tmp_path / "no.key"), "k")
    assert problem and "k.cert-file" in problem and "no.pem" in problem


def test_a_file_that_is_no_certificate_is_refused_without_its_content(tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("SECRET-CONTENT")
    problem = tls.cert_problem(str(bogus), str(bogus), "python3.http.tls")
    assert problem and "SECRET-CONTENT" not in problem
