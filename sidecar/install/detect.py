"""What ``py3sidecar install`` and ``doctor`` find out about an Ignition install on this host.

Owns: reading the install tree and the systemd folder: the Ignition version, the gateway's
systemd unit, the gateway's account. Must not touch: anything it reads (it changes nothing).

How sure each answer is (docs/architecture.md, "Ignition facts"): the Linux installer's unit is
usually ``Ignition-Gateway.service`` in the systemd folder, with ExecStart into the install folder
(reported); its account is the unit's ``User=``, else ``RUN_AS_USER`` of ``ignition.sh`` (the
Tanuki wrapper's setting, reported), else whoever owns ``data/``. The version: a jar named with
it under ``lib/`` (e.g. ``ignition-common-8.1.44.jar``, unverified), else 8.3's
``data/config/resources`` folder (doc: 8.3's folder structure) against 8.1's ``data/ignition.conf``
(reported). Each can be given instead (``--ignition-version``, ``--gateway-unit``,
``--gateway-user``).
"""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass, field
from pathlib import Path

_VERSIONED_JAR = re.compile(r"-(8\.[0-9])\.[0-9]+[^/]*\.jar$")
_UNIT_KEYS = ("ExecStart", "ExecStop", "WorkingDirectory", "PIDFile", "ExecStartPre")


@dataclass
class Detected:
    home: Path
    version: str | None = None
    gateway_unit: str | None = None
    gateway_unit_path: Path | None = None
    gateway_user: str | None = None
    how: dict[str, str] = field(default_factory=dict)  # what each answer came from


def detect_version(home: Path) -> tuple[str | None, str]:
    for jar in sorted((home / "lib").rglob("*.jar")) if (home / "lib").is_dir() else []:
        m = _VERSIONED_JAR.search(jar.name)
        if m:
            return m.group(1), f"the jar {jar.relative_to(home)}"
    if (home / "data" / "config" / "resources").is_dir():
        return "8.3", "data/config/resources (8.3's configuration folder)"
    if (home / "data" / "ignition.conf").is_file():
        return "8.1", "data/ignition.conf (8.1's wrapper configuration)"
    return None, "neither a versioned jar in lib/ nor 8.1's or 8.3's data/ layout"


def unit_values(path: Path) -> dict[str, str]:
    """The [Service] keys of a unit file (last one wins, as systemd reads them)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def find_gateway_unit(systemd_dir: Path, home: Path) -> Path | None:
    """A unit whose ExecStart/WorkingDirectory/... points into ``home`` (Ignition-Gateway first)."""
    if not systemd_dir.is_dir():
        return None
    home_text = str(home.resolve()).rstrip("/") + "/"
    units = sorted(systemd_dir.glob("*.service"),
                   key=lambda p: (p.name != "Ignition-Gateway.service", p.name))
    for unit in units:
        if unit.name == "py3sidecar.service":
            continue
        values = unit_values(unit)
        for key in _UNIT_KEYS:
            for word in values.get(key, "").replace("=", " ").split():
                if (word.lstrip("-@!+:").rstrip("/") + "/").startswith(home_text):
                    return unit
    return None


def run_as_user(home: Path) -> str | None:
    """RUN_AS_USER= of the gateway's start script (the Tanuki wrapper's setting)."""
    for script in (home / "ignition.sh", home / "ignition-gateway"):
        try:
            text = script.read_text(errors="replace")
        except OSError:
            continue
        m = re.search(r"^\s*RUN_AS_USER=[\"']?([A-Za-z0-9_.-]+)", text, re.M)
        if m:
            return m.group(1)
    return None


def owner_of(path: Path) -> str | None:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        return None


def detect(home: Path, systemd_dir: Path, *, version: str | None = None,
           gateway_unit: str | None = None, gateway_user: str | None = None) -> Detected:
    found = Detected(home=home)
    if version:
        found.version, found.how["version"] = version, "--ignition-version"
    else:
        found.version, found.how["version"] = detect_version(home)
    if gateway_unit:
        found.gateway_unit, found.how["gateway_unit"] = gateway_unit, "--gateway-unit"
        path = systemd_dir / gateway_unit
        found.gateway_unit_path = path if path.exists() else None
    else:
        path = find_gateway_unit(systemd_dir, home)
        if path is not None:
            found.gateway_unit, found.gateway_unit_path = path.name, path
            found.how["gateway_unit"] = f"{path} points into {home}"
        else:
            found.how["gateway_unit"] = f"no unit in {systemd_dir} points into {home}"
    if gateway_user:
        found.gateway_user, found.how["gateway_user"] = gateway_user, "--gateway-user"
    else:
        unit_user = (unit_values(found.gateway_unit_path).get("User")
                     if found.gateway_unit_path else None)
        for value, how in ((unit_user, f"User= of {found.gateway_unit}"),
                           (run_as_user(home), "RUN_AS_USER of ignition.sh"),
                           (owner_of(home / "data"), f"the owner of {home / 'data'}")):
            if value:
                found.gateway_user, found.how["gateway_user"] = value, how
                break
        else:
            found.how["gateway_user"] = "not found"
    return found
