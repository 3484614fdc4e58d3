"""Importing the bundle's projects into an Ignition 8.3 gateway over its REST API.

Owns: ``POST /data/api/v1/projects/import/{name}?overwrite=true`` with the project zip
(``application/zip``, header ``X-Ignition-API-Token``) and turning a refusal into advice. Must
not touch: the zips (sidecar/deploy/gateway_project.py). The route, the header and the body are
reported by third parties who drove a real 8.3 gateway (the gateway lists its API at /openapi.json);
the token needs gateway write permission (Platform > Security > Levels / General Settings,
reported).
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

IMPORT_PATH = "/data/api/v1/projects/import/{name}?overwrite=true"


class ImportRefused(RuntimeError):
    pass


def import_project(gateway_url: str, api_token: str, name: str, archive: Path,
                   timeout: float = 300.0) -> int:
    """Imports ``archive`` as project ``name`` (replacing it); returns the HTTP status."""
    url = gateway_url.rstrip("/") + IMPORT_PATH.format(name=urllib.parse.quote(name, safe=""))
    request = urllib.request.Request(url, data=archive.read_bytes(), method="POST", headers={
        "Content-Type": "application/zip", "X-Ignition-API-Token": api_token,
        "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        hint = {401: "the API token was not accepted (--api-token: the key as the gateway "
                     "showed it)",
                403: "the API token lacks gateway write permission (give its security level "
                     "Gateway Write Permissions)"}.get(exc.code, "see the gateway's logs")
        raise ImportRefused(f"the gateway refused the import of {name} ({exc.code} "
                            f"{exc.reason}): {hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ImportRefused(f"cannot reach the gateway at {gateway_url} to import {name}: "
                            f"{getattr(exc, 'reason', exc)} (--gateway-url)") from None
