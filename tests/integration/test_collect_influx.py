"""``butler collect`` end to end: the QRS simulator over mutual TLS -> the collector -> a real InfluxDB 1.x.

The seed document's two sample Grafana queries run exactly as written there against what was collected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from butler.cli import main
from tests.integration.conftest import InfluxServer, influx_config, license_scenario, seed_queries
from tests.support.influxd import free_port, rows

STARTED = datetime.now(UTC)
COLLECTED = {"license_usage": 3, "user_license_activity": 6, "server_license": 1}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from qrs_simulator import Simulator

    sim = Simulator(license_scenario(STARTED), certs_dir=tmp_path_factory.mktemp("collect-certs"))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def collect(site: Any, write_config: Callable[..., Path],
            capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, dict[str, Any], str]]:
    """Run ``butler collect`` with extra config under Butler; returns (exit code, printed JSON, stderr)."""

    def run(extra: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        site.reset_stats()
        code = main(["collect", "--config", str(write_config(site, extra))])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip() else {}, err

    return run


def monitoring(server: InfluxServer, database: str, **extra: Any) -> dict[str, Any]:
    return {"influxDb": influx_config(server, database),
            "licenseMonitoring": {"enable": True, "tags": {"site": "eu-prod"}, **extra}}


def test_collect_writes_and_prints_points_per_measurement(collect: Any, site: Any, influx_server: InfluxServer,
                                                          influx_db: str) -> None:
    code, summary, err = collect(monitoring(influx_server, influx_db))
    assert (code, err) == (0, "")
    assert summary["pointsWritten"] == COLLECTED
    assert summary["influxDb"] == "written"
    assert summary["licenses"]["professional"]["allocated"] == 3
    # bulk reads only: one overview and one /full per access type, whatever the number of users
    assert site.stats() == {"GET /qrs/license/accesstypeoverview": 1,
                            "GET /qrs/license/professionalaccesstype/full": 1,
                            "GET /qrs/license/analyzeraccesstype/full": 1, "GET /qrs/license": 1}


def test_seed_query_license_utilization_by_type(collect: Any, influx_server: InfluxServer, influx_db: str) -> None:
    assert collect(monitoring(influx_server, influx_db))[0] == 0
    query = seed_queries()["License utilization by type"]
    found = {r["license_type"]: (r["allocated"], r["available"]) for r in rows(influx_server.query(query, influx_db))}
    assert found == {"professional": (3, 7), "analyzer": (2, 17), "analyzer_capacity": (1260, 4740)}


def test_seed_query_users_at_risk(collect: Any, influx_server: InfluxServer, influx_db: str) -> None:
    assert collect(monitoring(influx_server, influx_db))[0] == 0
    query = seed_queries()["Users at risk of license release"]
    found = {r["user_id"]: r for r in rows(influx_server.query(query, influx_db))}
    assert sorted(found) == ["CORP\\alice", "CORP\\bob", "CORP\\dave"]
    assert found["CORP\\alice"]["days_inactive"] == pytest.approx(40, abs=0.01)
    assert found["CORP\\bob"]["days_inactive"] == pytest.approx(26, abs=0.01)
    assert found["CORP\\dave"]["days_inactive"] == pytest.approx(30, abs=0.01)  # never used: since allocation
    expected_alice = datetime.fromisoformat(found["CORP\\alice"]["last_activity"].replace("Z", "+00:00"))
    assert (STARTED - expected_alice).days == 40


def test_every_point_of_a_collection_shares_one_timestamp_and_the_static_tags(
        collect: Any, influx_server: InfluxServer, influx_db: str) -> None:
    summaries = [collect(monitoring(influx_server, influx_db))[1] for _ in range(2)]
    stamps = set()
    for query in ('SELECT * FROM "license_usage"', 'SELECT * FROM "user_license_activity"'):
        found = rows(influx_server.query(query, influx_db))
        assert {r["site"] for r in found} == {"eu-prod"}
        stamps |= {r["time"] for r in found}
    assert stamps == {s["timestamp"].replace(".000Z", "Z") for s in summaries}


def test_metrics_selection_limits_what_is_written(collect: Any, influx_server: InfluxServer, influx_db: str) -> None:
    code, summary, _ = collect(monitoring(influx_server, influx_db, metrics=["availableLicenses"]))
    assert code == 0 and summary["pointsWritten"] == {"license_usage": 3, "user_license_activity": 0,
                                                      "server_license": 1}
    keys = {r["fieldKey"] for r in rows(influx_server.query('SHOW FIELD KEYS FROM "license_usage"', influx_db))}
    assert keys == {"available"}


def test_influxdb_disabled_writes_nothing_and_succeeds(collect: Any, influx_server: InfluxServer,
                                                       influx_db: str) -> None:
    extra = monitoring(influx_server, influx_db)
    extra["influxDb"]["enable"] = False
    code, summary, _ = collect(extra)
    assert code == 0
    assert summary["influxDb"] == "not written (influxDb.enable: false)" and summary["pointsWritten"] == {}
    assert influx_server.query("SHOW MEASUREMENTS", influx_db) == []


def test_monitoring_disabled_asks_qrs_nothing(collect: Any, site: Any, influx_server: InfluxServer,
                                              influx_db: str) -> None:
    code, summary, _ = collect(monitoring(influx_server, influx_db, enable=False))
    assert code == 0 and summary["enabled"] is False
    assert site.stats() == {}
    assert influx_server.query("SHOW MEASUREMENTS", influx_db) == []


def test_a_failed_write_fails_the_command_visibly(collect: Any) -> None:
    extra = {"influxDb": {"enable": True, "host": "127.0.0.1", "port": free_port(), "timeoutSeconds": 2,
                          "username": "butler", "password": "n0t-in-output"},
             "licenseMonitoring": {"enable": True}}
    code, summary, err = collect(extra)
    assert code == 1
    assert summary["influxDb"] == "failed" and summary["pointsWritten"] == {"license_usage": 0,
                                                                           "user_license_activity": 0,
                                                                           "server_license": 0}
    assert err.startswith("error: InfluxDB http://127.0.0.1:") and "cannot reach the server" in err
    assert "n0t-in-output" not in err + json.dumps(summary)


def test_the_server_license_point_shares_the_collection_timestamp(collect: Any, influx_server: InfluxServer,
                                                                  influx_db: str) -> None:
    code, summary, _ = collect(monitoring(influx_server, influx_db))
    assert code == 0 and summary["serverLicense"]["daysUntilExpiry"] is not None
    found = rows(influx_server.query('SELECT * FROM "server_license"', influx_db))
    assert len(found) == 1 and found[0]["time"] == summary["timestamp"].replace(".000Z", "Z")
    assert found[0]["days_until_expiry"] == summary["serverLicense"]["daysUntilExpiry"] > 0
    assert found[0]["expired"] is False and found[0]["site"] == "eu-prod"
    types = {r["fieldKey"]: r["fieldType"] for r in rows(influx_server.query(
        'SHOW FIELD KEYS FROM "server_license"', influx_db))}
    assert types == {"days_until_expiry": "integer", "expired": "boolean"}
