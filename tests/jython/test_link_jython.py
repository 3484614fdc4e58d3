"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar/transport,
    ignition-scripts/ignition/script-python/py3sidecar/client.

The python3 library's ZeroMQ link under real Jython 2.7:

- a reply whose ``id`` is not the request's (or a success with ``id: null``) is a link error
  (``python3.Unavailable``, ``sent: True``), checked before the socket goes back to the pool:
  that socket is dropped, the next call goes out on a new one;
- a connection reset in the middle of the reply ends the call at once (``LinkLost``; with
  failover set, then the next sidecar), not after the whole deadline: on the default transport
  (ZMTP/3.0 PLAIN, the helper jar's dealer), with and without failover, and on JeroMQ
  (ZMQ_MECHANISM 'null', with failover); and on JeroMQ with failover, a link that goes silent
  (half-open: no FIN, no RST) ends the call once a link-check ping goes unanswered.

The wrong replies come from a TEST DOUBLE of a sidecar: a pyzmq ROUTER on loopback (a PLAIN
server) that answers as the test tells it and records each caller's routing identity (one per
connection). The reset comes from the fault-injecting proxy (tests/faults/proxy.py) in front of
a real sidecar (PLAIN) and in front of a second, NULL-mechanism test double (JeroMQ).
Cases: tests/jython/jy/cases_link.py, in one JVM.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import msgpack
import pytest
import zmq

from sidecar.testing import SidecarProcess, free_port
from tests.faults.proxy import REPLY, FaultProxy

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_link.py"
CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
          "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False},
          "health": {"enabled": False}}


class ScriptedPeer:
    """TEST DOUBLE of a sidecar's ROUTER: answers each request as ``mode`` says.

    ok: the request's id; long: the same with a 200-byte value (over the proxy's 24-byte cut);
    wrong: another id; null: a success with ``id: null``; null-error: a
    ``bad_request`` with ``id: null`` (what a sidecar sends when it could not read a request).
    """

    def __init__(self, plain: bool = True) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.auth = None
        if plain:
            # A PLAIN server as the sidecar's front is (pyzmq's ZAP handler, the library's
            # token), so the library's default ZeroMQ transport (ZMTP/3.0 PLAIN) reaches it.
            from zmq.auth.thread import ThreadAuthenticator

            self.auth = ThreadAuthenticator(self.ctx)
            self.auth.start()
            self.auth.configure_plain(domain="*", passwords={"py3sidecar": "peer-token"})
            self.sock.plain_server = True
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.mode = "ok"
        self.identities: list[str] = []  # the caller's socket, per request, in order
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reply_for(self, request: dict[str, Any]) -> dict[str, Any]:
        rid = request.get("id")
        if self.mode == "wrong":
            return {"id": rid + 1000, "ok": True, "value": "not yours"}
        if self.mode == "null":
            return {"id": None, "ok": True, "value": "whose?"}
        if self.mode == "null-error":
            return {"id": None, "ok": False, "error": {"kind": "bad_request", "type": None,
                                                       "message": "unreadable", "traceback": None}}
        if self.mode == "long":
            return {"id": rid, "ok": True, "value": "fake" * 50}
        return {"id": rid, "ok": True, "value": "fake"}

    def serve(self) -> None:
        while not self.closed.is_set():
            if not self.sock.poll(100):
                continue
            peer, payload = self.sock.recv_multipart()
            self.identities.append(peer.hex())
            request = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            self.sock.send_multipart([peer, msgpack.packb(self.reply_for(request))])

    def close(self) -> None:
        self.closed.set()
        self.thread.join(10)
        self.sock.close(0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()


@pytest.fixture(scope="module")
def link_run(tmp_path_factory):
    sidecar = SidecarProcess(CONFIG, workdir=str(tmp_path_factory.mktemp("jy_link")))
    sidecar.start()
    proxy = FaultProxy(sidecar.port)
    peer = ScriptedPeer()
    null_peer = ScriptedPeer(plain=False)  # an older, NULL-mechanism front: JeroMQ reaches it
    null_peer.mode = "long"
    null_proxy = FaultProxy(int(null_peer.endpoint.rsplit(":", 1)[1]))
    proxies = {"sidecar": proxy, "null": null_proxy}

    def control(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "info":
            return {"peer_endpoint": peer.endpoint, "proxy_endpoint": proxy.endpoint,
                    "null_proxy_endpoint": null_proxy.endpoint,
                    "token_file": str(sidecar.runtime_dir / "token"),
                    "nobody_endpoint": f"tcp://127.0.0.1:{free_port()}"}
        if cmd == "figure":
            print(f"FIGURE {request['name']} = {request['value']}")
            return None
        if cmd == "mode":
            peer.mode = request["mode"]
            return None
        if cmd == "identities":
            return list(peer.identities)
        if cmd == "reset-reply":
            proxies[request["which"]].resets = 0
            proxies[request["which"]].reset_next(REPLY)
            return None
        if cmd == "half-open":
            proxies[request["which"]].half_open()
            return None
        if cmd == "heal":
            proxies[request["which"]].heal()
            return proxies[request["which"]].resets
        raise ValueError(f"unknown control command {cmd!r}")

    try:
        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps({})}, timeout=120,
                                control=control)
    finally:
        peer.close()
        null_proxy.close()
        null_peer.close()
        proxy.close()
        sidecar.stop()
    return results


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_link(link_run, name):
    jvm.assert_case_passed(link_run, "cases_link", name)
