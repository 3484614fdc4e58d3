"""What a request relayed by the gateway's message handler may do (``python3.access.routed``).

Owns: the decision for a request that carries the relay's mark (``routed``, see
bridge/protocol.py and docs/protocol.md): which ops the route is granted, which ``call`` targets
(the allow-list's patterns, parsed and compiled once), and the refusal's wording, which names
the setting to change. Must not touch: sockets, the pool, the config file (``Service`` builds
the policy from ``python3.access.routed`` and asks it only about marked requests; an unmarked
request, a gateway script's or the CLI's, never reaches this module).

    op          granted to the route when
    ping        always
    health      always
    call        its target matches an entry of allow-targets (below)
    execute     execute: true
    diag        diag: true
    breaker     diag: true   (operator actions: the CLI and gateway scripts keep them)
    quarantine  diag: true

A pattern is ``MODULE:FUNCTION`` (fnmatch-like, case-sensitive) or ``MODULE`` alone, which
stands for ``MODULE:*``. In MODULE, ``*`` spans dots, so ``plant.models.*`` takes every module
below ``plant.models``. FUNCTION is matched name by name along its dots, and there ``*`` is one
*public* name: ``statistics:*`` grants ``statistics:mean`` but neither ``statistics:_sum`` nor
an attribute path such as ``statistics:random._os.system`` (a module's imports would otherwise
be reached through any wildcard). A private name is granted only when the pattern spells it
(``mymodule:_helper``). A wildcard still grants every public name the module has, those it
imported included: list functions by name where that matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

ALLOW_TARGETS_KEY = "python3.access.routed.allow-targets"
EXECUTE_KEY = "python3.access.routed.execute"
DIAG_KEY = "python3.access.routed.diag"
ALWAYS_GRANTED = ("ping", "health")
DIAG_OPS = ("diag", "breaker", "quarantine")
_CACHE_LIMIT = 4096  # decisions remembered per target; cleared when full
_NAME = re.compile(r"^[^\s:]+$")


class PatternError(ValueError):
    """An allow-targets entry that cannot be a target pattern (the message says why)."""


@dataclass(frozen=True)
class TargetPattern:
    text: str
    module: re.Pattern[str]
    names: tuple[tuple[re.Pattern[str], bool], ...]  # (compiled part, spells a private name)

    def matches(self, module: str, names: list[str]) -> bool:
        if len(names) != len(self.names) or not self.module.match(module):
            return False
        for name, (part, private) in zip(names, self.names):
            if not part.match(name) or (name.startswith("_") and not private):
                return False
        return True


def parse_pattern(text: Any) -> TargetPattern:
    """One allow-targets entry, compiled; ``PatternError`` says what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise PatternError(f"{text!r} is not a target pattern; write 'module:function', "
                           "'package.module:*' or 'package.*'")
    module, sep, function = text.strip().partition(":")
    function = function if sep else "*"
    if not module or not _NAME.match(module) or ":" in function:
        raise PatternError(f"{text!r}: expected 'module:function' (one ':', no spaces), e.g. "
                           "'mymodule:predict' or 'plant.models.*'")
    parts = function.split(".")
    if not all(part and _NAME.match(part) for part in parts):
        raise PatternError(f"{text!r}: the function part {function!r} has an empty or spaced "
                           "name; write e.g. 'mymodule:Model.predict' or 'mymodule:*'")
    return TargetPattern(text, re.compile(translate(module)),
                         tuple((re.compile(translate(p)), p.startswith("_")) for p in parts))


@dataclass
class RoutePolicy:
    """``python3.access.routed``, compiled: ``refusal(request)`` is None when granted."""

    allow_targets: tuple[str, ...] = ()
    execute: bool = False
    diag: bool = False
    patterns: tuple[TargetPattern, ...] = field(init=False, repr=False)
    decided: dict[str, bool] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.patterns = tuple(parse_pattern(p) for p in self.allow_targets)

    def refusal(self, request: dict[str, Any]) -> str | None:
        """None when the route is granted ``request`` (validated, marked); else the message of
        the ``forbidden`` reply, naming the setting that would grant it."""
        op = request.get("op")
        if op in ALWAYS_GRANTED:
            return None
        route = _route_name(request.get("routed"))
        if op == "call":
            target = request.get("target")
            if isinstance(target, str) and self.target_allowed(target):
                return None
            return (f"the call of {target!r} came through {route}, and "
                    f"{ALLOW_TARGETS_KEY} does not list it; set {ALLOW_TARGETS_KEY} to "
                    f"include {target!r} in the sidecar's config, or call it from a gateway "
                    "script")
        if op == "execute":
            if self.execute:
                return None
            return (f"execute came through {route}: running code sent by a client is off for "
                    f"that route; set {EXECUTE_KEY} to true in the sidecar's config (anyone "
                    "who can open a client of that project can then run any Python as the "
                    f"sidecar's user), or list the functions clients need in {ALLOW_TARGETS_KEY}")
        if op in DIAG_OPS:
            if self.diag:
                return None
            return (f"the {op} op came through {route}: diagnostics and operator ops are off "
                    f"for that route; set {DIAG_KEY} to true in the sidecar's config, or use "
                    "`py3sidecar diag|breaker|quarantine` on the sidecar's host")
        return f"the op {op!r} is not offered to {route}"

    def target_allowed(self, target: str) -> bool:
        known = self.decided.get(target)
        if known is not None:
            return known
        module, _, function = target.partition(":")
        names = function.split(".")
        allowed = any(p.matches(module, names) for p in self.patterns)
        if len(self.decided) >= _CACHE_LIMIT:
            self.decided.clear()
        self.decided[target] = allowed
        return allowed


def _route_name(routed: Any) -> str:
    if not isinstance(routed, dict):
        return "the gateway route"
    route, project = routed.get("route") or "a relay", routed.get("project")
    return f"the {route} route of project {project!r}" if project else f"the {route} route"

