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
    raise NotImplementedError("collect")


def cmd_evaluate(args: argparse.Namespace) -> int:
    raise NotImplementedError("evaluate")


def cmd_serve(args: argparse.Namespace) -> int:
    raise NotImplementedError("serve")


def cmd_demo(args: argparse.Namespace) -> int:
    raise NotImplementedError("demo")


def cmd_sam_params(args: argparse.Namespace) -> int:
    raise NotImplementedError("sam-params")


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
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    demo = command("demo", cmd_demo, "run the self-contained local demo", config=False)
    demo.add_argument("--config", default=None, metavar="FILE", help=argparse.SUPPRESS)
    command("sam-params", cmd_sam_params, "print sam deploy --parameter-overrides from the config")
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
        from butler.qrs import QrsError
        from butler.qrs.certs import CertificateError

        if isinstance(exc, QrsError | CertificateError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise
