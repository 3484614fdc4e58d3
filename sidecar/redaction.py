"""Secrets never leave the sidecar through its diagnostics.

Owns: replacing the value of every secret-looking key, at any depth of a config tree (maps and
lists), before the tree is shown (``diag config``). Must not touch: the config itself (it works
on a copy), the wire.

A key is a secret when its name contains token, password, passwd, secret, credential, api-key or
private-key (any case, ``-`` or ``_``); ``*-file``/``*-path`` keys name where a secret lives,
not the secret, and are shown. A non-empty secret reads ``<redacted>``; an empty one stays empty
so an operator can still see that it is unset.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
_SECRET = re.compile(r"token|passw(or)?d|secret|credential|api[-_]?key|private[-_]?key", re.I)
_LOCATION = re.compile(r"[-_](file|path)$", re.I)


def is_secret_key(key: Any) -> bool:
    return (isinstance(key, str) and bool(_SECRET.search(key))
            and not _LOCATION.search(key))


def redact_secrets(tree: Any) -> Any:
    """A copy of ``tree`` with every secret's value replaced (see the module docstring)."""
    if isinstance(tree, dict):
        return {key: (REDACTED if value not in ("", None) else value)
                if is_secret_key(key) else redact_secrets(value)
                for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [redact_secrets(item) for item in tree]
    return tree
