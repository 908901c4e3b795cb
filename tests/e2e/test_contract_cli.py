"""The outside interfaces as CONTRACT.md writes them, driven from separate processes: the simulator started
with a scenario file, `butler evaluate` auditing to DynamoDB behind `AWS_ENDPOINT_URL` (a moto server), and
`butler serve` answering over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml
from moto.server import ThreadedMotoServer

from butler.sinks.audit import create_table
from tests.support.evaluate_scenario import EXPECTED_RELEASES, POLICY, SCENARIO
from tests.support.influxd import free_port

ROOT = Path(__file__).parents[2]


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[dict[str, Any]]:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(SCENARIO))
    certs = tmp_path / "certs"
    proc = subprocess.Popen([sys.executable, "-m", "qrs_simulator", "--port", str(free_port()), "--certs-dir",
                             str(certs), "--scenario", str(scenario)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    ready = proc.stdout.readline().split()
    assert ready[0] == "READY"
    yield {"url": ready[1], "certs": certs}
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "eu-west-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AUDIT_TABLE": "butler-audit"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    create_table("butler-audit")
    yield env
    server.stop()


def write_config(sim: dict[str, Any], folder: Path) -> Path:
    """Certificates given relative to the config file's folder, as an administrator would."""
    port = int(sim["url"].rsplit(":", 1)[1])
    data = {"Butler": {"qrs": {"host": "127.0.0.1", "port": port, "certificates": {
        "clientCert": "certs/client.pem", "clientKey": "certs/client_key.pem", "rootCa": "certs/root.pem"}},
        **POLICY}}
    path = folder / "butler.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def butler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "butler", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_evaluate_audits_to_dynamodb_behind_aws_endpoint_url(simulator: dict[str, Any], moto_server: dict[str, str],
                                                             tmp_path: Path) -> None:
    config = write_config(simulator, tmp_path)
    assert butler("validate-config", str(config)).stdout == "ok\n"
    first = butler("evaluate", "--config", str(config), "--json", env=moto_server)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert {d["userId"] for d in report["decisions"] if d["action"] == "release"} == EXPECTED_RELEASES
    items = boto3.resource("dynamodb").Table("butler-audit").scan()["Items"]
    outcomes = {i["userId"] for i in items if i["kind"] == "release-outcome" and i["action"] == "release"}
    assert outcomes == EXPECTED_RELEASES
    assert any(i["kind"] == "run" and i["runId"] == report["runId"] and i["status"] == "finished" for i in items)

    second = butler("evaluate", "--config", str(config), "--json", env=moto_server)
    assert second.returncode == 0
    assert json.loads(second.stdout)["summary"]["released"] == 0

    history = audit_lines("--config", str(config), "--user", "corp\\P.IDLE", env=moto_server)
    assert [r["kind"] for r in history] == ["release-intent", "release-outcome", "decision"]
    assert {r["runId"] for r in history} == {report["runId"]}
    run = audit_lines("--config", str(config), "--run", report["runId"], env=moto_server)
    assert [r["status"] for r in run if r["kind"] == "run"] == ["finished"]
    recent = audit_lines("--config", str(config), "--days", "1", env=moto_server)
    assert {r["userId"] for r in recent} == EXPECTED_RELEASES


def audit_lines(*args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    result = butler("audit", *args, env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_serve_answers_the_v4_routes(simulator: dict[str, Any], tmp_path: Path) -> None:
    config = write_config(simulator, tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "butler", "serve", "--config", str(config), "--port", str(port),
                             "--audit-file", str(tmp_path / "audit.jsonl")], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={k: v for k, v in os.environ.items() if k != "AUDIT_TABLE"})
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("READY http://127.0.0.1:")
        base = f"http://127.0.0.1:{port}/v4/licenses"
        status = requests.get(f"{base}/status", timeout=30).json()
        assert status["professional"]["total"] == SCENARIO["licenses"]["professional"]["total"]
        assert requests.get(f"{base}/user/CORP%5Cp.vip", timeout=30).json()["protected"] is True
        assert requests.get(f"{base}/user/nobody?userDirectory=CORP", timeout=30).status_code == 404
        assert requests.delete(f"{base}/user/CORP%5Cp.vip", timeout=30).status_code == 409
        released = requests.delete(f"{base}/user/CORP%5Cp.idle", timeout=30)
        assert released.status_code == 200 and released.json()["released"] == 1
    finally:
        proc.terminate()
        proc.wait(10)
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "release-outcome" and r["userId"] == "p.idle" and r["actor"] == "local" for r in records)
