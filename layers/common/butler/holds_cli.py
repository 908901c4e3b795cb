"""The commands of holds and reinstatement (CONTRACT section 3): ``hold 'DIR\\user' --until YYYY-MM-DD
[--reason TEXT]``, ``hold 'DIR\\user' --remove``, ``holds`` and ``reinstate 'DIR\\user' [--license-type T]``.
Thin: parse, call ``butler.licenses.holds`` through ``butler.wiring``, print JSON.

Exit codes: 0 done; 1 refused (no such user, no hold to lift, nothing to reinstate, none available, already held)
or a failure outside (QRS, AWS); 2 a bad argument (a user without its directory, a date that is not after today).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
Command = Callable[..., argparse.ArgumentParser]
AUDIT_FILE = "./butler-audit.jsonl"


def add_commands(command: Command) -> None:
    """Register the commands on the CLI's parser (``command`` is ``cli._parser``'s helper)."""
    hold = command("hold", cmd_hold, "set or lift a hold: the user's allocations are not released before its date")
    hold.add_argument("user", metavar="DIRECTORY\\USERID")
    which = hold.add_mutually_exclusive_group(required=True)
    which.add_argument("--until", metavar="YYYY-MM-DD", help="not released before this day (UTC)")
    which.add_argument("--remove", action="store_true", help="lift the user's hold")
    hold.add_argument("--reason", metavar="TEXT", help="why (shown in the decision's reason)")
    hold.add_argument("--audit-file", default=AUDIT_FILE, metavar="PATH")
    holds = command("holds", cmd_holds, "list the holds set")
    holds.add_argument("--audit-file", default=AUDIT_FILE, metavar="PATH")
    reinstate = command("reinstate", cmd_reinstate, "allocate again a license this tool released")
    reinstate.add_argument("user", metavar="DIRECTORY\\USERID")
    reinstate.add_argument("--license-type", choices=("professional", "analyzer"),
                           help="allocate this type (even without a release of ours to undo)")
    reinstate.add_argument("--audit-file", default=AUDIT_FILE, metavar="PATH")


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def _user(text: str) -> tuple[str, str] | None:
    directory, _, user_id = text.partition("\\")
    return (directory, user_id) if directory.strip() and user_id.strip() else None


def _named_user(text: str) -> tuple[str, str] | None:
    """(directory, user id), or None after saying how to name the user."""
    user = _user(text)
    if user is None:
        print(f"{text!r}: give the user as DIRECTORY\\userid", file=sys.stderr)
    return user


def _refused(exc: Exception) -> int:
    print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
    return EXIT_FAILED


def cmd_hold(args: argparse.Namespace) -> int:
    from butler.licenses.model import Refusal
    from butler.wiring import cli_actor, holds, load_config

    user = _named_user(args.user)
    if user is None:
        return EXIT_CONFIG
    if args.remove and args.reason:
        print("--reason goes with --until, not --remove", file=sys.stderr)
        return EXIT_CONFIG
    service = holds(load_config(args.config), args.audit_file)
    directory, user_id = user
    try:
        if args.remove:
            answer = service.remove(user_id, directory, cli_actor())
        else:
            answer = service.set(user_id, directory, args.until, args.reason, cli_actor())
    except ValueError as exc:
        print(f"--{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Refusal as exc:
        return _refused(exc)
    _print_json(answer.model_dump())
    return EXIT_OK


def cmd_holds(args: argparse.Namespace) -> int:
    from butler.wiring import holds, load_config

    _print_json([hold.model_dump() for hold in holds(load_config(args.config), args.audit_file).all()])
    return EXIT_OK


def cmd_reinstate(args: argparse.Namespace) -> int:
    from butler.licenses.model import Refusal
    from butler.wiring import cli_actor, holds, load_config

    user = _named_user(args.user)
    if user is None:
        return EXIT_CONFIG
    directory, user_id = user
    try:
        service = holds(load_config(args.config), args.audit_file)
        answer = service.reinstate(user_id, directory, args.license_type, cli_actor())
    except Refusal as exc:
        return _refused(exc)
    _print_json(answer.model_dump())
    return EXIT_OK
