"""Authentication (and encryption) at the ZeroMQ handshake: the sidecar's ROUTER is a PLAIN or
CURVE server, and every client of it (the CPython client, the CLI, another sidecar's remote
fallback) configures its socket to match.

Owns: the mechanism a ROUTER speaks (``ServerSecurity``), the sidecar's CURVE key pair in the
runtime folder (made once, owner-only, reused), the ZAP handler (pyzmq's ``ThreadAuthenticator``
with a constant-time PLAIN check, refusals logged once per peer per interval, never the
password), and ``ClientSecurity`` for the connecting side. Must not touch: the envelope (its
``token`` stays required either way: ``sidecar.service``), the receive path (``zmq_server``).

Why at the handshake: libzmq only hands a peer's messages to the ROUTER after the mechanism
succeeded, and a peer whose greeting names another mechanism (a NULL/ZMTP-2.0 peer: JeroMQ
0.3.6, a plain pyzmq socket) is cut off after the 64-byte greeting. So the messages of an
unauthenticated peer never reach the sidecar's queues.

    PLAIN (default): username ``py3sidecar``, password = the sidecar's token (not encrypted:
                     loopback, or a network you trust).
    CURVE (python3.bridge.zmq.curve.enabled): the server key from connection.json
                     (``zmq.curve.server-key``); clients listed in client-keys-dir, or any.

ZAP runs once per connection, in the authenticator's own thread (it never touches the loop's
state): a call costs nothing extra under PLAIN, and CURVE's cost is its per-message crypto.
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger("py3sidecar.zmq.auth")

PLAIN_USERNAME = "py3sidecar"
ZAP_DOMAIN = "py3sidecar"
SERVER_KEY_NAME = "zmq-curve-server"  # <runtime dir>/zmq-curve-server.key{,_secret}
#: A refused peer (by address) is logged at most once per this many seconds.
REFUSAL_LOG_INTERVAL = 60.0
_MAX_REMEMBERED_PEERS = 1024


class CurveKeyError(ValueError):
    """A CURVE key or key file is unusable; the message names the setting and what to do."""


# ---------------------------------------------------------------- key files

def _write_key_file(path: Path, public: bytes, secret: bytes | None) -> None:
    """zmq.auth's certificate format (``zmq.auth.load_certificate`` reads it back)."""
    kind = "Secret" if secret else "Public"
    lines = [f"#   ZeroMQ CURVE **{kind}** Certificate (py3sidecar)",
             "#   " + ("DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."
                      if secret else "Give this file to the sidecar's clients."),
             "", "metadata", "curve",
             f'    public-key = "{public.decode()}"']
    if secret:
        lines.append(f'    secret-key = "{secret.decode()}"')
    mode = 0o600 if secret else 0o644
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_server_keys(folder: Path) -> tuple[bytes, bytes]:
    """The sidecar's CURVE key pair (z85 public, secret) from ``folder``, made on first use.

    Like the token file: the secret file is owner-only from its first byte, and one that others
    may read is refused (whoever holds it can pose as this sidecar)."""
    secret_file = folder / f"{SERVER_KEY_NAME}.key_secret"
    if secret_file.exists():
        mode = stat.S_IMODE(os.stat(secret_file).st_mode)
        if mode & 0o077:
            raise CurveKeyError(f"the CURVE secret key file {secret_file} may be read by other "
                                f"users (mode {mode:04o}): whoever holds it can pose as this "
                                f"sidecar. `chmod 600 {secret_file}` (or delete it to have a new "
                                "pair made), then start again")
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as exc:
            raise CurveKeyError(f"cannot read the CURVE key pair {secret_file}: {exc}; delete it "
                            "to have a new one made (clients then need the new server key "
                            "from connection.json)") from None
        if public and secret:
            return public, secret
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    public, secret = zmq.curve_keypair()
    _write_key_file(secret_file, public, secret)
    _write_key_file(folder / f"{SERVER_KEY_NAME}.key", public, None)
    log.info("made the sidecar's CURVE key pair in %s", secret_file)
    return public, secret


def load_client_keys(path: str | Path | None) -> tuple[bytes, bytes]:
    """A client's key pair: from ``path`` (a zmq.auth secret key file), else a fresh one (which
    a sidecar with ``client-keys-dir`` refuses: list its public key there to be let in)."""
    if not path:
        return zmq.curve_keypair()
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"client-key-file = {str(path)!r}: cannot read a CURVE key pair from "
                        f"it ({exc}); make one with `python3 -c \"import zmq.auth; "
                        "zmq.auth.create_certificates('.', 'client')\"`") from None
    if not secret:
        raise CurveKeyError(f"client-key-file = {str(path)!r} holds only a public key; give the "
                        "client its .key_secret file")
    return public, secret


def check_server_key(key: str | bytes, setting: str) -> bytes:
    """A z85 CURVE public key (40 characters), else an error naming ``setting``."""
    raw = key.encode() if isinstance(key, str) else key
    try:
        if len(raw) != 40:
            raise ValueError
        zmq.utils.z85.decode(raw)
    except Exception:
        raise CurveKeyError(f"{setting}: expected the sidecar's 40-character CURVE public key "
                        "(zmq.curve.server-key in its connection.json)") from None
    return raw


# ---------------------------------------------------------------- the server side

