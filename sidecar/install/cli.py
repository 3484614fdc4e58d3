"""The ``install``, ``uninstall`` and ``doctor`` subcommands of ``py3sidecar``.

Owns: their arguments, output and exit codes. Must not touch: what they do (sidecar/install/plan.py,
sidecar/install/doctor.py); the host (sidecar/install/seam.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sidecar.deploy import bundle_texts as texts

EXIT_ERROR = 1
EXIT_USAGE = 2


def _host(args: argparse.Namespace, dry_run: bool = False):
    from sidecar.install.seam import Host

    return Host(args.root, dry_run=dry_run, echo=lambda line: print(line, file=sys.stderr))


def cmd_install(args: argparse.Namespace) -> int:
    from sidecar.install.plan import InstallError, Options, install
    from sidecar.install.rest import ImportRefused
    from sidecar.install.seam import HostError

    options = Options(
        ignition_home=Path(args.ignition_home), ignition_version=args.ignition_version,
        gateway_user=args.gateway_user, gateway_unit=args.gateway_unit,
        systemd_dir=Path(args.systemd_dir) if args.systemd_dir else None,
        sidecar_user=args.sidecar_user, worker_user=args.worker_user,
        token_group=args.token_group, no_start=args.no_start, api_token=args.api_token,
        gateway_url=args.gateway_url, zmq=args.zmq)
    try:
        manifest = install(options, _host(args, args.dry_run))
    except (InstallError, HostError, ImportRefused, OSError) as exc:
        print(f"py3sidecar install: {exc}", file=sys.stderr)
        return EXIT_ERROR
    data = manifest.data
    if args.dry_run:
        print("dry run: nothing was changed", file=sys.stderr)
        return 0
    print(f"installed for Ignition {data['ignition_version']} in {data['ignition_home']} "
          f"(gateway unit {data['gateway_unit']}, gateway account {data['gateway_user']}); "
          f"manifest {manifest.path}", file=sys.stderr)
    print(f"next: restart the gateway ({data['gateway_unit']}) so it loads the jars and joins "
          f"the group {data['token_group']}, then `py3sidecar doctor --ignition-home "
          f"{data['ignition_home']}`", file=sys.stderr)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from sidecar.install.plan import InstallError, uninstall
    from sidecar.install.seam import HostError

    try:
        uninstall(_host(args, args.dry_run), keep_site_settings=args.keep_site_settings)
    except (InstallError, HostError, OSError) as exc:
        print(f"py3sidecar uninstall: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from sidecar.install.doctor import Doctor, report_json, report_text

    doctor = Doctor(Path(args.ignition_home), _host(args),
                    systemd_dir=Path(args.systemd_dir) if args.systemd_dir else None,
                    gateway_unit=args.gateway_unit, gateway_user=args.gateway_user,
                    connection_file=Path(args.connection_file) if args.connection_file else None)
    checks = doctor.run()
    print(report_json(checks) if args.json else report_text(checks))
    return 0 if all(c.ok for c in checks) else EXIT_ERROR


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default="/", help="prefix for /etc, /var/lib and the systemd "
                   "folder (tests; default /)")


def add_install_commands(sub: Any) -> None:
    ins = sub.add_parser("install", help="install the sidecar and the bundle on an Ignition "
                         "host (again: upgrade)")
    ins.add_argument("--ignition-home", required=True, metavar="DIR",
                     help="the gateway's folder (often /usr/local/bin/ignition)")
    ins.add_argument("--ignition-version", choices=["8.1", "8.3"],
                     help="default: read from the install folder")
    ins.add_argument("--gateway-user", help="the gateway's account (default: its unit's User=, "
                     "RUN_AS_USER of ignition.sh, else the owner of DIR/data)")
    ins.add_argument("--gateway-unit", help="the gateway's systemd unit (default: the one that "
                     "points into DIR; usually Ignition-Gateway.service)")
    ins.add_argument("--systemd-dir", help="where units are (default /etc/systemd/system)")
    ins.add_argument("--sidecar-user", default=texts.DEFAULT_SIDECAR_USER)
    ins.add_argument("--worker-user", default=texts.DEFAULT_WORKER_USER,
                     help="python3.worker.user: the account user code runs as")
    ins.add_argument("--token-group", default=texts.DEFAULT_TOKEN_GROUP,
                     help="the group that may read the token (the gateway's account joins it)")
    ins.add_argument("--api-token", help="8.3: import the projects over the gateway's REST API "
                     "with this API token (gateway write permission)")
    ins.add_argument("--gateway-url", default="http://127.0.0.1:8088")
    ins.add_argument("--zmq", action="store_true", help="also install JeroMQ")
    ins.add_argument("--dry-run", action="store_true", help="print every step, change nothing")
    ins.add_argument("--no-start", action="store_true", help="enable the unit, do not start it")
    _common(ins)
    ins.set_defaults(func=cmd_install)

    uni = sub.add_parser("uninstall", help="remove exactly what install made (its manifest)")
    uni.add_argument("--keep-site-settings", action="store_true",
                     help="keep /etc/py3sidecar/ignition-site.json")
    uni.add_argument("--dry-run", action="store_true")
    _common(uni)
    uni.set_defaults(func=cmd_uninstall)

    doc = sub.add_parser("doctor", help="check the install, each failure with its fix "
                         "(exit 1 unless all pass)")
    doc.add_argument("--ignition-home", required=True, metavar="DIR")
    doc.add_argument("--systemd-dir")
    doc.add_argument("--gateway-unit")
    doc.add_argument("--gateway-user")
    doc.add_argument("--connection-file", help="default: the unit's runtime folder")
    doc.add_argument("--json", action="store_true")
    _common(doc)
    doc.set_defaults(func=cmd_doctor)
