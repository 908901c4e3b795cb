"""The collection service with in-memory fakes for QRS and InfluxDB; EMF metrics; the monitoring config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from butler.config import Config, ConfigError, Costs, parse
from butler.licenses import collect
from butler.licenses.server_license import ServerLicense
from butler.qrs.models import AccessTypeOverview, Allocation, LicenseType
from butler.sinks.influx import InfluxWriteError, InfluxWriter

NOW = datetime(2026, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)


class FakeQrs:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def access_type_overview(self) -> AccessTypeOverview:
        self.calls.append("overview")
        return AccessTypeOverview.model_validate({
            "professionalAccess": {"total": 10, "allocated": 4, "used": 3, "available": 6},
            "analyzerAccess": {"total": 20, "allocated": 5, "used": 5, "available": 15},
            "analyzerTimeAccess": {"allocatedMinutes": 600, "usedMinutes": 60},
        })

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]:
        self.calls.append(license_type)
        return [Allocation.model_validate({"id": f"{license_type}-{n}", "lastUsed": "2026-05-01T12:00:00.000Z",
                                           "user": {"userDirectory": "CORP", "userId": f"{license_type[0]}{n}"}})
                .model_copy(update={"licenseType": license_type}) for n in range(3)]

    def server_license(self) -> ServerLicense:
        self.calls.append("license")
        return ServerLicense(serial="9999000011112222", keyDetails="Valid To: 2026-07-01")  # 30 days after NOW


class FakeWriter(InfluxWriter):
    def __init__(self, fail_after: int | None = None, batch_size: int = 5000) -> None:
        super().__init__("fake", batch_size=batch_size, default_tags={"site": "test"})
        self.lines: list[str] = []
        self.fail_after = fail_after

    def _write_lines(self, lines: list[str], precision: str) -> None:
        if self.fail_after is not None and len(self.lines) >= self.fail_after:
            raise InfluxWriteError("fake refused the write: HTTP 500 boom")
        self.lines.extend(lines)

    def close(self) -> None:
        pass


def config(**monitoring: Any) -> Config:
    return parse({"Butler": {"licenseMonitoring": {"enable": True, **monitoring}}})


def test_disabled_monitoring_reads_and_writes_nothing() -> None:
    qrs, writer = FakeQrs(), FakeWriter()
    summary = collect.run_collection(config(enable=False), qrs, writer, now=NOW)
    assert (qrs.calls, writer.lines) == ([], [])
    assert summary.to_json()["enabled"] is False
    assert "licenseMonitoring.enable: false" in summary.to_json()["influxDb"]
    assert summary.ok


def test_collection_writes_every_point_at_one_timestamp() -> None:
    qrs, writer = FakeQrs(), FakeWriter()
    summary = collect.run_collection(config(), qrs, writer, now=NOW)
    assert qrs.calls == ["overview", "professional", "analyzer", "license"]  # one read per access type, no N+1
    assert summary.points == summary.written == {"license_usage": 3, "user_license_activity": 6,
                                                 "server_license": 1}
    stamps = {text.rsplit(" ", 1)[1] for text in writer.lines}
    assert stamps == {str(int(NOW.replace(microsecond=0).timestamp()))}
    assert all(",site=test" in text for text in writer.lines)  # static tags on every point
    assert summary.to_json()["timestamp"] == "2026-06-01T12:00:00.000Z"


def test_summary_json_names_points_written_per_measurement() -> None:
    summary = collect.run_collection(config(), FakeQrs(), FakeWriter(), now=NOW).to_json()
    json.dumps(summary)  # serializable as printed by `butler collect`
    assert summary["pointsWritten"] == {"license_usage": 3, "user_license_activity": 6, "server_license": 1}
    assert summary["influxDb"] == "written"
    assert summary["licenses"]["professional"]["utilization"] == 40.0
    assert summary["error"] is None


def test_without_user_activity_allocations_are_not_read() -> None:
    qrs, writer = FakeQrs(), FakeWriter()
    summary = collect.run_collection(config(metrics=["totalLicenses"]), qrs, writer, now=NOW)
    assert qrs.calls == ["overview", "license"]
    assert summary.written == {"license_usage": 3, "user_license_activity": 0, "server_license": 1}
    usage = [text for text in writer.lines if text.startswith("license_usage")]
    assert len(usage) == 3 and all(" total=" in text and "allocated=" not in text for text in usage)


@pytest.mark.parametrize(("monitoring", "writer", "reason"), [
    ({"storeInInfluxDb": False}, FakeWriter(), "licenseMonitoring.storeInInfluxDb: false"),
    ({}, None, "influxDb.enable: false"),
])
def test_not_stored_still_collects_for_metrics(monitoring: dict[str, Any], writer: FakeWriter | None,
                                               reason: str) -> None:
    summary = collect.run_collection(config(**monitoring), FakeQrs(), writer, now=NOW)
    assert writer is None or writer.lines == []
    assert summary.ok and reason in summary.influx
    assert summary.written == {} and summary.points["user_license_activity"] == 6
    assert summary.usage["analyzer"]["allocated"] == 5


def test_failed_write_is_reported_with_what_made_it() -> None:
    writer = FakeWriter(fail_after=4, batch_size=2)  # batches of 2: the first two batches go, the third fails
    summary = collect.run_collection(config(), FakeQrs(), writer, now=NOW)
    assert not summary.ok
    assert summary.influx == "failed"
    assert "HTTP 500 boom" in (summary.error or "") and "4 of 10 points written" in (summary.error or "")
    assert summary.written == {"license_usage": 3, "user_license_activity": 1, "server_license": 0}
    assert len(writer.lines) == 4


def test_enabled_monitoring_needs_a_client() -> None:
    with pytest.raises(ValueError, match="no QRS client"):
        collect.run_collection(config(), None, None, now=NOW)


# --- EMF metrics ------------------------------------------------------------------------------------------------


def emf_records(text: str) -> list[dict[str, Any]]:
    return [record for record in map(json.loads, filter(None, text.splitlines())) if "_aws" in record]


def metric_values(records: Sequence[dict[str, Any]], license_type: str | None) -> dict[str, float]:
    found: dict[str, float] = {}
    for record in records:
        if record.get("LicenseType") == license_type:
            for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = record[metric["Name"]]
                found[metric["Name"]] = value[0] if isinstance(value, list) else value
    return found


def test_emf_metrics_per_license_type(capsys: pytest.CaptureFixture[str]) -> None:
    summary = collect.run_collection(config(), FakeQrs(), None, now=NOW)
    collect.emit_metrics(summary)
    records = emf_records(capsys.readouterr().out)
    assert {r["_aws"]["CloudWatchMetrics"][0]["Namespace"] for r in records} == {"QlikLicenseButler"}
    assert all(r["service"] == "qlik-license-butler" for r in records)
    assert metric_values(records, "professional") == {"Total": 10, "Allocated": 4, "Available": 6,
                                                      "UtilizationPercent": 40.0, "Excess": 0, "Quarantined": 0}
    assert metric_values(records, "analyzer")["UtilizationPercent"] == 25.0
    assert metric_values(records, None) == {"AnalyzerCapacityUsedPercent": 10.0, "ServerLicenseDaysLeft": 30.0}
    assert "analyzer_capacity" not in {r.get("LicenseType") for r in records}
    assert not any("AllocatedCost" in r for r in records)  # no costs configured
    dimensions = {tuple(sorted(d)) for r in records for d in r["_aws"]["CloudWatchMetrics"][0]["Dimensions"]}
    assert dimensions == {("LicenseType", "service"), ("service",)}


def test_allocated_cost_per_type_and_total(capsys: pytest.CaptureFixture[str]) -> None:
    summary = collect.run_collection(config(costs={"professional": 40, "analyzer": 12.5}), FakeQrs(), None, now=NOW)
    assert collect.allocated_costs(summary.usage, Costs(professional=40, analyzer=12.5)) == {
        "professional": 160.0, "analyzer": 62.5, "total": 222.5}
    collect.emit_metrics(summary, Costs(professional=40, analyzer=12.5))
    records = emf_records(capsys.readouterr().out)
    assert metric_values(records, "total") == {"AllocatedCost": 222.5}
    assert metric_values(records, "professional")["AllocatedCost"] == 160.0


# --- configuration ----------------------------------------------------------------------------------------------


def test_seed_monitoring_example_is_accepted_with_all_four_metrics() -> None:
    seed = parse({"Butler": {
        "influxDb": {"enable": True, "host": "influxdb.company.com", "port": 8086, "database": "butler_metrics"},
        "licenseMonitoring": {"enable": True, "storeInInfluxDb": True, "collectInterval": "every 1 hour",
                              "metrics": ["totalLicenses", "allocatedLicenses", "availableLicenses", "userActivity"]},
    }})
    assert seed.Butler.licenseMonitoring.metrics == ["totalLicenses", "allocatedLicenses", "availableLicenses",
                                                     "userActivity"]


def test_static_tags_cannot_shadow_butlers_own() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"Butler": {"licenseMonitoring": {"tags": {"site": "eu", "license_type": "x"}}}})
    assert caught.value.problems == [
        "Butler.licenseMonitoring.tags: license_type: reserved tag name (Butler sets it on its own points)"]


def test_unknown_metric_name_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"Butler": {"licenseMonitoring": {"metrics": ["totalLicences"]}}})
    assert caught.value.problems[0].startswith("Butler.licenseMonitoring.metrics[0]:")
