"""Site-scale benchmarks (``make bench``): the product against the naive strategy, at 20 ms QRS latency.

For each site size a fresh simulator process (``python -m qrs_simulator --users N --latency-ms 20``); each phase
runs in its own process (bench/phase.py) so its peak memory is its own. Prints, per size and phase: QRS requests
(from ``/__sim/stats``), wall time, peak memory, points written; then handler import times and the layer size.

    .venv/bin/python bench/run.py [--sizes 1000,10000,100000] [--latency-ms 20] [--releases 1000]
                                  [--phases collect,dry-run,naive-dry-run,whatif,candidates,returns,report,...]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from butler_dev.influxd import influxd_binary, start_influxd

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@contextmanager
def simulator(users: int, latency_ms: int, workdir: Path) -> Iterator[dict[str, Any]]:
    certs = workdir / "certs"
    proc = subprocess.Popen([PY, "-m", "qrs_simulator", "--port", "0", "--certs-dir", str(certs), "--users",
                             str(users), "--seed", "1", "--latency-ms", str(latency_ms)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        yield {"url": url, "certs": certs}
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def influxdb(workdir: Path) -> Iterator[str | None]:
    if influxd_binary() is None:
        yield None
        return
    url, stop = start_influxd(workdir / "influxdb")
    try:
        yield url
    finally:
        stop()


def write_config(sim: dict[str, Any], influx: str | None, workdir: Path) -> Path:
    port = int(sim["url"].rsplit(":", 1)[1])
    host, influx_port = (influx or "http://127.0.0.1:8086").removeprefix("http://").rsplit(":", 1)
    data = {"Butler": {
        "qrs": {"host": "127.0.0.1", "port": port, "certificates": {
            "clientCert": str(sim["certs"] / "client.pem"), "clientKey": str(sim["certs"] / "client_key.pem"),
            "rootCa": str(sim["certs"] / "root.pem")}},
        "influxDb": {"enable": influx is not None, "host": host, "port": int(influx_port), "database": "bench"},
        "licenseMonitoring": {"enable": True},
        "licenseManagement": {"enable": True, "maxReleasesPerRun": 1000000, "maxReleasePercent": 100,
                              "exclusions": {"tags": ["VIP-User"]}},
    }}
    path = workdir / "butler.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def sim_call(sim: dict[str, Any], method: str, path: str) -> Any:
    certs = sim["certs"]
    return requests.request(method, f"{sim['url']}{path}", cert=(str(certs / "client.pem"),
                            str(certs / "client_key.pem")), verify=str(certs / "root.pem"), timeout=60).json()


def phase(name: str, config: Path, sim: dict[str, Any], limit: int) -> dict[str, Any]:
    sim_call(sim, "POST", "/__sim/reset-stats")
    out = subprocess.run([PY, str(ROOT / "bench" / "phase.py"), name, str(config), "--limit", str(limit)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["requests"] = sum(sim_call(sim, "GET", "/__sim/stats")["requests"].values())
    return result


def run_size(users: int, args: argparse.Namespace, influx: str | None, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with simulator(users, args.latency_ms, workdir / f"sim-{users}") as sim:
        config = write_config(sim, influx, workdir / f"sim-{users}")
        for name, limit in (("collect", 0), ("dry-run", 0), ("naive-dry-run", args.naive_lookups),
                            ("whatif", 0), ("candidates", 0), ("returns", args.releases), ("report", 0),
                            ("release", args.releases), ("naive-release", args.releases)):
            if name not in args.phases or (name == "naive-release" and users != args.naive_release_size):
                continue
            results[name] = phase(name, config, sim, limit)
            print(f"  {users:>7} users  {name:<14} {json.dumps(results[name])}", flush=True)
    return results


def import_times() -> dict[str, float]:
    times = {}
    for function in ("collect", "evaluate", "api"):
        code = ("import importlib.util, time; t = time.perf_counter(); "
                f"s = importlib.util.spec_from_file_location('app', 'functions/{function}/app.py'); "
                "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); print(time.perf_counter() - t)")
        runs = [float(subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
                      .stdout) for _ in range(3)]
        times[function] = round(min(runs), 3)
    return times


def layer_size(workdir: Path) -> float:
    """The layer as `sam build` lays it out: the pinned requirements and the butler package under python/."""
    target = workdir / "layer" / "python"
    subprocess.run([PY, "-m", "pip", "install", "-q", "--no-deps", "-r", "layers/common/requirements.txt",
                    "--target", str(target)], cwd=ROOT, check=True, capture_output=True)
    subprocess.run([PY, "-m", "pip", "install", "-q", "-r", "layers/common/requirements.txt", "--target",
                    str(target)], cwd=ROOT, check=True, capture_output=True)
    shutil.copytree(ROOT / "layers" / "common" / "butler", target / "butler",
                    ignore=shutil.ignore_patterns("__pycache__"))
    total = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return round(total / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--naive-lookups", type=int, default=1000, help="per-user lookups the baseline makes")
    parser.add_argument("--naive-release-size", type=int, default=10000)
    parser.add_argument("--phases", default="collect,dry-run,naive-dry-run,release,naive-release",
                        type=lambda text: text.split(","))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="butler-bench-"))
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, Python "
          f"{platform.python_version()}; QRS latency {args.latency_ms} ms")
    all_results = {}
    with influxdb(workdir) as influx:
        print(f"InfluxDB: {'Debian influxd at ' + influx if influx else 'not installed: collect skips writes'}")
        for users in (int(s) for s in args.sizes.split(",")):
            all_results[users] = run_size(users, args, influx, workdir)
    print("\nours vs naive (same decisions):")
    for users, res in all_results.items():
        if "naive-dry-run" not in res or "dry-run" not in res:
            continue
        naive = res["naive-dry-run"]
        print(f"  {users:>7} users: dry run {res['dry-run']['requests']} requests, {res['dry-run']['seconds']} s; "
              f"naive {naive['candidates'] + 2} requests, ~{naive['extrapolatedSeconds']} s "
              f"(x{naive['extrapolatedSeconds'] / max(res['dry-run']['seconds'], 0.01):.0f})")
        if "naive-release" in res and "release" in res:
            ours, theirs = res["release"]["releaseSeconds"], res["naive-release"]["releaseSeconds"]
            print(f"  {users:>7} users: {args.releases} releases {ours} s; naive {theirs} s (x{theirs / ours:.1f})")
    print(f"\nhandler import (best of 3): {import_times()}")
    print(f"layer size unzipped: {layer_size(workdir)} MB")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
