"""One measured phase in a fresh process (so peak memory is that phase's own): prints one JSON line.

    python bench/phase.py collect|dry-run|release|naive-dry-run|naive-release CONFIG [--limit N]

``release`` is a live evaluation throttled to N releases (``maxReleasesPerRun``), the product's whole path: leftovers,
inventory, decisions, then the executor (batched re-reads of allocations and owners, DELETE, bounded concurrency,
audit); ``naive-*`` are the baseline strategy of bench/naive.py.
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
import yaml

from butler import config as config_module
from butler import wiring


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
    """A live evaluation that the throttle limits to ``limit`` releases (the longest idle)."""
    data = yaml.safe_load(Path(config_path).read_text())
    data["Butler"]["licenseManagement"].update(dryRun=False, maxReleasesPerRun=limit, maxReleasePercent=100,
                                               abortAbovePercent=100)
    config = config_module.parse(data, Path(config_path).resolve().parent)
    started = time.perf_counter()
    report = wiring.run_evaluate(config, audit_file="/dev/null", actor="bench")
    summary = report.summary()
    return {"releaseSeconds": round(time.perf_counter() - started, 2), "released": summary["released"],
            "deferred": summary["deferred"], "failed": summary["failed"]}


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
