"""The Grafana dashboard: importable shape (Grafana 10+, the InfluxDB datasource as an import input), and every
panel's raw InfluxQL returning data from a real InfluxDB after a collection."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from butler.cli import main
from butler.config import InfluxDb
from butler.sinks.influx import InfluxV1Writer, make_point
from tests.conftest import config_data
from tests.integration.conftest import InfluxServer, influx_config, license_scenario
from tests.support.influxd import create_database

DASHBOARD = Path(__file__).parents[2] / "dashboards" / "license-overview.json"
MACROS = {"$timeFilter": "time >= now() - 24h", "$__interval": "1m"}  # what Grafana substitutes at query time


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panel_queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["query"]) for panel in dashboard()["panels"] for target in panel["targets"]]


def test_dashboard_imports_with_an_influxdb_datasource_input() -> None:
    data = dashboard()
    (source,) = data["__inputs"]
    assert (source["type"], source["pluginId"]) == ("datasource", "influxdb")
    assert data["id"] is None and data["uid"] and data["schemaVersion"] >= 38  # Grafana 10 schema
    grafana = next(r for r in data["__requires"] if r["id"] == "grafana")
    assert int(grafana["version"].split(".")[0]) >= 10
    required_panels = {r["id"] for r in data["__requires"] if r["type"] == "panel"}
    ids = [panel["id"] for panel in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        assert panel["type"] in required_panels
        assert panel["datasource"]["uid"] == "${" + source["name"] + "}"
        for target in panel["targets"]:
            assert target["rawQuery"] is True and target["datasource"]["uid"] == "${" + source["name"] + "}"


def test_dashboard_covers_the_issues_panels() -> None:
    sources = " ".join(query for _, query in panel_queries())
    titles = " ".join(title.lower() for title, _ in panel_queries())
    for needle in ('"utilization"', '"available"', '"used_minutes"', '"days_inactive" >= 25', '"license_release"'):
        assert needle in sources
    assert "capacity trend" in titles and "at risk" in titles


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxServer) -> str:
    """A collection into a fresh database, plus a release event as the evaluate function writes it."""
    from qrs_simulator import Simulator

    now, database = datetime.now(UTC), "butler_dashboard"
    create_database(influx_server.url, database)
    sim = Simulator(license_scenario(now), certs_dir=tmp_path_factory.mktemp("dashboard-certs"))
    sim.start()
    try:
        config = tmp_path_factory.mktemp("dashboard") / "butler.yaml"
        config.write_text(yaml.safe_dump(config_data(sim, {"influxDb": influx_config(influx_server, database),
                                                           "licenseMonitoring": {"enable": True}})))
        assert main(["collect", "--config", str(config)]) == 0
    finally:
        sim.stop()
    writer = InfluxV1Writer(InfluxDb.model_validate(influx_config(influx_server, database)))
    writer.write([make_point("license_release", {"license_type": "professional", "user_directory": "CORP",
                                                 "user_id": "CORP\\old", "dry_run": "false"},
                             {"days_inactive": 45.5, "allocation_id": "f1e2"}, now - timedelta(hours=1))])
    return database


@pytest.mark.parametrize(("title", "query"), panel_queries())
def test_every_panel_query_returns_data(title: str, query: str, collected: str, influx_server: InfluxServer) -> None:
    sql = query
    for macro, value in MACROS.items():
        sql = sql.replace(macro, value)
    assert not re.search(r"\$(?!tag_|col)\w", sql), f"unsubstituted variable in {title}"
    series = influx_server.query(sql, collected)
    values = [v for s in series for v in s.get("values", [])]
    assert values, f"panel {title!r} returned no data"
    assert any(cell is not None for row in values for cell in row[1:])


def test_users_at_risk_panel_lists_only_the_idle_unquarantined(collected: str, influx_server: InfluxServer) -> None:
    (query,) = [q for title, q in panel_queries() if "at risk" in title.lower()]
    series = influx_server.query(query.replace("$timeFilter", MACROS["$timeFilter"]), collected)
    assert sorted(s["tags"]["user_id"] for s in series) == ["CORP\\alice", "CORP\\bob", "CORP\\dave"]
