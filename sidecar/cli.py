"""``py3sidecar``: serve, and talk to a running sidecar from a shell.

Owns: argument parsing, output formatting, exit codes. Must not touch: the pool or the wire
format (it uses ``sidecar.service`` and ``bridge.client``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

EXIT_ERROR = 1
EXIT_USAGE = 2


def _json_default(value: Any) -> Any:
    from bridge.codec import Dataset

    if isinstance(value, Dataset):
        return {"columns": value.columns, "types": value.types, "rows": value.rows}
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=_json_default, indent=None if not isinstance(value, dict)
                     else 2, sort_keys=False))


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"py3sidecar: {what} is not valid JSON ({exc.msg}): {text!r}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from sidecar.config import ConfigError, load
    from sidecar.service import Service

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"py3sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=config.python3.logging.level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = Service(config)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.request_stop())
    try:
        service.start()
    except Exception as exc:  # e.g. the port is taken
        print(f"py3sidecar: cannot start: {exc}", file=sys.stderr)
        service.close()
        return EXIT_ERROR
    service.run()
    return 0


def _client(args: argparse.Namespace):
    from bridge.client import Client

    return Client(args.endpoint, args.token, timeout=args.timeout)


def _run_client(args: argparse.Namespace, action) -> int:
    from bridge.protocol import SidecarError

    try:
        with _client(args) as client:
            _print_json(action(client))
    except SidecarError as exc:
        print(f"py3sidecar: {exc.kind}: {exc}", file=sys.stderr)
        details = {k: v for k, v in exc.details.items() if v is not None}
        if details:
            print(f"py3sidecar: details: {json.dumps(details, default=str)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    variables = {}
    for item in args.var or ():
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise SystemExit(f"py3sidecar: --var expects NAME=JSON, got {item!r}")
        variables[name] = _parse_json(value, f"--var {name}")

    def action(client):
        result = client.execute(args.code, variables, timeout=args.timeout)
        if result.stdout:
            sys.stderr.write(result.stdout)
        if result.stderr:
            sys.stderr.write(result.stderr)
        return result.value
    return _run_client(args, action)


def cmd_call(args: argparse.Namespace) -> int:
    values = [_parse_json(a, f"argument {i + 1}") for i, a in enumerate(args.args)]
    return _run_client(args, lambda c: c.call(args.target, *values, timeout=args.timeout))


def cmd_ping(args: argparse.Namespace) -> int:
    return _run_client(args, lambda c: c.ping())


def cmd_config(args: argparse.Namespace) -> int:
    from sidecar.config import DEFAULT_YAML, ConfigError, load

    if args.print_default:
        sys.stdout.write(DEFAULT_YAML)
        return 0
    if args.check:
        try:
            load(args.check)
        except ConfigError as exc:
            print(f"py3sidecar: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{args.check}: valid")
        return 0
    print("py3sidecar config: use --print-default or --check FILE", file=sys.stderr)
    return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="py3sidecar", description="CPython 3 for Ignition: the sidecar and its tools")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the sidecar in the foreground")
    serve.add_argument("--config", help="YAML file overlaid on the embedded default")
    serve.set_defaults(func=cmd_serve)

    def client_options(p: argparse.ArgumentParser, timeout: float = 30.0) -> None:
        p.add_argument("--endpoint", help="ZeroMQ endpoint (default $PY3SIDECAR_ENDPOINT or "
                       "tcp://127.0.0.1:5557)")
        p.add_argument("--token", help="token (default $PY3SIDECAR_TOKEN or the token file)")
        p.add_argument("--timeout", type=float, default=timeout, help="seconds")

    ex = sub.add_parser("exec", help="run code in a worker; print the value as JSON")
    ex.add_argument("code")
    ex.add_argument("--var", action="append", metavar="NAME=JSON")
    client_options(ex)
    ex.set_defaults(func=cmd_exec)

    call = sub.add_parser("call", help="call package.module:function; print the value as JSON")
    call.add_argument("target")
    call.add_argument("args", nargs="*", metavar="ARG_JSON")
    client_options(call)
    call.set_defaults(func=cmd_call)

    ping = sub.add_parser("ping", help="check that the sidecar answers")
    client_options(ping, 5.0)
    ping.set_defaults(func=cmd_ping)

    cfg = sub.add_parser("config", help="show or check configuration")
    cfg.add_argument("--print-default", action="store_true")
    cfg.add_argument("--check", metavar="FILE")
    cfg.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))
