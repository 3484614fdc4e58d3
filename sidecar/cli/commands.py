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

from sidecar.cli import inputs as cli_inputs
from sidecar.cli import ops as cli_ops

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


def cmd_serve(args: argparse.Namespace) -> int:
    from sidecar.config.model import ConfigError, load
    from sidecar.platform.memtune import keep_large_buffers
    from sidecar.service import Service

    try:
        keep_large_buffers()  # large messages reuse their pages (sidecar/platform/memtune.py)
    except ValueError as exc:
        print(f"py3sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"py3sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=config.python3.logging.level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from sidecar.observability.redaction import (
        install_log_redaction,
        redact_text,
        remember_config_secrets,
    )

    # No secret of the config by value in any log line (sidecar/observability/redaction.py).
    remember_config_secrets(config.model_dump(by_alias=True))
    install_log_redaction()
    from bridge.token import TokenError
    from bridge.zmq_auth import CurveKeyError
    from sidecar.process.placement import parse_cpus, pin_process

    # Before any thread or worker starts: they inherit it (python3.pool.cpu-affinity).
    pin_process(parse_cpus(config.python3.pool.cpu_affinity, "python3.pool.cpu-affinity"))

    try:
        service = Service(config)
    except (TokenError, CurveKeyError) as exc:  # unsafe token/key file: what to do, no traceback
        print(f"py3sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    remember_config_secrets({"token": service.token})  # also when it came from its file
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.request_stop())
    # A signal that lands on another thread (py4j's, say) must still wake the loop's poll so
    # the main thread runs the handler: the C-level handler writes to the loop's wake-up pipe.
    signal.set_wakeup_fd(service.loop.wake_w, warn_on_full_buffer=False)
    try:
        service.start()
    except Exception as exc:  # e.g. the port is taken
        print(f"py3sidecar: cannot start: {redact_text(str(exc))}", file=sys.stderr)
        service.close()
        return EXIT_ERROR
    service.run()
    return 0


def _client(args: argparse.Namespace):
    from bridge.client import Client

    return Client(args.endpoint, args.token, timeout=args.timeout)


def _run_client(args: argparse.Namespace, action, formatter=None) -> int:
    """Run ``action(client)``; print its value as JSON, or with ``formatter`` unless --json."""
    from bridge.protocol import SidecarError

    try:
        with _client(args) as client:
            value = action(client)
    except SidecarError as exc:
        print(f"py3sidecar: {exc.kind}: {exc}", file=sys.stderr)
        details = {k: v for k, v in exc.details.items() if v is not None}
        if details:
            print(f"py3sidecar: details: {json.dumps(details, default=str)}", file=sys.stderr)
        return EXIT_ERROR
    if formatter is None or getattr(args, "json", False):
        _print_json(value)
        return 0
    print(formatter(value))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    code = cli_inputs.code(args.code, args.file)
    variables = cli_inputs.variables(args.var, args.vars_file)

    def action(client):
        result = client.execute(code, variables, timeout=args.timeout, pool=args.pool)
        if result.stdout:
            sys.stderr.write(result.stdout)
        if result.stderr:
            sys.stderr.write(result.stderr)
        return result.value
    return _run_client(args, action)


def cmd_call(args: argparse.Namespace) -> int:
    values, kwargs = cli_inputs.call_arguments(args.args, args.args_file, args.kwargs_file)
    return _run_client(args, lambda c: c.call(args.target, *values, timeout=args.timeout,
                                              pool=args.pool, **kwargs))


def cmd_ping(args: argparse.Namespace) -> int:
    return _run_client(args, lambda c: c.ping())


def _mib(value: Any) -> str:
    return f"{value / 1048576:.0f}M" if value else "-"


def _ms(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def format_health(report: dict[str, Any]) -> str:
    """The operator's view of ``health``: pool summary, then one line per worker."""
    pool = report["pool"]
    size, queue = pool["size"], pool["queue"]
    lines = [
        f"status: {report['status']} ({report['reason']})",
        f"pool {pool['name']}: {size['ready']}/{size['target']} ready "
        f"(min {size['min']}, max {size['max']}), spares {size['spares_ready']}/"
        f"{size['spares_wanted']}, queue {queue['length']}/{queue['capacity']}, "
        f"utilization {pool['utilization']:.0%}, "
        f"overloaded {'yes' if pool['resources']['overloaded'] else 'no'}",
        f"calls: {pool['counters']['succeeded']} ok of {pool['counters']['accepted']}; errors "
        + (", ".join(f"{k} {v}" for k, v in sorted(pool["errors"].items())) or "none"),
        f"workers: {pool['counters']['spawned']} started, {pool['counters']['crashes']} "
        f"crashed, {pool['counters']['kills']} killed, {pool['counters']['recycled']} recycled, "
        f"{pool['counters']['spawn_failures']} failed to start",
    ]
    recovery = report.get("recovery") or {}
    if recovery.get("escalated"):
        lines.append("recovery: ESCALATED")
    for alert in (report.get("alerts") or {}).get("firing") or []:
        lines.append(f"alert {alert['level']} {alert['key']}: {alert['summary']}")
    for name, breaker in (report.get("breakers") or {}).items():
        lines.append(f"breaker {name}: {breaker.get('state')}")
    lines.extend(format_quarantine_entries(report.get("quarantine") or {}))
    lines.append("")
    lines.append(f"{'id':>4} {'pid':>7} {'role':6} {'state':9} {'status':12} {'score':>5} "
                 f"{'rss':>6} {'calls':>7} {'mean ms':>8} {'last used':>9}  last failure")
    for w in pool["workers"]:
        failure = (w.get("last_failure") or {})
        last_used = w.get("last_used_ago")
        lines.append(
            f"{w['id']:>4} {w['pid']:>7} {w['role']:6} {w['state']:9} {w['status']:12} "
            f"{w['score']:>5} {_mib(w['rss']):>6} {w['calls']:>7} "
            f"{_ms(w.get('mean_execution_ms')):>8} "
            f"{(f'{last_used:.0f}s ago' if last_used is not None else '-'):>9}  "
            f"{failure.get('type', '')} {failure.get('detail', '')}".rstrip())
    for failure in (recovery.get("recent_failures") or [])[-5:]:
        lines.append(f"failure {failure['seconds_ago']:.0f}s ago: {failure['type']} "
                     f"worker {failure['worker']}: {failure['detail']}")
    return "\n".join(lines)


def cmd_health(args: argparse.Namespace) -> int:
    status = {}

    def action(client):
        report = client.health()
        status["value"] = report["status"]
        return report

    code = _run_client(args, action, format_health)
    return EXIT_ERROR if code or status.get("value") == "UNHEALTHY" else 0


def format_breakers(value: dict[str, Any]) -> str:
    """``breaker status``: one line per breaker, then its recent transitions."""
    lines = []
    for name, b in value["breakers"].items():
        retry = b.get("retry_after")
        lines.append(f"breaker {name}: {b['state']}, {b['consecutive_failures']} consecutive "
                     f"failures, {b['failures_in_window']}/{b['calls_in_window']} in window, "
                     f"{b['rejected_calls']} rejected"
                     + (f", next probe in {retry:.1f}s" if retry else "")
                     + (" (until closed by an operator)" if b["state"] == "forced_open" else ""))
        last = b.get("last_transition")
        if last:
            lines.append(f"  last transition {last['seconds_ago']:.1f}s ago: {last['from']} -> "
                         f"{last['to']} ({last['reason']})")
    return "\n".join(lines)


def cmd_breaker(args: argparse.Namespace) -> int:
    return _run_client(args, lambda c: c.breaker(args.action, args.name), format_breakers)


def format_quarantine_entries(value: dict[str, Any]) -> list[str]:
    """One line per quarantined fingerprint (never its arguments: the sidecar keeps none)."""
    lines = []
    for e in value.get("entries") or ():
        lines.append(f"quarantined {e['fingerprint']}: {e['op']} {e['label']!r}, "
                     f"{e['crashes']} crashes, expires in {e['expires_in']:.0f}s")
    return lines


def format_quarantine(value: dict[str, Any]) -> str:
    """``quarantine list|clear``: what was cleared, then what is still refused."""
    lines = [f"cleared {fp}" for fp in value.get("cleared") or ()]
    entries = format_quarantine_entries(value)
    lines.extend(entries or [f"nothing quarantined ({value.get('refused', 0)} requests refused "
                             "so far)"])
    return "\n".join(lines)


def cmd_quarantine(args: argparse.Namespace) -> int:
    if args.action == "list" and args.fingerprint:
        raise SystemExit("py3sidecar: quarantine list takes no FINGERPRINT (clear does)")
    return _run_client(args, lambda c: c.quarantine(args.action, args.fingerprint),
                       format_quarantine)


def format_diag(value: Any) -> str:
    """A command's ``report`` text when it has one, else its value as JSON."""
    if isinstance(value, dict) and isinstance(value.get("report"), str):
        return value["report"]
    return json.dumps(value, default=_json_default, indent=2)


def cmd_diag(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.top is not None:
        options["top"] = args.top
    if args.limit is not None:
        options["limit"] = args.limit
    if args.rounds is not None:
        options["rounds"] = args.rounds
    return _run_client(args, lambda c: c.diagnostics(args.diag_command, args.timeout,
                                                     **options), format_diag)


def cmd_ignition_bundle(args: argparse.Namespace) -> int:
    from sidecar.deploy.bundle import build_bundle

    try:
        report = build_bundle(args.out, zmq=args.zmq, user=args.user, python=args.python,
                              gateway_unit=args.gateway_unit)
    except (OSError, FileNotFoundError) as exc:
        print(f"py3sidecar: cannot write the bundle: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for path in report.files:
        print(path)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"bundle written to {report.out}; next steps in {report.out / 'INSTALL.txt'}",
          file=sys.stderr)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from bridge.token import TokenError
    from sidecar.config.model import DEFAULT_YAML, ConfigError, load
    from sidecar.config.serve_checks import check_before_serving

    if args.print_default:
        sys.stdout.write(DEFAULT_YAML)
        return 0
    if args.check:
        try:
            check_before_serving(load(args.check))  # what `serve` refuses, refused here too
        except (ConfigError, TokenError) as exc:
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
    serve.add_argument("--config", help="YAML file: its keys over the models' defaults")
    serve.set_defaults(func=cmd_serve)
    add_call_commands(sub)
    add_operator_commands(sub)
    cli_ops.add_ops_commands(sub)  # packages, pool (sidecar/cli/ops.py)
    add_setup_commands(sub)  # in this order in --help: serving first, installing last
    return parser


def client_options(p: argparse.ArgumentParser, timeout: float = 30.0) -> None:
    """What every command that talks to a running sidecar takes."""
    p.add_argument("--endpoint", help="ZeroMQ endpoint (default $PY3SIDECAR_ENDPOINT or "
                   "tcp://127.0.0.1:5557)")
    p.add_argument("--token", help="token (default $PY3SIDECAR_TOKEN or the token file)")
    p.add_argument("--timeout", type=float, default=timeout, help="seconds")


def add_setup_commands(sub: Any) -> None:
    """Checking and installing the sidecar: config, ignition-bundle."""
    cfg = sub.add_parser("config", help="show or check configuration")
    cfg.add_argument("--print-default", action="store_true")
    cfg.add_argument("--check", metavar="FILE")
    cfg.set_defaults(func=cmd_config)

    bundle = sub.add_parser("ignition-bundle", help="write what an Ignition gateway needs: "
                            "project (folder + zip), jars, systemd unit")
    bundle.add_argument("out", help="output folder (created)")
    bundle.add_argument("--zmq", action="store_true",
                        help="also ship JeroMQ (for py3sidecar.settings.TRANSPORT = 'zmq')")
    bundle.add_argument("--user", default="py3sidecar",
                        help="the sidecar's own OS account (default: py3sidecar; `py3sidecar "
                        "install` creates it); the gateway's account joins the token group")
    bundle.add_argument("--gateway-unit", default="Ignition-Gateway.service",
                        help="the gateway's systemd unit the sidecar starts before")
    bundle.add_argument("--python", help="the interpreter the systemd unit runs (default: "
                        "this one); it must be readable by --user and have py3sidecar "
                        "installed, not as an editable checkout")
    bundle.set_defaults(func=cmd_ignition_bundle)

    from sidecar.install.cli import add_install_commands

    add_install_commands(sub)  # install, uninstall, doctor


def add_call_commands(sub: Any) -> None:
    """Running code in a worker: exec, call."""
    ex = sub.add_parser("exec", help="run code in a worker; print the value as JSON")
    ex.add_argument("code", nargs="?", help="the code; '-' reads it from stdin")
    ex.add_argument("--file", metavar="F", help="read the code from this file")
    ex.add_argument("--var", action="append", metavar="NAME=JSON",
                    help="a variable; NAME=@file.json reads its value from a file")
    ex.add_argument("--vars-file", action="append", metavar="FILE.json",
                    help="a JSON object of variables (--var entries win)")
    ex.add_argument("--pool", help="one of the sidecar's named pools (python3.pools); "
                    "default: the primary pool")
    client_options(ex)
    ex.set_defaults(func=cmd_exec)

    call = sub.add_parser("call", help="call package.module:function; print the value as JSON")
    call.add_argument("target")
    call.add_argument("args", nargs="*", metavar="ARG_JSON",
                      help="each a JSON value, or @file.json to read it from a file")
    call.add_argument("--args-file", metavar="FILE.json",
                      help="a JSON array of positional arguments (before the ARG_JSONs)")
    call.add_argument("--kwargs-file", metavar="FILE.json",
                      help="a JSON object of keyword arguments")
    call.add_argument("--pool", help="one of the sidecar's named pools (python3.pools); "
                      "default: the primary pool")
    client_options(call)
    call.set_defaults(func=cmd_call)


def add_operator_commands(sub: Any) -> None:
    """Looking at and steering a running sidecar: ping, health, breaker, quarantine, diag."""
    ping = sub.add_parser("ping", help="check that the sidecar answers")
    client_options(ping, 5.0)
    ping.set_defaults(func=cmd_ping)

    health = sub.add_parser("health", help="pool and worker health (exit 1 when UNHEALTHY)")
    health.add_argument("--json", action="store_true", help="the full report as JSON")
    client_options(health, 5.0)
    health.set_defaults(func=cmd_health)

    brk = sub.add_parser("breaker", help="show or force the circuit breaker (needs the token)")
    brk.add_argument("action", choices=["status", "open", "close", "disable"],
                     help="open: refuse calls until closed; close: back to normal; disable: "
                     "let every call through unmeasured")
    brk.add_argument("--name", default="primary",
                     help="which breaker: primary (default), secondary or remote")
    brk.add_argument("--json", action="store_true")
    client_options(brk, 5.0)
    brk.set_defaults(func=cmd_breaker)

    qua = sub.add_parser("quarantine", help="poison requests the sidecar refuses: list them, or "
                         "clear one (FINGERPRINT) or all (needs the token)")
    qua.add_argument("action", choices=["list", "clear"])
    qua.add_argument("fingerprint", nargs="?", help="clear only this one (from `list`)")
    qua.add_argument("--json", action="store_true")
    client_options(qua, 5.0)
    qua.set_defaults(func=cmd_quarantine)

    diag = sub.add_parser("diag", help="diagnostics: health, performance, memory, threads, "
                          "history, workers, config (needs the token)")
    diag.add_argument("diag_command", metavar="COMMAND",
                      help="health | performance | memory | threads | history | workers | "
                      "config | help")
    diag.add_argument("--top", type=int, help="memory: the N biggest allocation sites per idle "
                      "worker (tracemalloc; the first request starts tracing)")
    diag.add_argument("--limit", type=int, help="history: how many recent calls (default 20)")
    diag.add_argument("--rounds", type=int, help="performance: benchmark rounds (default 3)")
    diag.add_argument("--json", action="store_true", help="the full value as JSON")
    client_options(diag, 10.0)
    diag.set_defaults(func=cmd_diag)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except cli_inputs.UsageError as exc:
        print(f"py3sidecar: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    sys.exit(code)
