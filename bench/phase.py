"""One measured phase in a fresh process (so peak memory is that phase's own): prints one JSON line.

    python bench/phase.py collect|dry-run|release|naive-dry-run|naive-release|whatif|candidates|returns|report
                          CONFIG [--limit N]

``release`` is a live evaluation throttled to N releases (``maxReleasesPerRun``), the product's whole path: leftovers,
inventory, decisions, then the executor (batched re-reads of allocations and owners, DELETE, bounded concurrency,
audit); ``naive-*`` are the baseline strategy of bench/naive.py. ``whatif`` (the 7-threshold sweep), ``candidates``
(a dry run made now, one page of 1,000), ``returns`` (over ``limit`` releases, all of which came back: their users
hold allocations) and ``report`` (the HTML page) are the tuning loop's reads.
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


def what_if_sweep(config_path: str, limit: int) -> dict[str, Any]:
    from butler.tuning_service import what_if

    answer = what_if(wiring.load_config(config_path), None, sweep=True)
    first = answer["sweep"][0]
    return {"thresholds": len(answer["sweep"]), "wouldReleaseAt14": first["professional"]["wouldRelease"]
            + first["analyzer"]["wouldRelease"]}


def candidates(config_path: str, limit: int) -> dict[str, Any]:
    from butler.licenses.tuning import page_of, select
    from butler.tuning_service import candidates as dry_run_now

    report = dry_run_now(wiring.load_config(config_path), "/dev/null")
    page = page_of(select(report.decisions, action="would-release"), 1000, 0)
    return {"evaluated": report.summary()["evaluated"], "wouldRelease": page["total"],
            "pageBytes": len(json.dumps(page))}


def returns(config_path: str, limit: int) -> dict[str, Any]:
    """Returns over an audit file of ``limit`` releases made 10 days ago (of users who did not come back)."""
    from datetime import UTC, datetime, timedelta

    from butler.tuning_service import returns as read_returns

    audit = Path(config_path).parent / "bench-releases.jsonl"
    at = (datetime.now(UTC) - timedelta(days=10)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    audit.write_text("".join(json.dumps({"kind": "release-outcome", "runId": "bench", "at": at, "dryRun": False,
                                         "allocationId": f"released-{n}", "licenseType": "analyzer",
                                         "action": "release", "userDirectory": "BENCH", "userId": f"gone{n}",
                                         "daysInactive": 50.0}) + "\n" for n in range(limit)))
    answer = read_returns(wiring.load_config(config_path), 30, str(audit))
    return {"released": answer["total"]["released"], "returned": answer["total"]["returned"]}


def report(config_path: str, limit: int) -> dict[str, Any]:
    from butler.tuning_service import report_html

    page = report_html(wiring.load_config(config_path), "/dev/null")
    return {"htmlBytes": len(page.encode())}


PHASES = {"collect": collect, "dry-run": dry_run, "release": release, "naive-dry-run": naive_dry_run,
          "naive-release": naive_release, "whatif": what_if_sweep, "candidates": candidates, "returns": returns,
          "report": report}


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
