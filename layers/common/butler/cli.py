"""``python -m butler``: the command line (CONTRACT section 3). Commands call the same services as the Lambdas.

Exit codes: 0 ok; 1 a failure outside the configuration (QRS, InfluxDB, AWS) or a failed release; 2 an invalid
configuration or argument; 3 a live evaluation stopped by the breaker; 4 another evaluation holds the run lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from butler.config import Config, ConfigError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_ABORTED, EXIT_LOCKED = 0, 1, 2, 3, 4


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def _config(args: argparse.Namespace) -> Config:
    from butler.wiring import load_config

    return load_config(args.config)


def cmd_validate_config(args: argparse.Namespace) -> int:
    """Exit 2 for a problem in the file (schema, duplicate keys, certificate files); with --check-connection,
    exit 1 when the certificates or secret cannot be read or QRS does not answer."""
    from butler.checks import CheckFailed, certificate_problems, check_connection
    from butler.config import load

    config = load(args.file)
    problems = certificate_problems(config)
    if problems:
        raise ConfigError(problems)
    connection = None
    if args.check_connection:
        try:
            connection = check_connection(config)
        except CheckFailed as exc:
            print(f"connection failed: {exc}")
            return EXIT_FAILED
    print("ok")
    if connection:
        print(connection)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from butler.wiring import on_request, qrs_client

    config = _config(args)
    client = qrs_client(config)
    try:
        _print_json(on_request(config, client).status().model_dump())
    finally:
        client.close()
    return EXIT_OK


def cmd_collect(args: argparse.Namespace) -> int:
    from butler.sinks.influx import InfluxWriteError
    from butler.wiring import run_collect

    try:
        summary = run_collect(_config(args), audit_file=args.audit_file)
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

    from butler.licenses.evaluate import format_table
    from butler.lock import LockBusy
    from butler.observability import logger
    from butler.tuning_cli import evaluate_usage, selected_output
    from butler.wiring import cli_actor, run_evaluate

    if evaluate_usage(args):
        print(evaluate_usage(args), file=sys.stderr)
        return EXIT_CONFIG
    handler = logger.registered_handler
    logs = handler if isinstance(handler, logging.StreamHandler) else logging.StreamHandler()
    previous, logs.stream = logs.stream, sys.stderr  # stdout is the report's
    try:
        report = run_evaluate(_config(args), dry_run=True if args.dry_run else None, audit_file=args.audit_file,
                              actor=cli_actor())
    except LockBusy as exc:
        print(f"not run: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    finally:
        logs.stream = previous
    selected = selected_output(report, args)  # --only, --sort, --csv
    if selected is not None:
        print(selected)
    elif args.json:
        _print_json(report.to_json())
    else:
        print(format_table(report))
    if report.aborted:
        print(f"evaluation aborted: {report.abort_reason}", file=sys.stderr)
        return EXIT_ABORTED
    if report.failed or report.influx_error:
        problem = f"{report.failed} release(s) failed" if report.failed else report.influx_error
        print(f"error: {problem} (run {report.run_id}; butler audit --run {report.run_id})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


MAX_PORT = 65535


def cmd_serve(args: argparse.Namespace) -> int:
    from butler.api import Backend, create_app
    from butler.api.local import make_server, run

    if not 0 <= args.port <= MAX_PORT:
        print(f"--port {args.port}: not a TCP port (0 to {MAX_PORT}; 0 = any free port)", file=sys.stderr)
        return EXIT_CONFIG
    config = _config(args)  # an invalid configuration stops here (exit 2), not at the first request
    app = create_app(Backend(lambda: config, audit_file=args.audit_file, actor="local"))
    try:
        server = make_server(app, args.port)
    except OSError as exc:  # taken, or not ours to bind
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    run(server)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """The local demo lives outside the Lambda layer (devtools/butler_dev): here only when installed from the
    repository (make demo), never in Lambda."""
    try:
        from butler_dev.demo import run
    except ModuleNotFoundError as exc:  # in Lambda, or an install without the devtools
        missing = exc.name if exc.name and not exc.name.startswith("butler_dev") else "the demo (devtools/butler_dev)"
        print(f"demo: not available here: {missing} is not installed; run `make demo` from a clone of the repository",
              file=sys.stderr)
        return EXIT_FAILED
    return run()


MAX_AUDIT_DAYS = 36500  # a century: past it, dates overflow long before any record is that old


def cmd_audit(args: argparse.Namespace) -> int:
    """The audit trail, one JSON record per line: a user's history, a run's records, or recent releases."""
    import os

    from botocore.exceptions import BotoCoreError, ClientError

    from butler.api.errors import aws_message

    problem = _audit_usage(args)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_CONFIG
    config = _config(args)
    try:
        records = _audit_records(config, args)
    except (BotoCoreError, ClientError) as exc:
        print(f"error: {aws_message(exc, os.environ.get('AUDIT_TABLE'))}", file=sys.stderr)
        return EXIT_FAILED
    except AuditMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except json.JSONDecodeError as exc:  # a truncated last line, or not an audit file at all
        print(f"error: {args.audit_file}: a line is not JSON ({exc.msg})", file=sys.stderr)
        return EXIT_FAILED
    for record in records:
        print(json.dumps(record, default=str, ensure_ascii=False))
    return EXIT_OK


class AuditMissing(Exception):
    """Nothing to read: no audit file, or no record of the run asked for."""


def _audit_usage(args: argparse.Namespace) -> str | None:
    if args.user and not args.user.partition("\\")[2]:
        return "--user takes DIRECTORY\\userid"
    if not 0 < args.days <= MAX_AUDIT_DAYS:  # NaN fails both comparisons
        return f"--days {args.days:g}: give a number of days above 0, at most {MAX_AUDIT_DAYS}"
    return None


def _audit_records(config: Config, args: argparse.Namespace) -> list[dict[str, Any]]:
    from datetime import UTC, datetime, timedelta

    from butler.sinks.audit import JsonLinesAuditSink
    from butler.wiring import audit_sink

    audit = audit_sink(config, args.audit_file)
    if isinstance(audit, JsonLinesAuditSink) and not audit.path.is_file():  # a typo must not read as "no records"
        raise AuditMissing(f"no audit file at {audit.path.absolute()} (give --audit-file PATH, or set AUDIT_TABLE "
                           "for DynamoDB)")
    if args.user:
        directory, _, user_id = args.user.partition("\\")
        return audit.records_for_user(directory, user_id)
    if args.run:
        records = audit.records_for_run(args.run)
        if not records:
            raise AuditMissing(f"no audit records for run {args.run}")
        return records
    now = datetime.now(UTC)
    return audit.releases_between(now - timedelta(days=args.days), now)


def cmd_forecast(args: argparse.Namespace) -> int:
    """Capacity planning: per type the trend, the available count and the day the pool runs out."""
    from butler.licenses.forecast import MAX_HORIZON_DAYS
    from butler.licenses.planning import format_forecast
    from butler.wiring import run_forecast

    if not 0 <= args.horizon <= MAX_HORIZON_DAYS:
        print(f"--horizon {args.horizon}: give a number of days, 0 to {MAX_HORIZON_DAYS}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        answer = run_forecast(_config(args), audit_file=args.audit_file, horizon_days=args.horizon)
    except json.JSONDecodeError as exc:  # a truncated last line, or not an audit file at all
        print(f"error: {args.audit_file}: a line is not JSON ({exc.msg})", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        _print_json(answer.model_dump())
    else:
        print(format_forecast(answer))
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
    from butler import holds_cli, tuning_cli

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
    validate.add_argument("--check-connection", action="store_true",
                          help="also read the certificates (files or secret) and make one QRS read")
    command("status", cmd_status, "print the license status JSON")
    collect = command("collect", cmd_collect, "collect license metrics once into InfluxDB")
    collect.add_argument("--audit-file", default=None, metavar="PATH",
                         help="keep the daily snapshots in this JSON Lines file (AUDIT_TABLE: in DynamoDB)")
    forecast = command("forecast", cmd_forecast, "capacity planning: when each license pool runs out")
    forecast.add_argument("--horizon", type=int, default=180, metavar="DAYS",
                          help="look this many days ahead (default 180)")
    forecast.add_argument("--json", action="store_true", help="print the forecast as JSON")
    forecast.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    evaluate = command("evaluate", cmd_evaluate, "run one license evaluation")
    evaluate.add_argument("--dry-run", action="store_true", help="release nothing, whatever the config says")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    tuning_cli.add_evaluate_choices(evaluate)
    tuning_cli.add_commands(command)  # what-if, returns, report
    holds_cli.add_commands(command)  # hold, holds, reinstate
    serve = command("serve", cmd_serve, "serve the /v4 API on 127.0.0.1")
    serve.add_argument("--port", type=int, required=True, help=f"port on 127.0.0.1, 0 to {MAX_PORT} (0: any free port)")
    serve.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    demo = command("demo", cmd_demo, "run the self-contained local demo", config=False)
    demo.add_argument("--config", default=None, metavar="FILE", help=argparse.SUPPRESS)
    audit = command("audit", cmd_audit, "print audit records: a user's history, a run, or recent releases")
    which = audit.add_mutually_exclusive_group()
    which.add_argument("--user", metavar="DIRECTORY\\USERID", help="one user's history")
    which.add_argument("--run", metavar="RUN_ID", help="every record of one run")
    which.add_argument("--days", type=float, default=7,
                       help=f"releases of the last N days (default 7; above 0, at most {MAX_AUDIT_DAYS})")
    audit.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    sam_params = command("sam-params", cmd_sam_params, "print sam deploy --parameter-overrides from the config")
    sam_params.add_argument("--samconfig", metavar="FILE", help="merge this samconfig.toml environment's overrides")
    sam_params.add_argument("--config-env", default="default", metavar="ENV", help="samconfig environment")
    sam_params.add_argument("--config-dir", default="config", metavar="DIR", help="the folder packaged in the layer")
    return parser


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A reader that closes the pipe early (``butler audit ... | head -1``) ends the command
    quietly with exit 1, as the Python documentation's recipe does: the output was not all delivered."""
    args = _parser().parse_args(argv)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr if args.command != "validate-config" else sys.stdout)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout's: network failures arrive wrapped (QrsUnreachable, botocore errors)
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:  # a clear one-line reason, never a traceback, for QRS/InfluxDB/AWS failures
        if isinstance(exc, _operational_errors()):
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_FAILED
        raise


def _silence_stdout() -> None:
    """Point stdout at devnull: the interpreter's final flush of what is still buffered must not fail again
    (with a traceback) on the closed pipe."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (a test's capture): nothing to flush at exit
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _one_line(exc: BaseException) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from butler.api.errors import aws_message

    if isinstance(exc, BotoCoreError | ClientError):
        return aws_message(exc)  # a DynamoDB failure names the table
    return " ".join(str(exc).split())[:1000] or type(exc).__name__


def _operational_errors() -> tuple[type[BaseException], ...]:
    """Failures of the outside world (QRS, certificates, secrets, InfluxDB, AWS, files), as opposed to bugs."""
    from botocore.exceptions import BotoCoreError, ClientError

    from butler.qrs import QrsError
    from butler.qrs.certs import CertificateError
    from butler.secrets import SecretError
    from butler.sinks.influx import InfluxWriteError

    return QrsError, CertificateError, SecretError, InfluxWriteError, BotoCoreError, ClientError, OSError
