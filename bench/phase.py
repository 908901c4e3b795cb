"""One measured phase in a fresh process (so peak memory is that phase's own): prints one JSON line.

    python bench/phase.py collect|dry-run|release|naive-dry-run|naive-release CONFIG [--limit N]

``release`` releases the first N candidates of a dry run through the product's ReleaseExecutor (re-read, then
DELETE, bounded concurrency); ``naive-*`` are the baseline strategy of bench/naive.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import naive

from butler import wiring
from butler.licenses.evaluate import CANDIDATE_ACTIONS
from butler.licenses.policy import Rules, decide
from butler.licenses.release import ReleaseExecutor, utc_now
from butler.sinks.audit import JsonLinesAuditSink


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def collect(config_path: str, limit: int) -> dict[str, Any]:
    summary = wiring.run_collect(wiring.load_config(config_path)).to_json()
    if summary.get("error"):
        raise RuntimeError(summary["error"])
    return {"points": sum(summary["pointsWritten"].values())}


def dry_run(config_path: str, limit: int) -> dict[str, Any]:
    report = wiring.run_evaluate(wiring.load_config(config_path), dry_run=True, audit_file="/dev/null")
    summary = report.summary()
    return {"evaluated": summary["evaluated"], "wouldRelease": summary["wouldRelease"]}


def release(config_path: str, limit: int) -> dict[str, Any]:
    """Release ``limit`` candidates through the product's executor; only the release part is timed."""
    config = wiring.load_config(config_path)
    report = wiring.run_evaluate(config, dry_run=True, audit_file="/dev/null")
    chosen = [d.with_outcome("release") for d in report.decisions if d.action in CANDIDATE_ACTIONS][:limit]
    rules = Rules.from_config(config.Butler.licenseManagement)
    client = wiring.qrs_client(config)
    executor = ReleaseExecutor(client, JsonLinesAuditSink("/dev/null"), None, actor="bench", run_id="bench",
                               concurrency=config.Butler.licenseManagement.concurrency, dry_run=False)
    started = time.perf_counter()
    outcomes = executor.release(chosen, lambda a, u: decide(a, u, rules, utc_now(), dry_run=False))
    return {"releaseSeconds": round(time.perf_counter() - started, 2), "released": len(outcomes),
            "failed": sum(1 for o in outcomes if o.action == "failed")}


def naive_dry_run(config_path: str, limit: int) -> dict[str, Any]:
    return naive.dry_run(wiring.load_config(config_path), limit)


def naive_release(config_path: str, limit: int) -> dict[str, Any]:
    return naive.release(wiring.load_config(config_path), limit)


PHASES = {"collect": collect, "dry-run": dry_run, "release": release, "naive-dry-run": naive_dry_run,
          "naive-release": naive_release}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=PHASES)
    parser.add_argument("config")
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    result = PHASES[args.phase](args.config, args.limit)
    result.update(seconds=round(time.perf_counter() - started, 2), peakMB=round(peak_mb(), 1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
