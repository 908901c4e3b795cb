"""Timing printout (not a test): `python -m qrs_simulator.bench [--users 100000] [--seed 1]`."""

from __future__ import annotations

import argparse
import time

import requests

from .server import Simulator
from .synthetic import build_synthetic

XRFKEY = "0123456789abcdef"
HEADERS = {"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": "UserDirectory=INTERNAL; UserId=sa_api"}


def timed_get(session: requests.Session, sim: Simulator, path: str, **params: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = session.get(f"{sim.url}/qrs/{path}", params={"xrfkey": XRFKEY, **params}, verify=sim.ca_file)
    response.raise_for_status()
    body = response.json()
    return time.perf_counter() - start, len(body) if isinstance(body, list) else 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    state = build_synthetic(args.users, args.seed)
    print(f"build {args.users} users: {time.perf_counter() - start:.2f}s")
    with Simulator(state=state) as sim, requests.Session() as session:
        session.cert = sim.client_cert
        session.headers.update(HEADERS)
        for label in ("cold", "warm"):
            for path in ("license/professionalaccesstype/full", "license/analyzeraccesstype/full", "user/full"):
                seconds, count = timed_get(session, sim, path)
                print(f"{label} GET /qrs/{path}: {count} objects in {seconds:.2f}s")
        seconds, count = timed_get(session, sim, "user/full", filter="tags.name eq 'VIP-User' or inactive eq true")
        print(f"filtered GET /qrs/user/full: {count} objects in {seconds:.2f}s")
        start = time.perf_counter()
        for _ in range(200):
            timed_get(session, sim, "license/accesstypeoverview")
        print(f"200 x GET accesstypeoverview (keep-alive): {time.perf_counter() - start:.2f}s")


if __name__ == "__main__":
    main()
