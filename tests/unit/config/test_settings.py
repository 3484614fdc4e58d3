"""Covers: sidecar.config.settings, sidecar.config.model, sidecar.routing.registry.

``python3.pools``: what a named pool's config accepts and refuses (each message naming the key
and the value), and the routes the chain gets from it (``sidecar.routing.registry.chained_names``,
``FallbackChain.routes``)."""

from __future__ import annotations

import sys

import pytest

from sidecar.config import model as config
from sidecar.config import settings
from sidecar.routing.registry import chained_names


def load(text: str) -> config.Config:
    return config.load(text="python3:\n" + text)


@pytest.mark.parametrize("text, message", [
    ("  pools:\n    primary: {}\n", "pools.primary: a pool's name is lower-case"),
    ("  pools:\n    ML: {}\n", "pools.ML: a pool's name is lower-case"),
    ("  pools:\n    direct: {}\n", "not one of primary, direct, remote"),
    ("  pools:\n    ml: {fallback: [gpu]}\n", "pools.ml.fallback = ['gpu']: no pool named ['gpu']"),
    ("  pools:\n    ml: {fallback: [ml]}\n", "names the pool itself"),
    ("  pools:\n    ml: {fallback: [primary, primary]}\n", "names a strategy twice"),
    ("  pools:\n    ml: {fallback: [remote]}\n", "fallback.remote.endpoint is empty"),
    ("  fallback:\n    strategies: [primary, gpu]\n", "no pool named ['gpu']; there are: "
     "primary, secondary"),
    ("  pools:\n    c: {kind: dask}\n", "address = '': a dask pool needs its scheduler's"),
    ("  pools:\n    c: {kind: dask, address: 'tcp://h:8786', max-in-flight: 0}\n",
     "max-in-flight = 0 must be >= 1"),
    ("  pools:\n    ml: {address: 'tcp://h:8786'}\n", "only for kind: dask"),
    ("  pools:\n    ml: {kind: spark}\n", "python3.pools.ml.kind"),
    ("  pools:\n    ml: {worker: {virtualenv: /nonexistent}}\n",
     "virtualenv = '/nonexistent': there is no /nonexistent/bin/python"),
    (f"  pools:\n    ml: {{worker: {{virtualenv: {sys.prefix}, python: python3}}}}\n",
     "set one of them"),
    ("  pools:\n    ml: {pool: {min-size: 3, max-size: 2}}\n", "python3.pools.ml.pool"),
])
def test_bad_named_pool_config_is_refused_naming_the_key(text, message):
    with pytest.raises(config.ConfigError) as info:
        load(text)
    assert message in str(info.value)


def test_a_named_pool_has_its_own_sections_and_interpreter():
    c = load(f"  pool: {{initial-size: 3}}\n  pools:\n    ml:\n      worker:\n"
             f"        virtualenv: {sys.prefix}\n        preload: [json]\n"
             "        env: {ROLE: ml}\n      pool: {initial-size: 1, max-size: 2}\n"
             "      resources: {max-calls-per-worker: 7}\n      fallback: [primary]\n")
    ml = settings.pool_settings(c, "ml")
    assert ml.name == "ml" and ml.python == [f"{sys.prefix}/bin/python"]
    assert (ml.initial_size, ml.max_size, ml.max_calls) == (1, 2, 7)
    assert ml.preload == ["json"] and ml.env == {"ROLE": "ml"}
    primary = settings.pool_settings(c)
    assert primary.initial_size == 3 and primary.preload == [] and primary.max_calls == 0
    assert primary.python == [sys.executable]


def test_routes_name_every_pool_once_primary_first():
    c = load("  fallback:\n    strategies: [primary, secondary, direct]\n"
             "  pools:\n    ml: {fallback: [primary, direct]}\n"
             "    batch: {fallback: [ml]}\n")
    assert chained_names(c) == ["primary", "secondary", "direct", "ml", "batch"]


def test_a_tls_dask_scheduler_needs_distributeds_three_files(tmp_path):
    from sidecar.testing_tls import make_test_certificates

    certs = make_test_certificates(tmp_path)
    with pytest.raises(config.ConfigError) as info:
        load("  pools:\n    c: {kind: dask, address: 'tls://h:8786'}\n")
    assert "tls-ca-file is not set" in str(info.value) and "python3.pools.c" in str(info.value)
    with pytest.raises(config.ConfigError) as info:
        load(f"  pools:\n    c: {{kind: dask, address: 'tcp://h:8786', tls-ca-file: {certs.ca}}}\n")
    assert "are for a tls:// scheduler address" in str(info.value)
    with pytest.raises(config.ConfigError) as info:  # a key that is not the certificate's
        load(f"  pools:\n    c: {{kind: dask, address: 'tls://h:8786', tls-ca-file: {certs.ca}, "
             f"tls-cert-file: {certs.other_ca}, tls-key-file: {certs.key}}}\n")
    assert "cannot be used" in str(info.value) and "BEGIN" not in str(info.value)
    good = load(f"  pools:\n    c: {{kind: dask, address: 'tls://h:8786', tls-ca-file: {certs.ca},"
                f" tls-cert-file: {certs.cert}, tls-key-file: {certs.key}}}\n")
    assert good.python3.pools["c"].tls_key_file == str(certs.key)
