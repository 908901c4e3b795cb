"""`python -m qrs_simulator --port PORT --certs-dir DIR (--scenario FILE | --users N [--seed S]) ...`"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from types import FrameType

from .certs import CertError
from .scenario import ScenarioError, build_from_scenario, load_scenario
from .server import (
    DEFAULT_FAULT_KINDS,
    DEFAULT_SLOW_MS,
    FAULT_METHODS,
    Simulator,
    parse_fault_kinds,
    parse_fault_methods,
)
from .state import SimState
from .synthetic import build_synthetic


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m qrs_simulator",
        description="A fake Qlik Sense QRS (mTLS). Control endpoints: GET /__sim/stats, POST /__sim/reset-stats, "
        "GET /__sim/state, PATCH /__sim/users (see the qrs_simulator module docstring).",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks a free one")
    parser.add_argument("--certs-dir", required=True, help="certificate directory (written if it holds none)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--scenario", help="scenario JSON file (licenses, users, serverLicense, triggers, orphanAllocations)"
    )
    source.add_argument("--users", type=int, help="size of a synthetic site")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic site (default 0)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every /qrs response")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of /qrs requests faulted (0..1)")
    parser.add_argument("--fault-seed", type=int, default=None, help="seed for the fault draws (default random)")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(DEFAULT_FAULT_KINDS),
        help="what a fault is, comma-separated (default error,reset): error (503, nothing done), reset (connection "
        "dropped, nothing done), lost-response (carried out, then dropped without an answer), slow (carried out, "
        "answered after --slow-ms); drawn with weights error 3, the others 1",
    )
    parser.add_argument(
        "--fault-methods",
        default=",".join(FAULT_METHODS),
        help="methods that can be faulted, comma-separated (default GET,POST,PUT,DELETE)",
    )
    parser.add_argument(
        "--slow-ms", type=float, default=DEFAULT_SLOW_MS, help="delay of a 'slow' fault's answer (default 30000)"
    )
    parser.add_argument("--server-name", default=None, help="extra DNS name for a newly written server.pem")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error("--fault-rate must be between 0 and 1")
    if args.users is not None and args.users < 0:
        parser.error("--users must not be negative")
    if args.slow_ms < 0:
        parser.error("--slow-ms must not be negative")
    for option, check in (("--fault-kinds", parse_fault_kinds), ("--fault-methods", parse_fault_methods)):
        try:
            check(getattr(args, option[2:].replace("-", "_")))
        except ValueError as err:
            parser.error(f"{option}: {err}")
    return args


def build_state(args: argparse.Namespace) -> SimState:
    if args.scenario:
        return build_from_scenario(load_scenario(args.scenario))
    return build_synthetic(args.users, args.seed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        state = build_state(args)
        simulator = Simulator(
            state=state,
            certs_dir=args.certs_dir,
            host=args.host,
            port=args.port,
            latency_ms=args.latency_ms,
            fault_rate=args.fault_rate,
            fault_seed=args.fault_seed,
            fault_kinds=args.fault_kinds,
            fault_methods=args.fault_methods,
            slow_ms=args.slow_ms,
            server_name=args.server_name,
        )
    except (ScenarioError, CertError, OSError) as err:
        print(f"qrs_simulator: {err}", file=sys.stderr)
        return 2
    gc.freeze()  # the state lives as long as the process: keep the cyclic GC from rescanning it
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with simulator:
        print(f"READY {simulator.url}", flush=True)
        while not stopping.wait(0.5):  # short waits keep the main thread responsive to signals
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
