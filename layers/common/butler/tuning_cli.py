"""The tuning loop's commands (CONTRACT section 3): ``what-if``, ``returns``, ``report`` and the choices of
``evaluate --only ACTION [--sort days|user] [--csv]``. Thin: parse, call ``butler.tuning_service``, print."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, get_args

from butler.licenses import tuning
from butler.licenses.model import Action

if TYPE_CHECKING:
    from butler.licenses.evaluate import EvaluationReport

EXIT_OK, EXIT_CONFIG = 0, 2
Command = Callable[..., argparse.ArgumentParser]
ACTIONS = get_args(Action)
MAX_RETURNS_DAYS = 3650


def add_commands(command: Command) -> None:
    """Register the commands on the CLI's parser (``command`` is ``cli._parser``'s helper)."""
    what_if = command("what-if", cmd_what_if, "what a dry run with other inactivity thresholds would release now")
    what_if.add_argument("--professional", type=float, metavar="DAYS", help="professional inactivityDays to try")
    what_if.add_argument("--analyzer", type=float, metavar="DAYS", help="analyzer inactivityDays to try")
    what_if.add_argument("--sweep", action="store_true",
                         help=f"try {', '.join(map(str, tuning.SWEEP_DAYS))} days for both types")
    what_if.add_argument("--json", action="store_true", help="print JSON")
    returns = command("returns", cmd_returns, "how many released users came back for a new allocation")
    returns.add_argument("--days", type=float, default=tuning.RETURNS_DAYS,
                         help=f"releases of the last N days (default {tuning.RETURNS_DAYS})")
    returns.add_argument("--json", action="store_true", help="print JSON")
    returns.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")
    report = command("report", cmd_report, "write the license report as one self-contained HTML page")
    report.add_argument("--out", required=True, metavar="FILE.html")
    report.add_argument("--audit-file", default="./butler-audit.jsonl", metavar="PATH")


def add_evaluate_choices(evaluate: argparse.ArgumentParser) -> None:
    evaluate.add_argument("--only", choices=ACTIONS, metavar="ACTION",
                          help=f"only the decisions of this action ({', '.join(ACTIONS)})")
    evaluate.add_argument("--sort", choices=tuning.SORTS, help="days: longest idle first (default); user: by user")
    evaluate.add_argument("--csv", action="store_true", help="print the decisions as CSV")


def selected_output(report: EvaluationReport, args: argparse.Namespace) -> str | None:
    """``evaluate``'s output when --only, --sort or --csv is given (else None: the usual report)."""
    from butler.licenses.evaluate import format_table

    if not (args.only or args.sort or args.csv):
        return None
    rows = tuning.select(report.decisions, action=args.only, sort=args.sort or "days")
    if args.csv:
        return tuning.to_csv(rows).rstrip("\n")
    if args.json:
        return json.dumps({**report.to_json(decisions=False), "decisions": [tuning.candidate_row(d) for d in rows]},
                          indent=2, default=str)
    return format_table(report, rows)


def evaluate_usage(args: argparse.Namespace) -> str | None:
    return "--csv and --json: choose one" if args.csv and args.json else None


def _config(args: argparse.Namespace) -> Any:
    from butler.wiring import load_config

    return load_config(args.config)


def cmd_what_if(args: argparse.Namespace) -> int:
    from butler.tuning_service import what_if

    asked = {t: getattr(args, t) for t in ("professional", "analyzer") if getattr(args, t) is not None}
    problems = [p for t, v in asked.items() if (p := tuning.threshold_problem(f"--{t}", v))]
    if problems or (args.sweep and asked):
        print(problems[0] if problems else "--sweep tries its own thresholds: leave out --professional and "
              "--analyzer", file=sys.stderr)
        return EXIT_CONFIG
    answer = what_if(_config(args), asked, sweep=args.sweep)  # type: ignore[arg-type]
    print(json.dumps(answer, indent=2) if args.json else format_what_if(answer))
    return EXIT_OK


def format_what_if(answer: dict[str, Any]) -> str:
    rows = answer.get("sweep") or [{"days": None, **answer}]
    table = [("DAYS", "TYPE", "WOULD RELEASE", "PROTECTED", "OF", "FREED", "MONTHLY SAVING", "PROTECTED BY RULE")]
    for row in rows:
        for license_type in ("professional", "analyzer"):
            part = row[license_type]
            share, saving = part["shareFreedPercent"], part["monthlySaving"]
            table.append((f"{part['inactivityDays']:g}", license_type, str(part["wouldRelease"]),
                          str(part["protected"]), str(part["allocations"]), "-" if share is None else f"{share:g}%",
                          "-" if saving is None else f"{saving:,.2f}",
                          ", ".join(f"{rule} {n}" for rule, n in part["protectedByRule"].items()) or "-"))
    widths = [max(len(r[i]) for r in table) for i in range(7)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:7], widths, strict=True)), r[7]]).rstrip() for r in table]
    return "\n".join([*lines, "", f"What a dry run would do now ({answer['at']}), ignoring {answer['ignores']}."])


def cmd_returns(args: argparse.Namespace) -> int:
    from butler.tuning_service import returns

    if not 0 < args.days <= MAX_RETURNS_DAYS:
        print(f"--days {args.days:g}: give a number of days above 0, at most {MAX_RETURNS_DAYS}", file=sys.stderr)
        return EXIT_CONFIG
    answer = returns(_config(args), args.days, args.audit_file)
    print(json.dumps(answer, indent=2) if args.json else format_returns(answer))
    return EXIT_OK


def format_returns(answer: dict[str, Any]) -> str:
    lines = [f"Releases of the last {answer['days']:g} days and the users who came back (a new allocation of the "
             "same type, allocated after the release):"]
    for license_type in ("professional", "analyzer"):
        part = answer[license_type]
        rate = "-" if part["returnRate"] is None else f"{part['returnRate']:g}%"
        median = "" if part["medianDaysToReturn"] is None else f", median {part['medianDaysToReturn']:g} days to return"
        lines.append(f"  {license_type}: released {part['released']}, returned {part['returned']} ({rate}){median}")
        lines += [f"    {u['userDirectory']}\\{u['userId']}: released {u['releasedAt']}, back {u['returnedAt']} "
                  f"({u['daysToReturn']:g} days)" for u in part["users"]]
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from butler.tuning_service import report_html

    page = report_html(_config(args), args.audit_file)
    out = Path(args.out)
    out.write_text(page, encoding="utf-8")
    print(f"report written to {out} ({len(page.encode()):,} bytes)")
    return EXIT_OK
