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
# What Grafana substitutes at query time: its macros, and the dashboard's variables (site: All).
MACROS = {"$timeFilter": "time >= now() - 60d", "$__interval": "1m", "$site": ".*", "$atRiskDays": "25",
          "$professionalCost": "40", "$analyzerCost": "10"}


def substituted(query: str, **values: str) -> str:
    for macro, value in {**MACROS, **{f"${k}": v for k, v in values.items()}}.items():
        query = query.replace(macro, value)
    return query


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
    for needle in ('"utilization"', '"available"', '"used_minutes"', '"days_inactive" >= $atRiskDays',
                   '"license_release"', "HOLT_WINTERS(", "$professionalCost"):
        assert needle in sources
    assert "capacity trend" in titles and "at risk" in titles
    assert "forecast" in titles and "savings" in titles and "returns" in titles
    assert all('"site" =~ /^$site$/' in query for _, query in panel_queries())  # every panel follows the site
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert set(variables) == {"site", "atRiskDays", "professionalCost", "analyzerCost"}
    assert variables["atRiskDays"]["query"] == "25" and variables["site"]["allValue"] == ".*"


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
                             {"days_inactive": 45.5, "allocation_id": "f1e2"}, now - timedelta(hours=1)),
                  make_point("license_release", {"license_type": "analyzer", "user_directory": "CORP",
                                                 "user_id": "CORP\\gone", "dry_run": "false"},
                             {"days_inactive": 50.0, "allocation_id": "a9b8"}, now - timedelta(hours=2))])
    # 30 days of history of a tagged site, for the forecast and the daily differences
    settings = InfluxDb.model_validate(influx_config(influx_server, database))
    north = InfluxV1Writer(settings, default_tags={"site": "north"})
    north.write(
        [make_point("license_usage", {"license_type": kind}, {"total": 10, "allocated": 1 + day // 10},
                    now - timedelta(days=31 - day)) for day in range(30) for kind in ("professional", "analyzer")])
    return database


@pytest.mark.parametrize(("title", "query"), panel_queries())
def test_every_panel_query_returns_data(title: str, query: str, collected: str, influx_server: InfluxServer) -> None:
    sql = substituted(query)
    assert not re.search(r"\$(?!tag_|col)\w", sql), f"unsubstituted variable in {title}"
    series = influx_server.query(sql, collected)
    values = [v for s in series for v in s.get("values", [])]
    assert values, f"panel {title!r} returned no data"
    assert any(cell is not None for row in values for cell in row[1:])


def test_users_at_risk_panel_lists_only_the_idle_unquarantined(collected: str, influx_server: InfluxServer) -> None:
    (query,) = [q for title, q in panel_queries() if "at risk" in title.lower()]
    series = influx_server.query(substituted(query), collected)
    assert sorted(s["tags"]["user_id"] for s in series) == ["CORP\\alice", "CORP\\bob", "CORP\\dave"]
    assert influx_server.query(substituted(query, atRiskDays="100000"), collected) == []  # the threshold counts


def test_the_site_variable_lists_and_filters_the_sites(collected: str, influx_server: InfluxServer) -> None:
    site = next(v for v in dashboard()["templating"]["list"] if v["name"] == "site")
    (series,) = influx_server.query(site["query"], collected)
    assert [row[1] for row in series["values"]] == ["north"]
    (query,) = [q for title, q in panel_queries() if title == "Capacity trend"]
    north = influx_server.query(substituted(query, site="north"), collected)
    assert {len(s["values"]) for s in north} == {30}  # the tagged history only, not the untagged collection
    assert influx_server.query(substituted(query, site="south"), collected) == []


def test_the_savings_panel_prices_the_live_releases(collected: str, influx_server: InfluxServer) -> None:
    (query,) = [q for title, q in panel_queries() if "savings" in title.lower() and "professional" in q]
    (series,) = influx_server.query(substituted(query), collected)
    assert series["values"][0][1] == 40  # one live release at 40 a month


def test_server_license_stat_maps_no_expiry_and_shows_the_collected_days(collected: str,
                                                                        influx_server: InfluxServer) -> None:
    from butler.licenses.server_license import NO_EXPIRY_DAYS

    (panel,) = [p for p in dashboard()["panels"] if '"server_license"' in p["targets"][0]["query"]]
    assert panel["type"] == "stat" and '"days_until_expiry"' in panel["targets"][0]["query"]
    mappings = panel["fieldConfig"]["defaults"]["mappings"]
    assert any(m["type"] == "value" and m["options"][str(NO_EXPIRY_DAYS)]["text"] == "No expiry" for m in mappings)
    assert any(m["type"] == "range" and m["options"]["to"] == -1 for m in mappings)  # expired, invalid, blacklisted
    sql = substituted(panel["targets"][0]["query"])
    (series,) = influx_server.query(sql, collected)
    assert 3000 < series["values"][-1][1] < NO_EXPIRY_DAYS  # the simulator's license: valid for ten years
