"""Covers: sidecar.unix_front, bridge.unix_client, bridge.client, sidecar.runtime_folder.

A real sidecar's Unix-socket front through ``Client("unix:PATH")``: calls, errors of every
kind the ZeroMQ front gives, the token still checked on every request, an oversized request
refused while the sidecar keeps serving, threads each getting their own replies, the file's
mode, the connection file, and a sidecar restarted under a client."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from bridge.client import (
    BadRequest,
    CallTimeout,
    Client,
    PythonError,
    Unauthorized,
    Unavailable,
)
from sidecar.testing import SidecarProcess

CONFIG = {"pool": {"initial-size": 2, "min-size": 1, "max-size": 2, "spares": 0},
          "scaling": {"enabled": False}, "worker": {"kill-grace": "200ms"},
          "bridge": {"max-message-size": "1MiB"}}


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    proc = SidecarProcess(CONFIG, workdir=str(tmp_path_factory.mktemp("unix")))
    proc.start()
    yield proc
    proc.stop()


def unix_client(sidecar: SidecarProcess, token: str | None = None, **kwargs) -> Client:
    return Client(sidecar.connection["unix"]["endpoint"],
                  sidecar.token if token is None else token, timeout=10, **kwargs)


def test_the_connection_file_names_the_socket_which_only_the_owner_may_open(sidecar):
    unix = sidecar.connection["unix"]
    path = unix["path"]
    assert unix["endpoint"] == f"unix:{path}"
    assert os.path.dirname(path) == str(sidecar.runtime_dir)
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_calls_and_their_errors_as_over_zeromq(sidecar):
    with unix_client(sidecar) as py:
        assert py.call("operator:add", 1, 2) == 3
        assert py.execute("x * 2", {"x": 21}).value == 42
        with pytest.raises(PythonError) as info:
            py.execute("1/0")
        assert info.value.remote_type == "ZeroDivisionError"
        with pytest.raises(CallTimeout):
            py.execute("import time; time.sleep(5)", timeout=0.3)
        assert py.call("operator:add", 2, 2) == 4  # a replaced worker serves the next call


def test_the_token_is_checked_on_every_request(sidecar):
    with unix_client(sidecar, token="not-the-token") as py:
        with pytest.raises(Unauthorized):
            py.call("operator:add", 1, 2)
    with unix_client(sidecar) as py:
        assert py.call("operator:add", 1, 1) == 2


def test_an_oversized_request_is_refused_and_the_sidecar_serves_on(sidecar):
    with unix_client(sidecar) as py:
        with pytest.raises(BadRequest) as info:
            py.call("len", b"x" * (2 << 20))
        assert "python3.bridge.max-message-size" in str(info.value)
        assert py.call("operator:add", 1, 2) == 3  # a fresh connection, same client
    with unix_client(sidecar) as other:
        assert other.call("operator:add", 3, 4) == 7


def test_threads_each_get_their_own_replies(sidecar):
    errors: list[str] = []
    with unix_client(sidecar) as py:
        def work(n: int) -> None:
            for i in range(50):
                got = py.call("operator:add", n, i)
                if got != n + i:
                    errors.append(f"thread {n}: {got} != {n + i}")

        threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_a_restarted_sidecar_is_reached_again_and_a_stopped_one_is_unavailable(tmp_path):
    proc = SidecarProcess(CONFIG, workdir=str(tmp_path))
    proc.start()
    try:
        py = Client(proc.connection["unix"]["endpoint"], proc.token, timeout=5,
                    connect_timeout=0.5)
        assert py.call("operator:add", 1, 2) == 3
        proc.stop()
        with pytest.raises(Unavailable) as info:
            py.call("operator:add", 1, 2)
        # its connection was closed with it and its file removed: certainly not delivered
        assert "is it running" in str(info.value), str(info.value)
        proc.start()
        # the client-side breaker skips the endpoint for its open time, then one probe finds
        # the new sidecar on a fresh connection (the old one was closed with it)
        end = time.monotonic() + 20
        while True:
            try:
                assert py.call("operator:add", 2, 3) == 5
                break
            except Unavailable:
                assert time.monotonic() < end, "the restarted sidecar was never reached"
                time.sleep(0.1)
        py.close()
    finally:
        proc.stop()
