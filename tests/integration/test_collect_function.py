"""The collect Lambda handler, called with a real EventBridge Scheduler event: InfluxDB points, EMF metrics, and
visible failures (the CollectorSuccess heartbeat, a raised error)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import InfluxServer, influx_config, license_scenario
from tests.support.influxd import free_port, rows
from tests.support.lambda_harness import Context, load_handler

ROOT = Path(__file__).parents[2]
SCHEDULER_EVENT = json.loads((ROOT / "events" / "scheduler-collect.json").read_text())  # the template's Input


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from qrs_simulator import Simulator

    sim = Simulator(license_scenario(datetime.now(UTC)), certs_dir=tmp_path_factory.mktemp("handler-certs"))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def invoke(site: Any, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[Any, list[dict[str, Any]]]]:
    """Invoke the handler with BUTLER_CONFIG pointing at a config; returns (result or exception, EMF records)."""
    app = load_handler("collect")

    def run(extra: dict[str, Any], sim: Any = site) -> tuple[Any, list[dict[str, Any]]]:
        monkeypatch.setenv("BUTLER_CONFIG", str(write_config(sim, extra)))
        capsys.readouterr()
        try:
            result: Any = app.handler(SCHEDULER_EVENT, Context())
        except Exception as exc:
            result = exc
        lines = [json.loads(text) for text in capsys.readouterr().out.splitlines() if text.startswith("{")]
        return result, [record for record in lines if "_aws" in record]

    return run


def metric(records: list[dict[str, Any]], name: str, license_type: str | None = None) -> list[float]:
    return [value for r in records if name in r and r.get("LicenseType") == license_type
            for value in (r[name] if isinstance(r[name], list) else [r[name]])]


def test_scheduled_collection_writes_points_and_metrics(invoke: Any, influx_server: InfluxServer,
                                                        influx_db: str) -> None:
    result, emf = invoke({"influxDb": influx_config(influx_server, influx_db),
                          "licenseMonitoring": {"enable": True, "costs": {"professional": 40, "analyzer": 10}}})
    assert result["pointsWritten"] == {"license_usage": 3, "user_license_activity": 6, "server_license": 1}
    assert len(rows(influx_server.query('SELECT * FROM "user_license_activity"', influx_db))) == 6
    assert metric(emf, "ServerLicenseDaysLeft") == [result["serverLicense"]["daysUntilExpiry"]]  # ten years ahead
    assert metric(emf, "CollectorSuccess") == [1]
    assert metric(emf, "Allocated", "professional") == [3] and metric(emf, "Available", "analyzer") == [17]
    assert metric(emf, "UtilizationPercent", "professional") == [30.0]
    assert metric(emf, "Quarantined", "analyzer") == [1] and metric(emf, "Excess", "analyzer") == [0]
    assert metric(emf, "AnalyzerCapacityUsedPercent") == [20.0]
    assert metric(emf, "AllocatedCost", "total") == [140.0]
    assert {r["_aws"]["CloudWatchMetrics"][0]["Namespace"] for r in emf} == {"QlikLicenseButler"}


def test_a_failed_write_fails_the_invocation_and_the_heartbeat(invoke: Any) -> None:
    result, emf = invoke({"influxDb": {"enable": True, "host": "127.0.0.1", "port": free_port(),
                                       "timeoutSeconds": 2},
                          "licenseMonitoring": {"enable": True}})
    assert isinstance(result, RuntimeError) and "cannot reach the server" in str(result)
    assert metric(emf, "CollectorSuccess") == [0]
    assert metric(emf, "InfluxWriteFailures") == [1]
    assert metric(emf, "Total", "professional") == [10]  # the license metrics still reach CloudWatch


def test_qrs_unreachable_fails_the_heartbeat(invoke: Any, site: Any) -> None:
    @dataclass
    class Gone:
        url: str
        certs_dir: Path

    result, emf = invoke({"licenseMonitoring": {"enable": True}, "qrs": {"retries": 0}},
                         sim=Gone(f"https://127.0.0.1:{free_port()}", site.certs_dir))
    assert type(result).__name__ == "QrsUnreachable"
    assert metric(emf, "CollectorSuccess") == [0]
    assert metric(emf, "Total", "professional") == []


def test_store_in_influxdb_false_still_emits_metrics(invoke: Any, influx_server: InfluxServer,
                                                     influx_db: str) -> None:
    result, emf = invoke({"influxDb": influx_config(influx_server, influx_db),
                          "licenseMonitoring": {"enable": True, "storeInInfluxDb": False}})
    assert result["pointsWritten"] == {}
    assert influx_server.query("SHOW MEASUREMENTS", influx_db) == []
    assert metric(emf, "CollectorSuccess") == [1] and metric(emf, "Total", "analyzer") == [20]
