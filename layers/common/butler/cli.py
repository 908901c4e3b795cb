"""``python -m butler``: the command line (CONTRACT section 3). Commands call the same services as the Lambdas.

Exit codes: 0 ok, 1 runtime failure (QRS, InfluxDB, AWS), 2 invalid configuration or usage, 3 evaluation aborted
by the safety cap.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from butler.config import Config, ConfigError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_ABORTED = 0, 1, 2, 3


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def _config(args: argparse.Namespace) -> Config:
    from butler.wiring import load_config

    return load_config(args.config)


def cmd_validate_config(args: argparse.Namespace) -> int:
    from butler.config import load

    load(args.file)
    print("ok")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from butler.licenses.status import license_status
    from butler.wiring import qrs_client

    client = qrs_client(_config(args))
    try:
        _print_json(license_status(client.access_type_overview()))
    finally:
        client.close()
    return EXIT_OK


def cmd_collect(args: argparse.Namespace) -> int:
    from butler.sinks.influx import InfluxWriteError
    from butler.wiring import run_collect

    try:
        summary = run_collect(_config(args))
    except InfluxWriteError as exc:  # the writer could not even be built (e.g. the token secret)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _print_json(summary.to_json())
    if summary.error:  # a failed write is never silent: the summary says what was written, the exit code fails
        print(f"error: {summary.error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    import logging
    import os

    from butler.licenses.evaluate import format_table
    from butler.lock import LockBusy
    from butler.observability import logger
    from butler.wiring import run_evaluate

    handler = logger.registered_handler
    logs = handler if isinstance(handler, logging.StreamHandler) else logging.StreamHandler()
    previous, logs.stream = logs.stream, sys.stderr  # stdout is the report's
    try:
        report = run_evaluate(_config(args), dry_run=True if args.dry_run else None, audit_file=args.audit_file,
                              actor=f"cli:{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}")
    except LockBusy as exc:
        print(f"not run: {exc}", file=sys.stderr)
        return EXIT_OK
    finally:
        logs.stream = previous
    if args.json:
        _print_json(report.to_json())
    else:
        print(format_table(report))
    if report.aborted:
        print(f"evaluation aborted: {report.abort_reason}", file=sys.stderr)
        return EXIT_ABORTED
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from butler.api import Backend, create_app
    from butler.api.local import serve

    config = _config(args)  # an invalid configuration stops here (exit 2), not at the first request
    serve(create_app(Backend(lambda: config, audit_file=args.audit_file, actor="local")), args.port)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from butler.demo import run

    return run()


def cmd_audit(args: argparse.Namespace) -> int:
    """The audit trail, one JSON record per line: a user's history, a run's records, or recent releases."""
    from datetime import UTC, datetime, timedelta

    from butler.wiring import audit_sink

    audit = audit_sink(_config(args), args.audit_file)
    if args.user:
        directory, _, user_id = args.user.partition("\\")
        if not user_id:
            print("--user takes DIRECTORY\\userid", file=sys.stderr)
            return EXIT_CONFIG
        records = audit.records_for_user(directory, user_id)
    elif args.run:
        records = audit.records_for_run(args.run)
    else:
        now = datetime.now(UTC)
        records = audit.releases_between(now - timedelta(days=args.days), now)
    for record in records:
        print(json.dumps(record, default=str, ensure_ascii=False))
    return EXIT_OK


def cmd_sam_params(args: argparse.Namespace) -> int:
    from pathlib import Path

    from butler import deploy
    from butler.config import load

    file = Path(args.config)
    params = deploy.samconfig_overrides(Path(args.samconfig), args.config_env) if args.samconfig else {}
    params |= deploy.parameter_overrides(load(file), file, Path(args.config_dir))  # the file, not the environment
    print(deploy.format_overrides(params))
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="butler", description="Qlik Sense access license butler")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str,
                config: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        if config:
            sub.add_argument("--config", required=True, metavar="FILE", help="the YAML configuration")
        sub.set_defaults(handler=handler)
        return sub

    validate = command("validate-config", cmd_validate_config, "check a configuration file", config=False)
    validate.add_argument("file", metavar="FILE")
    command("status", cmd_status, "print the license status JSON")
    command("collect", cmd_collect, "collect license metrics once into InfluxDB")
    evaluate = command("evaluate", cmd_evaluate, "run one license evaluation")
    evaluate.add_argument("--dry-run", action="store_true", help="release nothing, whatever the config says")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    serve = command("serve", cmd_serve, "serve the /v4 API on 127.0.0.1")
    serve.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0: any free port)")
    serve.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    demo = command("demo", cmd_demo, "run the self-contained local demo", config=False)
    demo.add_argument("--config", default=None, metavar="FILE", help=argparse.SUPPRESS)
    audit = command("audit", cmd_audit, "print audit records: a user's history, a run, or recent releases")
    which = audit.add_mutually_exclusive_group()
    which.add_argument("--user", metavar="DIRECTORY\\USERID", help="one user's history")
    which.add_argument("--run", metavar="RUN_ID", help="every record of one run")
    which.add_argument("--days", type=float, default=7, help="releases of the last N days (default 7)")
    audit.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    sam_params = command("sam-params", cmd_sam_params, "print sam deploy --parameter-overrides from the config")
    sam_params.add_argument("--samconfig", metavar="FILE", help="merge this samconfig.toml environment's overrides")
    sam_params.add_argument("--config-env", default="default", metavar="ENV", help="samconfig environment")
    sam_params.add_argument("--config-dir", default="config", metavar="DIR", help="the folder packaged in the layer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr if args.command != "validate-config" else sys.stdout)
        return EXIT_CONFIG
    except Exception as exc:  # a clear one-line reason, never a traceback, for QRS/InfluxDB/AWS failures
        if isinstance(exc, _operational_errors()):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


def _operational_errors() -> tuple[type[BaseException], ...]:
    """Failures of the outside world (QRS, certificates, InfluxDB, AWS, files), as opposed to bugs."""
    from botocore.exceptions import BotoCoreError, ClientError

    from butler.qrs import QrsError
    from butler.qrs.certs import CertificateError
    from butler.sinks.influx import InfluxWriteError

    return QrsError, CertificateError, InfluxWriteError, BotoCoreError, ClientError, OSError
