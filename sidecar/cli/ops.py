"""``py3sidecar packages`` and ``py3sidecar pool``: the console's actions from a shell.

Owns: those subcommands' arguments, talking to the running sidecar's HTTP actions
(``sidecar.http.actions``) with the token as a Bearer header, and their output. Must not touch:
the pool or pip (the sidecar runs them), the other subcommands (``sidecar.cli.commands``).

    py3sidecar packages list|install|uninstall|download --pool NAME [pip arguments]
    py3sidecar pool restart --pool NAME --worker ID | recycle --pool NAME | size --pool NAME N

The sidecar's URL: ``--url``, else ``$PY3SIDECAR_HTTP_URL``, else its connection file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from bridge.connection import read_connection_file
from bridge.token import read_token

EXIT_ERROR = 1
EXIT_USAGE = 2
OWN_OPTIONS = {"--pool": True, "--url": True, "--token": True, "--timeout": True,
               "--json": False}


class CommandError(Exception):
    pass


def sidecar_url(args: argparse.Namespace) -> str:
    url = args.url or os.environ.get("PY3SIDECAR_HTTP_URL")
    if url:
        return url.rstrip("/")
    info = read_connection_file() or {}
    url = (info.get("http") or {}).get("url")
    if not url:
        raise CommandError("cannot find the sidecar's HTTP endpoints: is it running with "
                           "python3.http.enabled? Pass --url http://127.0.0.1:5558")
    return url.rstrip("/")


def http(args: argparse.Namespace, method: str, path: str, body: Any = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    token = args.token or read_token()
    if not token:
        raise CommandError("no token: pass --token, set $PY3SIDECAR_TOKEN, or run as the "
                           "sidecar's user (its token file)")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sidecar_url(args) + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"error": {"message": text.strip()}}
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"cannot reach the sidecar at {sidecar_url(args)}: "
                           f"{getattr(exc, 'reason', exc)}") from None


def split_own_options(args: argparse.Namespace) -> None:
    """Our options may sit among pip's (``install --pool ml --no-index X``): take them out."""
    rest, pip_args = list(args.pip_args), []
    while rest:
        item = rest.pop(0)
        name, eq, value = item.partition("=")
        if name in OWN_OPTIONS:
            if OWN_OPTIONS[name]:
                if not eq:
                    if not rest:
                        raise CommandError(f"{name} needs a value")
                    value = rest.pop(0)
                setattr(args, name[2:], float(value) if name == "--timeout" else value)
            else:
                args.json = True
            continue
        pip_args.append(item)
    args.pip_args = pip_args


def error_text(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        return str(value["error"].get("message"))
    return json.dumps(value)


def cmd_packages(args: argparse.Namespace) -> int:
    try:
        split_own_options(args)
        if not args.pool:
            raise CommandError("--pool NAME is required: the pool whose virtualenv to use")
        if args.action == "list" and not args.pip_args:
            status, value = http(args, "GET", f"/api/pools/{args.pool}/packages")
        else:
            status, value = http(args, "POST", f"/api/pools/{args.pool}/packages",
                                 {"action": args.action, "args": args.pip_args,
                                  "timeout": args.timeout},
                                 timeout=args.timeout + 30.0)
    except CommandError as exc:
        print(f"py3sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if status not in (200, 422):
        print(f"py3sidecar: {error_text(value)}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(value, indent=2))
        return 0 if value.get("ok", True) else EXIT_ERROR
    if "packages" in value:
        for package in value["packages"]:
            print(f"{package['name']} {package['version']}")
        return 0
    for line in value.get("output") or ():
        print(line)
    print(value.get("message", ""))
    if value.get("renewing") is not None:
        print(f"{value['renewing']} workers of pool {args.pool!r} are being renewed: the next "
              "call imports the new code")
    return 0 if value.get("ok") else EXIT_ERROR


def cmd_pool(args: argparse.Namespace) -> int:
    paths = {"restart": f"/api/pools/{args.pool}/workers/{args.worker}/restart",
             "recycle": f"/api/pools/{args.pool}/recycle",
             "size": f"/api/pools/{args.pool}/size"}
    try:
        if args.action == "restart" and args.worker is None:
            raise CommandError("pool restart needs --worker ID (the 'id' of `py3sidecar health "
                               "--json`)")
        if args.action == "size" and args.target is None:
            raise CommandError("pool size needs the new size N")
        body = {"target": args.target} if args.action == "size" else {}
        status, value = http(args, "POST", paths[args.action], body, timeout=args.timeout)
    except CommandError as exc:
        print(f"py3sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if status != 200:
        print(f"py3sidecar: {error_text(value)}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(value, indent=2))
    return 0


def add_ops_commands(sub: Any) -> None:
    pkg = sub.add_parser("packages", help="a pool's packages: list, install, uninstall, "
                         "download (pip in the pool's own virtualenv; needs the token)",
                         description="Runs pip of the pool's interpreter (python3.pools.<name>."
                         "worker.virtualenv) in the running sidecar, one operation at a time; "
                         "after install/uninstall the pool's workers are renewed. Air-gapped: "
                         "`download --pool P -d DIR NAME` where an index is reachable, then "
                         "`install --pool P --no-index --find-links DIR NAME`.")
    pkg.add_argument("action", choices=["list", "install", "uninstall", "download"])
    pkg.add_argument("pip_args", nargs=argparse.REMAINDER, metavar="PIP_ARGUMENTS",
                     help="passed to pip (e.g. --no-index --find-links DIR NAME)")
    pkg.add_argument("--pool", help="the pool (primary or a name of python3.pools)")
    pkg.add_argument("--url", help="the sidecar's HTTP base URL (default: its connection file)")
    pkg.add_argument("--token", help="token (default $PY3SIDECAR_TOKEN or the token file)")
    pkg.add_argument("--timeout", type=float, default=600.0,
                     help="seconds pip may take (default 600)")
    pkg.add_argument("--json", action="store_true")
    pkg.set_defaults(func=cmd_packages)

    pool = sub.add_parser("pool", help="restart a worker, recycle or resize a pool (needs the "
                          "token)")
    pool.add_argument("action", choices=["restart", "recycle", "size"])
    pool.add_argument("target", nargs="?", type=int, help="size: the new number of workers")
    pool.add_argument("--pool", default="primary", help="primary (default) or a named pool")
    pool.add_argument("--worker", help="restart: the worker's id (from health)")
    pool.add_argument("--url", help="the sidecar's HTTP base URL (default: its connection file)")
    pool.add_argument("--token", help="token (default $PY3SIDECAR_TOKEN or the token file)")
    pool.add_argument("--timeout", type=float, default=10.0, help="seconds")
    pool.set_defaults(func=cmd_pool)
