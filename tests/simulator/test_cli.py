"""`python -m qrs_simulator` as other tools run it: a subprocess that prints READY and serves until terminated."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from .conftest import QLIK_USER, XRFKEY, scenario

SIMULATOR_DIR = Path(__file__).parents[2] / "simulator"


def env() -> dict[str, str]:
    paths = [str(SIMULATOR_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qrs_simulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield proc, line
    finally:
        proc.terminate()
        proc.wait(15)


def test_ready_line_then_serves_then_stops(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(json.dumps(scenario()))
    certs = tmp_path / "certs"
    with running("--port", "0", "--certs-dir", str(certs), "--scenario", str(scenario_file)) as (proc, line):
        match = re.fullmatch(r"READY (https://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        assert int(match.group(2)) > 0
        assert {p.name for p in certs.iterdir()} >= {
            "root.pem",
            "server.pem",
            "server_key.pem",
            "client.pem",
            "client_key.pem",
        }
        response = requests.get(
            f"{match.group(1)}/qrs/license/professionalaccesstype/count",
            params={"xrfkey": XRFKEY},
            headers={"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER},
            cert=(str(certs / "client.pem"), str(certs / "client_key.pem")),
            verify=str(certs / "root.pem"),
            timeout=10,
        )
        assert response.json() == {"value": 3}
        proc.terminate()
        assert proc.wait(15) == 0


def test_synthetic_site_with_options(tmp_path: Path) -> None:
    args = [
        "--port",
        "0",
        "--certs-dir",
        str(tmp_path),
        "--users",
        "50",
        "--seed",
        "3",
        "--host",
        "127.0.0.1",
        "--latency-ms",
        "1",
        "--fault-rate",
        "0",
    ]
    with running(*args) as (_proc, line):
        assert line.startswith("READY https://127.0.0.1:")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "qrs_simulator", "--port", "0", "--certs-dir", str(tmp_path)]
    missing_source = subprocess.run(base, capture_output=True, text=True, env=env(), timeout=30)
    assert missing_source.returncode == 2
    bad_rate = subprocess.run(
        [*base, "--users", "5", "--fault-rate", "2"], capture_output=True, text=True, env=env(), timeout=30
    )
    assert bad_rate.returncode == 2
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"users": [{"userDirectory": "D"}]}))
    bad_scenario = subprocess.run(
        [*base, "--scenario", str(broken)], capture_output=True, text=True, env=env(), timeout=30
    )
    assert bad_scenario.returncode == 2
    assert "users[0]" in bad_scenario.stderr and "userId" in bad_scenario.stderr
    assert bad_scenario.stdout == ""
