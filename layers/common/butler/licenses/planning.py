"""Capacity planning as a service (``butler forecast``, ``GET /v4/licenses/forecast``, the ``DaysToExhaustion``
metric): the history in, the forecast (``licenses.forecast``) and the savings out. Pure: the ports bring the data.

History: InfluxDB's ``license_usage`` when the collector writes it there (``influxDb.enable``, version 1,
``licenseMonitoring.storeInInfluxDb`` with ``totalLicenses`` and ``allocatedLicenses``), read through the
``UsageHistory`` port; otherwise the audit store's daily snapshots. InfluxDB 2.x sites use the snapshots too:
its InfluxQL endpoint needs a DBRP mapping that Butler does not create. Releases per day always come from the audit
store (live ``release-outcome`` records), for the trend "without releases".

Daily snapshots: every collection writes one ``snapshot`` record per ``license_usage`` type (professional, analyzer,
analyzer_capacity in minutes, and the token types) keyed by its UTC day, so the day's last collection replaces the
earlier ones: ``day, licenseType, at, total, allocated, used, available, excess`` (+ the capacity's minutes).

Forecasts cover ``professional`` and ``analyzer``: the allocated licenses a purchase adds to. Analyzer Capacity is a
monthly pool of minutes that resets, so a trend across months means nothing; its snapshots are kept as history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from butler.config import LICENSE_TYPES, Config
from butler.licenses.forecast import (
    MAX_HORIZON_DAYS,
    ReleaseCount,
    Sample,
    Snapshot,
    TypeForecast,
    daily,
    forecast,
    monthly_cost,
    monthly_savings,
    released_in_last,
)
from butler.licenses.model import AuditSink, AuditTrail, Record, UsageHistory, iso

SNAPSHOT = "snapshot"
WINDOW_DAYS = 90
MIN_HISTORY_DAYS = 14
SAVINGS_DAYS = 30
DEFAULT_HORIZON_DAYS = 180
FORECAST_METRIC = "DaysToExhaustion"
_SNAPSHOT_FIELDS = {"total": "total", "allocated": "allocated", "used": "used", "available": "available",
                    "excess": "excess", "allocated_minutes": "allocatedMinutes", "used_minutes": "usedMinutes",
                    "unavailable_minutes": "unavailableMinutes"}


# --- daily snapshots (written by the collector) -------------------------------------------------------------------


def snapshot_records(usage: Mapping[str, Mapping[str, int | float]], at: datetime) -> list[Record]:
    """One ``snapshot`` record per collected type (``license_usage`` fields, before the metrics selection)."""
    moment = at.astimezone(UTC)
    return [{"kind": SNAPSHOT, "day": moment.date().isoformat(), "licenseType": kind, "at": iso(moment),
             **{name: int(fields[key]) for key, name in _SNAPSHOT_FIELDS.items() if key in fields}}
            for kind, fields in usage.items()]


def keep_snapshots(store: AuditSink, usage: Mapping[str, Mapping[str, int | float]], at: datetime) -> int:
    records = snapshot_records(usage, at)
    store.write_many(records)
    return len(records)


def snapshots_from(records: Iterable[Record]) -> list[Snapshot]:
    """Snapshot records as the forecast's ``Snapshot`` (records of another shape are skipped)."""
    found = []
    for record in records:
        try:
            found.append(Snapshot(date.fromisoformat(record["day"]), str(record["licenseType"]),
                                  int(record["total"]), int(record["allocated"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def release_counts(records: Iterable[Record]) -> list[ReleaseCount]:
    """Live releases per type per UTC day, from ``release-outcome`` records (dry runs release nothing)."""
    counts: dict[tuple[date, str], int] = {}
    for record in records:
        if record.get("kind") != "release-outcome" or record.get("action") != "release" or record.get("dryRun"):
            continue
        try:
            day = datetime.fromisoformat(str(record["at"]).replace("Z", "+00:00")).astimezone(UTC).date()
        except (KeyError, ValueError):
            continue
        key = (day, str(record.get("licenseType")))
        counts[key] = counts.get(key, 0) + 1
    return [ReleaseCount(day, kind, n) for (day, kind), n in sorted(counts.items())]


# --- the answer ---------------------------------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TypeForecastAnswer(_Answer):
    licenseType: str
    asOf: str | None = Field(description="the day of the latest history point (YYYY-MM-DD)")
    historyDays: int = Field(description="days with history in the window")
    total: int | None
    allocated: int | None
    available: int | None
    allocatedPerDay: float | None = Field(description="the trend of the allocated count (Theil-Sen), per day")
    allocatedPerDayWithoutReleases: float | None = Field(
        description="the trend of the demand: allocated plus the releases since the window's start")
    daysToExhaustion: int | None = Field(description="days until the demand trend reaches the total; null: not "
                                                     "within the horizon, or not enough history")
    exhaustionDate: str | None
    daysToExhaustionWithReleases: int | None
    exhaustionDateWithReleases: str | None
    note: str | None = Field(description="why there is no forecast (e.g. not enough history)")


class TypeCost(_Answer):
    allocated: int
    unitCost: float
    cost: float


class MonthlyCost(_Answer):
    monthlyCost: float
    byType: dict[str, TypeCost]


class TypeSavings(_Answer):
    released: int
    unitCost: float
    savings: float


class MonthlySavings(_Answer):
    monthlySavings: float
    byType: dict[str, TypeSavings]


class ForecastAnswer(_Answer):
    professional: TypeForecastAnswer
    analyzer: TypeForecastAnswer
    asOf: str = Field(description="today (UTC)")
    horizonDays: int
    windowDays: int
    minHistoryDays: int
    source: Literal["influxdb", "audit"] = Field(description="the history read: InfluxDB license_usage, or the "
                                                             "audit store's daily snapshots")
    releasedLast30Days: dict[str, int]
    cost: MonthlyCost | None = Field(description="with licenseMonitoring.costs: the allocations' monthly cost")
    savings: MonthlySavings | None = Field(
        description="with licenseMonitoring.costs: what the releases of the last 30 days save per month")


def _no_history(license_type: str) -> TypeForecastAnswer:
    return TypeForecastAnswer(
        licenseType=license_type, asOf=None, historyDays=0, total=None, allocated=None, available=None,
        allocatedPerDay=None, allocatedPerDayWithoutReleases=None, daysToExhaustion=None, exhaustionDate=None,
        daysToExhaustionWithReleases=None, exhaustionDateWithReleases=None,
        note=f"not enough history: 0 days, need {MIN_HISTORY_DAYS}")


def _type_answer(license_type: str, result: TypeForecast | None) -> TypeForecastAnswer:
    return _no_history(license_type) if result is None else TypeForecastAnswer(**result.to_json())


# --- the service --------------------------------------------------------------------------------------------------


def reads_influx(config: Config) -> bool:
    """Whether ``license_usage`` in InfluxDB is the history (see the module docstring)."""
    influx, monitoring = config.Butler.influxDb, config.Butler.licenseMonitoring
    return (influx.enable and influx.version == 1 and monitoring.storeInInfluxDb
            and {"totalLicenses", "allocatedLicenses"} <= set(monitoring.metrics))


def check_horizon(horizon_days: int) -> int:
    if not 0 <= horizon_days <= MAX_HORIZON_DAYS:
        raise ValueError(f"horizon must be 0 to {MAX_HORIZON_DAYS} days, not {horizon_days}")
    return horizon_days


def plan_capacity(config: Config, *, audit: AuditTrail, usage: UsageHistory | None, now: datetime,
                  horizon_days: int = DEFAULT_HORIZON_DAYS) -> ForecastAnswer:
    """The forecast of ``professional`` and ``analyzer`` as of ``now``; ``usage``: InfluxDB when it is the history
    (``reads_influx``), else None and the snapshots are read."""
    check_horizon(horizon_days)
    today = now.astimezone(UTC).date()
    start = today - timedelta(days=WINDOW_DAYS - 1)
    if usage is not None:
        samples = usage.usage_samples(datetime.combine(start, time(), UTC), now, LICENSE_TYPES)
        snapshots = daily(s for s in samples if s.license_type in LICENSE_TYPES)
    else:
        snapshots = [s for s in snapshots_from(audit.snapshots_between(start, today))
                     if s.license_type in LICENSE_TYPES]
    releases = release_counts(audit.releases_between(datetime.combine(start, time(), UTC), now))
    results = forecast(snapshots, releases, today=today, horizon_days=horizon_days, window_days=WINDOW_DAYS,
                       min_history_days=MIN_HISTORY_DAYS)
    released = released_in_last(releases, today=today, days=SAVINGS_DAYS)
    return ForecastAnswer(
        professional=_type_answer("professional", results.get("professional")),
        analyzer=_type_answer("analyzer", results.get("analyzer")),
        asOf=today.isoformat(), horizonDays=horizon_days, windowDays=WINDOW_DAYS, minHistoryDays=MIN_HISTORY_DAYS,
        source="influxdb" if usage is not None else "audit",
        releasedLast30Days={kind: released.get(kind, 0) for kind in LICENSE_TYPES},
        **_money(config, results, released))


def _money(config: Config, results: Mapping[str, TypeForecast], released: Mapping[str, int]) -> dict[str, Any]:
    costs = config.Butler.licenseMonitoring.costs
    if costs is None:
        return {"cost": None, "savings": None}
    prices: dict[str, float] = {kind: float(getattr(costs, kind)) for kind in LICENSE_TYPES}
    allocated: dict[str, int] = {kind: results[kind].allocated for kind in LICENSE_TYPES if kind in results}
    savings: dict[str, int] = {kind: released.get(kind, 0) for kind in LICENSE_TYPES}
    return {"cost": MonthlyCost.model_validate(monthly_cost(allocated, prices)),
            "savings": MonthlySavings.model_validate(monthly_savings(savings, prices))}


def exhaustion_metrics(answer: ForecastAnswer) -> dict[str, float]:
    """``DaysToExhaustion`` per type: the days left; the horizon when the pool does not run out within it (so an
    alarm "under N days" reads a healthy pool as healthy); nothing without a forecast (not enough history)."""
    values: dict[str, float] = {}
    for result in (answer.professional, answer.analyzer):
        if result.daysToExhaustion is not None:
            values[result.licenseType] = float(result.daysToExhaustion)
        elif result.allocatedPerDayWithoutReleases is not None and result.total:
            values[result.licenseType] = float(answer.horizonDays)
    return values


def format_forecast(answer: ForecastAnswer) -> str:
    """The readable table of ``butler forecast`` (without ``--json``)."""
    rows = [("type", "total", "allocated", "available", "per day", "w/o releases", "runs out", "history")]
    for item in (answer.professional, answer.analyzer):
        runs_out = (f"{item.exhaustionDate} ({item.daysToExhaustion} d)" if item.exhaustionDate
                    else item.note or f"not within {answer.horizonDays} d")
        rows.append((item.licenseType, _text(item.total), _text(item.allocated), _text(item.available),
                     _text(item.allocatedPerDay), _text(item.allocatedPerDayWithoutReleases), runs_out,
                     f"{item.historyDays} d"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append(f"history: {answer.source}, {answer.windowDays} days to {answer.asOf}; horizon {answer.horizonDays} d")
    if answer.cost is not None and answer.savings is not None:
        lines.append(f"monthly cost {answer.cost.monthlyCost:g}; releases of the last {SAVINGS_DAYS} days save "
                     f"{answer.savings.monthlySavings:g} a month")
    return "\n".join(lines)


def _text(value: float | int | None) -> str:
    return "-" if value is None else f"{value:g}"


__all__ = ["FORECAST_METRIC", "SNAPSHOT", "ForecastAnswer", "Sample", "exhaustion_metrics", "format_forecast",
           "keep_snapshots", "plan_capacity", "reads_influx", "release_counts", "snapshot_records",
           "snapshots_from"]
