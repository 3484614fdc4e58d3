"""Secrets never leave the sidecar: not in ``diag config``, health, logs, metrics labels or
alert text.

Owns: the rules that tell a secret (by key, by value), replacing them in a copy of a config tree
(``redact_secrets``), in any text (``redact_text``), the process's list of known secret values
and the logging filter that applies them to every log line (``install_log_redaction``). Must not
touch: the config itself (it works on a copy), the wire, delivery of alerts.

By key. A key is a secret when its name contains token, password, passwd, secret, credential,
api-key or private-key (any case, ``-`` or ``_``); ``*-file``/``*-path`` keys name where a
secret lives, not the secret, and are shown. A non-empty secret reads ``<redacted>``; an empty
one stays empty so an operator can still see that it is unset.

By value. In any string, at any depth:
- ``scheme://user:pass@host`` keeps the user and loses the password (``user:<redacted>@``);
- a URL whose scheme is not a plain location (tcp, http, tls, file, ...) is cut to
  ``scheme://<redacted>``: for many apprise services the host or path *is* the secret
  (``pbul://<token>``, ``tgram://<bot token>/<chat>``, ``ntfy://<topic>``);
- webhook URLs of the well-known services (Slack, Discord, Teams, Telegram's API) lose their
  path, and query parameters with a secret-looking name lose their value;
- ``env`` maps (``python3.worker.env``, a pool's, the secondary's) show every value as
  ``<redacted>`` except the names listed in an ``env-not-secret`` list;
- an alert channel's ``url`` is never shown whole: ``scheme://<redacted>``; elsewhere the
  channel is named by scheme and position (``json#0``, see ``channel_name``);
- every value remembered as secret (``remember_config_secrets``: the values above, taken from
  the loaded config) is replaced wherever it appears, which is what keeps a library's own log
  line (apprise, urllib3) from carrying a token.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from typing import Any
from urllib.parse import unquote

REDACTED = "<redacted>"
NOT_SECRET_ENV = "env-not-secret"
_SECRET = re.compile(r"token|passw(or)?d|secret|credential|api[-_]?key|private[-_]?key", re.I)
_LOCATION = re.compile(r"[-_](file|path)$", re.I)

# A URL inside any text: up to whitespace, a quote or a bracket (so a repr()'d string ends it).
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,30})://(?P<rest>[^\s'\"<>`]*)")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]{0,19})://")
# Schemes whose host is where something lives, not what grants access to it.
PLAIN_SCHEMES = frozenset({"http", "https", "tcp", "udp", "tls", "ipc", "inproc", "ucx", "ws",
                           "wss", "file", "unix", "pgm", "epgm"})
# Hosts whose URL path is the credential (an incoming webhook is its own password).
WEBHOOK_HOSTS = re.compile(r"(^|\.)(hooks\.slack\.com|discord(app)?\.com|webhook\.office\.com|"
                           r"outlook\.office(365)?\.com|api\.telegram\.org|hooks\.zapier\.com|"
                           r"chat\.googleapis\.com)$", re.I)
_ALNUM = re.compile(r"[A-Za-z0-9]")
_QUERY_SECRET = re.compile(r"(?P<name>[^?&=#/]+)=(?P<value>[^&#]*)")
_QUERY_SECRET_NAMES = re.compile(r"^(key|sig|signature|auth|code|access[-_]?key)$", re.I)


def is_secret_key(key: Any) -> bool:
    return (isinstance(key, str) and bool(_SECRET.search(key))
            and not _LOCATION.search(key) and key != NOT_SECRET_ENV)


def channel_name(url: str, index: int) -> str:
    """How an alert channel is named in health, logs, metrics and the dashboard: its scheme and
    its position in ``python3.alerts.channels`` (``json#0``): nothing of the URL's secret."""
    match = _SCHEME.match(url or "")
    return f"{match.group(1).lower() if match else 'url'}#{index}"


def channel_shown(url: str) -> str:
    """An alert channel's URL as ``diag config`` shows it: the scheme only."""
    match = _SCHEME.match(url or "")
    return f"{match.group(1).lower()}://{REDACTED}" if match else REDACTED


# ------------------------------------------------------------------ by value, in any text
def _redact_url(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    if not _ALNUM.search(rest):  # "mailto://, json://" in advice: nothing to hide
        return match.group(0)
    if scheme.lower() not in PLAIN_SCHEMES:
        return f"{scheme}://{REDACTED}"
    netloc, sep, tail = rest.partition("/")
    if "?" in netloc:  # host?query with no path
        netloc, _, query = netloc.partition("?")
        tail, sep = f"?{query}{sep}{tail}", ""  # a '/' after the '?' is the query's
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if colon else netloc
    hostname = netloc.rpartition("@")[2].split(":", 1)[0].strip("[]")  # before any port
    if tail and WEBHOOK_HOSTS.search(hostname):
        return f"{scheme}://{netloc}/{REDACTED}"
    if "?" in tail:
        path, _, query = tail.partition("?")
        query = _QUERY_SECRET.sub(
            lambda m: f"{m.group('name')}={REDACTED}" if m.group("value") and (
                is_secret_key(m.group("name")) or _QUERY_SECRET_NAMES.match(m.group("name")))
            else m.group(0), query)
        tail = f"{path}?{query}"
    return f"{scheme}://{netloc}{sep}{tail}"


def redact_text(text: str) -> str:
    """``text`` with URL credentials, secret-bearing URLs and every known secret replaced."""
    if "://" in text:
        text = _URL.sub(_redact_url, text)
    with _known_lock:
        known = _known_sorted
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_values(tree: Any) -> Any:
    """A copy of ``tree`` with ``redact_text`` applied to every string (keys stay as they are)."""
    if isinstance(tree, str):
        return redact_text(tree)
    if isinstance(tree, dict):
        return {key: redact_values(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [redact_values(item) for item in tree]
    return tree


def shown_value(location: Any, value: Any) -> str:
    """A value as a config error quotes it (``_describe`` in sidecar.config.model): not at all under
    a secret key or an ``env`` map, a channel URL by its scheme, anything else redacted."""
    parts = [str(part) for part in location]
    if any(is_secret_key(part) for part in parts) or "env" in parts:
        return REDACTED
    if parts and parts[-1] == "url" and isinstance(value, str):
        return repr(channel_shown(value))
    return redact_text(repr(value))


def redact_notification(notification: Any) -> Any:
    """An alert ``Notification`` (a dataclass) with its text and details redacted."""
    return dataclasses.replace(
        notification, title=redact_text(notification.title),
        body=redact_text(notification.body), firing=redact_values(notification.firing),
        resolved=redact_values(notification.resolved))


# ------------------------------------------------------------------ a config tree
def _not_secret_names(tree: Any) -> set[str]:
    """Every name listed under an ``env-not-secret`` key anywhere in the tree."""
    names: set[str] = set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == NOT_SECRET_ENV and isinstance(value, (list, tuple)):
                names.update(str(v) for v in value)
            else:
                names |= _not_secret_names(value)
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            names |= _not_secret_names(item)
    return names


def _redact_tree(tree: Any, not_secret: set[str]) -> Any:
    if isinstance(tree, dict):
        shown: dict[Any, Any] = {}
        for key, value in tree.items():
            if is_secret_key(key):
                shown[key] = REDACTED if value not in ("", None) else value
            elif key == "env" and isinstance(value, dict):
                shown[key] = {name: _redact_tree(v, not_secret)
                              if name in not_secret or v in ("", None) else REDACTED
                              for name, v in value.items()}
            elif key == "url" and isinstance(value, str):
                shown[key] = channel_shown(value)
            else:
                shown[key] = _redact_tree(value, not_secret)
        return shown
    if isinstance(tree, (list, tuple)):
        return [_redact_tree(item, not_secret) for item in tree]
    if isinstance(tree, str):
        return redact_text(tree)
    return tree


def redact_secrets(tree: Any) -> Any:
    """A copy of ``tree`` with every secret replaced, by key and by value (module docstring)."""
    return _redact_tree(tree, _not_secret_names(tree))


# ------------------------------------------------------------------ known secret values
MIN_KNOWN = 6        # shorter values would blank ordinary words of every log line
MIN_URL_PIECE = 8    # a piece of a channel URL (host, path segment) counts from this length
_known: set[str] = set()
_known_sorted: tuple[str, ...] = ()
_known_lock = threading.Lock()
# a host or port, not a token: 10.0.0.5, 10.0.0.5:8000, localhost, [::1]:80, 8000
_ADDRESS = re.compile(r"(\d{1,3}(\.\d{1,3}){3}|localhost|\[[0-9a-f:.]+\])(:\d+)?|\d{1,5}", re.I)


def remember_secrets(values: Any) -> None:
    """Add values to the process's known secrets (longest replaced first)."""
    global _known_sorted
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_KNOWN}
    with _known_lock:
        _known.update(fresh)
        _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def forget_secrets() -> None:
    """Tests only: start from an empty list."""
    global _known_sorted
    with _known_lock:
        _known.clear()
        _known_sorted = ()


def secrets_of_url(url: str) -> set[str]:
    """The parts of a URL that may grant access: the password, and for a URL with no password
    every host, user and path piece long enough to be a token (apprise keeps tokens there)."""
    match = _URL.search(url or "")
    if not match:
        return {url} if url else set()
    rest = match.group("rest").partition("?")[0].partition("#")[0]
    found = {url, rest}
    netloc, _, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if colon:
        found.update({password, unquote(password)})
    pieces = [p for p in re.split(r"[/@]", rest) if p]
    if colon:  # user:pass@host: the host is a host
        pieces = [p for p in re.split(r"/", path) if p]
    for piece in pieces:
        for part in {piece, *piece.split(":")}:
            if len(part) >= MIN_URL_PIECE and not _ADDRESS.fullmatch(part):
                found.add(part)
    return {f for f in found if f}


def _config_secrets(tree: Any, not_secret: set[str], found: set[str]) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if is_secret_key(key) and isinstance(value, str):
                found.add(value)
            elif key == "env" and isinstance(value, dict):
                for name, v in value.items():
                    if name not in not_secret and isinstance(v, str):
                        found.update(secrets_of_url(v))
            elif key == "url" and isinstance(value, str):
                found.update(secrets_of_url(value))
            else:
                _config_secrets(value, not_secret, found)
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            _config_secrets(item, not_secret, found)
    elif isinstance(tree, str) and "://" in tree:
        for match in _URL.finditer(tree):
            userinfo = match.group("rest").partition("/")[0].rpartition("@")[0]
            if ":" in userinfo:
                found.add(userinfo.partition(":")[2])


def remember_config_secrets(tree: Any) -> None:
    """Remember every secret value of a config tree (``config.model_dump(by_alias=True)``)."""
    found: set[str] = set()
    _config_secrets(tree, _not_secret_names(tree), found)
    remember_secrets(found)


# ------------------------------------------------------------------ the logs
class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack with ``redact_text``; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it; show no argument
            message, record.args = str(record.msg), None
        shown = redact_text(message)
        if shown != message or record.args:
            record.msg, record.args = shown, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Every handler of the root logger (the sidecar's log) redacts what it writes."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