class SidecarAuthenticator(ThreadAuthenticator):
    """pyzmq's ZAP handler, with the password compared in constant time and refusals logged
    once per peer per ``REFUSAL_LOG_INTERVAL`` (address and reason only, never a credential)."""

    def __init__(self, context: zmq.Context, token: bytes,
                 clock=time.monotonic) -> None:
        super().__init__(context, log=logging.getLogger("py3sidecar.zmq.zap"))
        self.log.setLevel(max(self.log.getEffectiveLevel(), logging.INFO))  # debug names keys
        self.token = token
        self.clock = clock
        self.refused = 0
        self._last_logged: dict[str, float] = {}
        # (kind, peer) of each refusal, for the audit log (called in this ZAP thread)
        self.on_refusal: Callable[[str, str], None] = lambda kind, peer: None

    def _authenticate_plain(self, domain: str, username: str,
                            password: str) -> tuple[bool, bytes]:
        # The password is the token: compared as bytes, in time independent of its content.
        ok = hmac.compare_digest(password.encode("utf-8", "replace"), self.token)
        return ok, b"OK" if ok else b"Invalid password"

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self._zap_peer = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "?"
        self._zap_mechanism = msg[5].decode("ascii", "replace") if len(msg) > 5 else "?"
        await super().handle_zap_message(msg)

    def _send_zap_reply(self, request_id: bytes, status_code: bytes, status_text: bytes,
                        user_id: str = "anonymous") -> None:
        if status_code != b"200":
            self.note_refusal(getattr(self, "_zap_peer", "?"),
                              getattr(self, "_zap_mechanism", "?"), status_text)
        super()._send_zap_reply(request_id, status_code, status_text, user_id)

    def note_refusal(self, peer: str, mechanism: str, reason: bytes) -> None:
        self.refused += 1
        self.on_refusal("unauthorized", f"zmq:tcp://{peer}")
        now = self.clock()
        last = self._last_logged.get(peer)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            return
        if len(self._last_logged) >= _MAX_REMEMBERED_PEERS:
            self._last_logged.clear()
        self._last_logged[peer] = now
        why = {b"Invalid password": "a wrong token as its PLAIN password",
               b"Unknown key": "a CURVE key not in python3.bridge.zmq.curve.client-keys-dir"
               }.get(reason, reason.decode("ascii", "replace"))
        log.warning("refused a ZeroMQ peer at %s at the handshake (%s: %s); nothing it sends "
                    "is read. %d refusals so far (logged once per peer per %gs)", peer,
                    mechanism, why, self.refused, REFUSAL_LOG_INTERVAL)


@dataclass
class ServerSecurity:
    """What the ROUTER speaks: PLAIN with the token, or CURVE with the sidecar's key pair."""

    token: bytes
    curve: bool = False
    public_key: bytes = b""
    secret_key: bytes = b""
    client_keys_dir: str = ""
    authenticator: SidecarAuthenticator | None = None
    on_refusal: Callable[[str, str], None] | None = None  # each handshake refused (audit)

    @property
    def mechanism(self) -> str:
        return "curve" if self.curve else "plain"

    def start(self, context: zmq.Context) -> None:
        """Bind the ZAP handler (before the ROUTER binds: no handshake may find none)."""
        auth = SidecarAuthenticator(context, self.token)
        if self.on_refusal is not None:
            auth.on_refusal = self.on_refusal
        auth.start()
        if self.curve:
            auth.configure_curve(ZAP_DOMAIN, self.client_keys_dir or zmq.auth.CURVE_ALLOW_ANY)
        self.authenticator = auth

    def apply(self, sock: zmq.Socket) -> None:
        sock.zap_domain = ZAP_DOMAIN.encode()
        if self.curve:
            sock.curve_secretkey = self.secret_key
            sock.curve_publickey = self.public_key
            sock.curve_server = True
        else:
            sock.plain_server = True

    def stop(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None

    def connection_info(self) -> dict:
        """What connection.json says about it (no secret: the public key only)."""
        info: dict = {"mechanism": self.mechanism}
        if self.curve:
            info["curve"] = {"server-key": self.public_key.decode()}
        return info


def build_server_security(token: str, curve_enabled: bool, client_keys_dir: str,
                          key_folder: Path) -> ServerSecurity:
    if not curve_enabled:
        return ServerSecurity(token.encode())
    if client_keys_dir and not Path(client_keys_dir).is_dir():
        raise CurveKeyError(f"python3.bridge.zmq.curve.client-keys-dir = {client_keys_dir!r} is "
                            "not a folder; create it and put the clients' public .key files "
                            "there")
    public, secret = ensure_server_keys(key_folder)
    return ServerSecurity(token.encode(), True, public, secret, client_keys_dir)


# ---------------------------------------------------------------- the client side

@dataclass(frozen=True)
class ClientSecurity:
    """How a DEALER authenticates: PLAIN with ``token``, or CURVE to ``server_key``."""

    token: str = ""
    server_key: bytes = b""
    public_key: bytes = b""
    secret_key: bytes = b""

    @property
    def mechanism(self) -> str:
        return "curve" if self.server_key else "plain"

    def apply(self, sock: zmq.Socket) -> None:
        if self.server_key:
            sock.curve_serverkey = self.server_key
            sock.curve_publickey = self.public_key
            sock.curve_secretkey = self.secret_key
        else:
            sock.plain_username = PLAIN_USERNAME.encode()
            sock.plain_password = self.token.encode()


def client_security(token: str | None, server_key: str | bytes | None = None,
                    client_key_file: str | Path | None = None,
                    setting: str = "curve_server_key") -> ClientSecurity:
    """PLAIN with the token, or CURVE when a server key is known (own keys from
    ``client_key_file``, else a fresh pair)."""
    if not server_key:
        return ClientSecurity(token or "")
    public, secret = load_client_keys(client_key_file)
    return ClientSecurity(token or "", check_server_key(server_key, setting), public, secret)
