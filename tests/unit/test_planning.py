"""Capacity planning through the service: daily snapshots kept by the collector in DynamoDB (moto) and JSON Lines,
forecasts on seeded histories with known answers, savings, the metric, and the route."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from butler.api import Backend, create_app
from butler.config import Config, parse
from butler.licenses import collect
from butler.licenses.on_request import RequestSinks
from butler.licenses.planning import (
    exhaustion_metrics,
    format_forecast,
    plan_capacity,
    release_counts,
    snapshot_records,
)
from butler.sinks.audit import DynamoDbAuditSink, JsonLinesAuditSink, create_table, item_keys
from tests.unit.test_collect_service import FakeQrs

NOW = datetime(2026, 6, 15, 18, 30, tzinfo=UTC)
TABLE = "butler-audit"


def config(**monitoring: Any) -> Config:
    return parse({"Butler": {"licenseMonitoring": {"enable": True, **monitoring}}})


@pytest.fixture
def table(mocked_aws: None) -> DynamoDbAuditSink:
    create_table(TABLE, boto3.client("dynamodb"))
    return DynamoDbAuditSink(TABLE, retention_days=90)


def snapshot(day: date, kind: str, total: int, allocated: int) -> dict[str, Any]:
    return {"kind": "snapshot", "day": day.isoformat(), "licenseType": kind, "at": f"{day.isoformat()}T23:00:00.000Z",
            "total": total, "allocated": allocated, "used": allocated, "available": total - allocated, "excess": 0}


def seed(store: Any, counts: list[int], *, kind: str = "professional", total: int = 500) -> None:
    """One snapshot a day, the last today."""
    first = NOW.date() - timedelta(days=len(counts) - 1)
    store.write_many(snapshot(first + timedelta(days=i), kind, total, n) for i, n in enumerate(counts))


def release(at: datetime, kind: str = "professional", n: int = 0, *, dry_run: bool = False) -> dict[str, Any]:
    return {"kind": "release-outcome", "runId": f"run-{at:%Y%m%d}", "at": at.isoformat().replace("+00:00", "Z"),
            "actor": "scheduler", "dryRun": dry_run, "allocationId": f"a-{kind}-{n}-{at:%j}", "licenseType": kind,
            "userDirectory": "CORP", "userId": f"u{n}", "userName": None, "action": "release", "reason": "idle",
            "daysInactive": 40.0, "lastUsed": None}


# --- daily snapshots --------------------------------------------------------------------------------------------


def test_a_collection_keeps_one_snapshot_per_type_and_day_and_the_days_last_wins(
        table: DynamoDbAuditSink) -> None:
    qrs = FakeQrs()
    morning = collect.run_collection(config(), qrs, None, now=NOW.replace(hour=8), history=table)
    evening = collect.run_collection(config(), qrs, None, now=NOW.replace(hour=20), history=table)
    assert morning.history == evening.history == "kept (3 snapshots)" and evening.ok
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert sorted((i["pk"]["S"], i["sk"]["S"]) for i in items) == [
        ("SNAPSHOTS#2026", "2026-06-15#analyzer"), ("SNAPSHOTS#2026", "2026-06-15#analyzer_capacity"),
        ("SNAPSHOTS#2026", "2026-06-15#professional")]
    assert all(i["at"]["S"] == "2026-06-15T20:30:00.000Z" for i in items)  # the second replaced the first
    assert all(int(i["expiresAt"]["N"]) > NOW.timestamp() + 80 * 86400 for i in items)  # retention: 90 days
    professional, = table.snapshots_between(NOW.date(), NOW.date())[2:]
    assert {k: professional[k] for k in ("total", "allocated", "used", "available", "excess")} == {
        "total": 10, "allocated": 4, "used": 3, "available": 6, "excess": 0}
    capacity = next(r for r in table.snapshots_between(NOW.date(), NOW.date())
                    if r["licenseType"] == "analyzer_capacity")
    assert (capacity["allocatedMinutes"], capacity["usedMinutes"], capacity["unavailableMinutes"]) == (600, 60, 0)


def test_ninety_days_are_one_query_and_two_across_a_new_year(table: DynamoDbAuditSink,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    days = [date(2025, 11, 1) + timedelta(days=i) for i in range(120)]
    table.write_many(snapshot(day, "analyzer", 100, 10) for day in days)
    queries: list[dict[str, Any]] = []
    real = table.table.query
    def counted(**kwargs: Any) -> Any:
        queries.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(table.table, "query", counted)
    records = table.snapshots_between(date(2025, 12, 1), date(2026, 2, 28))
    assert [r["day"] for r in records] == [d.isoformat() for d in days if date(2025, 12, 1) <= d <= date(2026, 2, 28)]
    assert len(queries) == 2
    queries.clear()
    assert len(table.snapshots_between(date(2026, 1, 1), date(2026, 2, 28))) == 59 and len(queries) == 1


def test_json_lines_keeps_the_days_last_snapshot_and_users_history_ignores_them(tmp_path: Path) -> None:
    store = JsonLinesAuditSink(tmp_path / "audit.jsonl")
    qrs = FakeQrs()
    for hour in (8, 20):
        collect.run_collection(config(), qrs, None, now=NOW.replace(hour=hour), history=store)
    records = store.snapshots_between(NOW.date(), NOW.date())
    assert [r["licenseType"] for r in records] == ["analyzer", "analyzer_capacity", "professional"]
    assert {r["at"] for r in records} == {"2026-06-15T20:30:00.000Z"}
    assert store.records_for_user("CORP", "u1") == []


def test_snapshot_keys_sort_by_day_within_a_years_partition() -> None:
    record, = snapshot_records({"professional": {"total": 5, "allocated": 2, "utilization": 40.0}}, NOW)
    assert item_keys(record) == {"pk": "SNAPSHOTS#2026", "sk": "2026-06-15#professional"}
    assert "utilization" not in record and record["total"] == 5


def test_a_failed_snapshot_write_fails_the_collection_visibly() -> None:
    class Broken:
        def write(self, record: Any) -> None:
            raise OSError("disk full")

        def write_many(self, records: Any) -> None:
            raise OSError("disk full")

    summary = collect.run_collection(config(), FakeQrs(), None, now=NOW, history=Broken())
    assert summary.history == "failed" and summary.error == "daily snapshots not kept: disk full"


# --- forecasts with known answers, through the service ------------------------------------------------------------


def forecast_json(store: Any, cfg: Config | None = None, horizon: int = 180) -> dict[str, Any]:
    answer: dict[str, Any] = plan_capacity(cfg or config(), audit=store, usage=None, now=NOW,
                                           horizon_days=horizon).model_dump()
    return answer


def test_two_a_day_reaches_a_known_date(table: DynamoDbAuditSink) -> None:
    seed(table, [100 + 2 * i for i in range(60)])  # 218 today: 282 left at 2 a day = 141 days
    answer = forecast_json(table)
    professional = answer["professional"]
    assert (professional["allocatedPerDay"], professional["available"], professional["historyDays"]) == (2.0, 282, 60)
    assert (professional["daysToExhaustion"], professional["exhaustionDate"]) == (141, "2026-11-03")
    assert answer["source"] == "audit" and answer["horizonDays"] == 180
    assert answer["analyzer"]["note"] == "not enough history: 0 days, need 14"
    assert exhaustion_metrics(plan_capacity(config(), audit=table, usage=None, now=NOW)) == {"professional": 141.0}


def test_a_flat_line_never_runs_out_and_reports_the_horizon_as_its_metric(table: DynamoDbAuditSink) -> None:
    seed(table, [300] * 60, kind="analyzer")
    answer = plan_capacity(config(), audit=table, usage=None, now=NOW, horizon_days=90)
    assert (answer.analyzer.allocatedPerDay, answer.analyzer.daysToExhaustion) == (0.0, None)
    assert answer.analyzer.exhaustionDate is None
    assert exhaustion_metrics(answer) == {"analyzer": 90.0}


def test_a_release_spike_does_not_move_the_trend(table: DynamoDbAuditSink) -> None:
    # Demand 2 a day; 30 days ago the butler released 100, so the count dropped by 100 for good.
    spike = NOW.date() - timedelta(days=29)
    seed(table, [200 + 2 * i - (100 if i >= 30 else 0) for i in range(60)])
    at = datetime.combine(spike, datetime.min.time(), UTC).replace(hour=2)
    table.write_many(release(at, n=n) for n in range(100))
    table.write_many(release(at, n=n, dry_run=True) for n in range(100, 150))  # a dry run releases nothing
    answer = forecast_json(table)["professional"]
    assert answer["allocatedPerDayWithoutReleases"] == 2.0
    # 218 allocated today: 282 left at the demand's 2 a day.
    assert (answer["allocated"], answer["daysToExhaustion"], answer["exhaustionDate"]) == (218, 141, "2026-11-03")
    assert answer["allocatedPerDay"] is not None and answer["allocatedPerDay"] < 2.0


def test_below_fourteen_days_is_not_enough_history(table: DynamoDbAuditSink) -> None:
    seed(table, [100 + 5 * i for i in range(13)])
    answer = forecast_json(table)["professional"]
    assert answer["note"] == "not enough history: 13 days, need 14"
    assert (answer["allocatedPerDay"], answer["daysToExhaustion"], answer["exhaustionDate"]) == (None, None, None)
    assert exhaustion_metrics(plan_capacity(config(), audit=table, usage=None, now=NOW)) == {}


def test_costs_give_the_monthly_cost_and_the_savings_of_the_last_30_days(table: DynamoDbAuditSink) -> None:
    seed(table, [218] * 20)
    seed(table, [50] * 20, kind="analyzer", total=100)
    table.write_many([release(NOW - timedelta(days=3), n=1), release(NOW - timedelta(days=10), n=2),
                      release(NOW - timedelta(days=10), "analyzer", n=3),
                      release(NOW - timedelta(days=45), n=4)])  # older than 30 days: no saving counted
    answer = forecast_json(table, config(costs={"professional": 40, "analyzer": 10}))
    assert answer["releasedLast30Days"] == {"professional": 2, "analyzer": 1}
    assert answer["cost"]["monthlyCost"] == 218 * 40 + 50 * 10
    assert answer["savings"] == {"monthlySavings": 90.0, "byType": {
        "analyzer": {"released": 1, "unitCost": 10.0, "savings": 10.0},
        "professional": {"released": 2, "unitCost": 40.0, "savings": 80.0}}}
    assert forecast_json(table)["cost"] is None


def test_release_counts_are_live_releases_per_day() -> None:
    at = datetime(2026, 6, 1, 23, 59, tzinfo=UTC)
    counts = release_counts([release(at, n=1), release(at, n=2), release(at, "analyzer"),
                             release(at, n=3, dry_run=True), {"kind": "snapshot"}])
    assert [(c.day.isoformat(), c.license_type, c.released) for c in counts] == [
        ("2026-06-01", "analyzer", 1), ("2026-06-01", "professional", 2)]


def test_the_readable_table(tmp_path: Path) -> None:
    store = JsonLinesAuditSink(tmp_path / "audit.jsonl")
    seed(store, [100 + 2 * i for i in range(60)])
    text = format_forecast(plan_capacity(config(costs={"professional": 40}), audit=store, usage=None, now=NOW))
    assert "2026-11-03 (141 d)" in text and "not enough history: 0 days" in text and "monthly cost 8720" in text


# --- the route -------------------------------------------------------------------------------------------------


def call(app: Any, query: dict[str, list[str]] | None = None) -> tuple[int, dict[str, Any]]:
    path = "/v4/licenses/forecast"
    event = {"resource": "/{proxy+}", "path": path, "httpMethod": "GET", "headers": {}, "multiValueHeaders": {},
             "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
             "multiValueQueryStringParameters": query or None, "pathParameters": {"proxy": path[1:]},
             "requestContext": {"requestId": "r1", "stage": "api", "httpMethod": "GET", "path": path,
                                "identity": {}}, "body": None, "isBase64Encoded": False}
    answer = app.resolve(event, None)
    return answer["statusCode"], json.loads(answer["body"])


def test_the_route_answers_the_forecast_from_the_audit_table(table: DynamoDbAuditSink) -> None:
    seed(table, [100 + 2 * i for i in range(60)])
    backend = Backend(config, clock=lambda: NOW, client_factory=lambda _: FakeQrs(),
                      sinks_factory=lambda cfg, audit_file: RequestSinks(table))
    app = create_app(backend)
    status, body = call(app, {"horizon": ["140"]})
    assert status == 200
    assert body["horizonDays"] == 140 and body["professional"]["daysToExhaustion"] is None  # 141 > 140
    status, body = call(app)
    assert (status, body["professional"]["exhaustionDate"]) == (200, "2026-11-03")
    assert call(app, {"horizon": ["-1"]})[0] == 422
    assert call(app, {"horizon": ["soon"]})[0] == 422
    assert call(app, {"horizont": ["30"]})[0] == 400
