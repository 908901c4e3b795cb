"""License monitoring: read license use from QRS once, write it to InfluxDB, emit CloudWatch (EMF) metrics.

One collection = one ``GET /qrs/license/accesstypeoverview`` plus, for ``userActivity``, one ``.../full`` read per
access type. Every point of a collection carries the same timestamp (second precision).

InfluxDB data (CONTRACT section 5):

- ``license_usage``, tag ``license_type``, one point per type: ``professional`` and ``analyzer`` (QRS's counts as
  they are; ``utilization`` = allocated / total in percent, as ``GET /v4/licenses/status``), ``analyzer_capacity``
  and, only when QRS says ``tokensEnabled``, ``user_access`` and ``login_access``.
- ``analyzer_capacity`` maps the monthly pool of minutes onto the same fields: ``total`` = allocatedMinutes (the
  pool), ``allocated`` = usedMinutes + unavailableMinutes (no longer available this period), ``used`` =
  usedMinutes, ``available`` = the rest (never below 0), ``excess`` = what exceeds the pool, ``quarantined`` = 0,
  ``utilization`` = usedMinutes / pool (as the status API); plus the raw ``allocated_minutes``, ``used_minutes``
  and ``unavailable_minutes``.
- ``user_access`` / ``login_access`` (token licensing) in tokens: ``total`` = the tokens assigned to the access
  type, ``allocated`` = ``used`` = usedTokens, ``quarantined`` = quarantinedTokens (user access) or
  unavailableTokens (login access: tokens not yet returned to the pool), ``available`` = total - used -
  quarantined (never below 0), ``excess`` = what exceeds total, ``utilization`` = used / total.
- ``user_license_activity``, one point per professional or analyzer allocation, tags ``user_id``
  (``DIRECTORY\\userid``; a deleted user's ``deletedUserDirectory\\deletedUserId``; the allocation id when QRS
  names no owner at all), ``user_directory``,
  ``license_type``; fields ``last_activity`` (lastUsed, or createdDate when never used; ISO 8601),
  ``days_inactive`` (the release policy's own definition) and ``quarantined`` (bool). An allocation with neither
  date has no inactivity and no point.

- ``server_license``, no tags, one point: ``days_until_expiry`` (integer; ``NO_EXPIRY_DAYS`` for a license that
  does not expire, at most -1 once expired, invalid or blacklisted) and ``expired`` (bool), as
  ``server_license.influx_fields``. A failed ``GET /qrs/license`` does not fail the collection (the access
  licenses are still worth having): it fails closed, as an unreadable expiry does, with days left 0 (every
  "days left below N" alarm fires) and the error in the summary's ``serverLicense.problem`` and the log.

``licenseMonitoring.metrics`` selects the InfluxDB fields: ``totalLicenses`` -> ``total``; ``allocatedLicenses``
-> ``allocated``, ``used``, ``quarantined``, ``excess``, ``utilization`` and the capacity minutes;
``availableLicenses`` -> ``available``; ``userActivity`` -> the ``user_license_activity`` points. The static
``licenseMonitoring.tags`` are added by the writer; ``server_license`` is written whatever the selection.
CloudWatch metrics do not depend on the selection: alarms need them whatever the dashboards show.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from butler.config import LICENSE_TYPES, Config, Costs, LicenseMonitoring, MonitoringMetric
from butler.licenses.model import AuditSink, Measurement, MeasurementsNotWritten, MeasurementWriter, iso
from butler.licenses.policy import days_inactive
from butler.licenses.release import describe
from butler.licenses.server_license import MEASUREMENT as SERVER
from butler.licenses.server_license import METRIC as SERVER_METRIC
from butler.licenses.server_license import (
    ServerLicense,
    influx_fields,
    metric_value,
    server_license_status,
    unread_status,
)
from butler.licenses.status import percent
from butler.observability import logger
from butler.qrs.models import AccessDetails, AccessTypeOverview, Allocation, AnalyzerTimeAccess, LicenseType, qualified

USAGE = "license_usage"
ACTIVITY = "user_license_activity"
CAPACITY = "analyzer_capacity"
Fields = dict[str, int | float]

_SELECTED_FIELDS: dict[MonitoringMetric, tuple[str, ...]] = {
    "totalLicenses": ("total",),
    "allocatedLicenses": ("allocated", "used", "quarantined", "excess", "utilization",
                          "allocated_minutes", "used_minutes", "unavailable_minutes"),
    "availableLicenses": ("available",),
}


class LicenseSource(Protocol):
    """What the collector reads from QRS (``QrsClient`` provides it)."""

    def access_type_overview(self) -> AccessTypeOverview: ...

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]: ...

    def server_license(self) -> ServerLicense: ...


# --- pure: QRS's numbers to fields and points ------------------------------------------------------------------


def _counts(total: int, allocated: int, used: int, quarantined: int, utilization: float) -> Fields:
    """The shared field set; available and excess derived the way QRS derives them for access types."""
    return {"total": total, "allocated": allocated, "used": used, "quarantined": quarantined,
            "excess": max(0, allocated + quarantined - total), "available": max(0, total - allocated - quarantined),
            "utilization": utilization}


def access_fields(details: AccessDetails) -> Fields:
    return {"total": details.total, "allocated": details.allocated, "used": details.used,
            "quarantined": details.quarantined, "excess": details.excess, "available": details.available,
            "utilization": percent(details.allocated, details.total)}


def capacity_fields(time_access: AnalyzerTimeAccess) -> Fields:
    pool, used, unavailable = time_access.allocatedMinutes, time_access.usedMinutes, time_access.unavailableMinutes
    return {**_counts(pool, used + unavailable, used, 0, percent(used, pool)),
            "allocated_minutes": pool, "used_minutes": used, "unavailable_minutes": unavailable}


def usage_fields(overview: AccessTypeOverview) -> dict[str, Fields]:
    """Every field of every ``license_usage`` point, by ``license_type`` tag (before the metrics selection)."""
    usage = {
        "professional": access_fields(overview.professionalAccess),
        "analyzer": access_fields(overview.analyzerAccess),
        CAPACITY: capacity_fields(overview.analyzerTimeAccess),
    }
    if overview.tokensEnabled:
        user, login = overview.userAccess, overview.loginAccess
        usage["user_access"] = _counts(user.allocatedTokens, user.usedTokens, user.usedTokens,
                                       user.quarantinedTokens, percent(user.usedTokens, user.allocatedTokens))
        usage["login_access"] = _counts(login.allocatedTokens, login.usedTokens, login.usedTokens,
                                        login.unavailableTokens, percent(login.usedTokens, login.allocatedTokens))
    return usage


def selected_fields(fields: Fields, metrics: Iterable[MonitoringMetric]) -> Fields:
    names = {name for metric in metrics for name in _SELECTED_FIELDS.get(metric, ())}
    return {name: value for name, value in fields.items() if name in names}


def usage_points(usage: dict[str, Fields], metrics: Sequence[MonitoringMetric],
                 at: datetime) -> list[Measurement]:
    points = []
    for license_type, fields in usage.items():
        chosen = selected_fields(fields, metrics)
        if chosen:  # a point needs at least one field
            points.append(Measurement(USAGE, {"license_type": license_type}, chosen, at))
    return points


def _owner(allocation: Allocation) -> tuple[str, str]:
    if allocation.user is not None:
        return allocation.user.userDirectory, allocation.user.userId
    return allocation.deletedUserDirectory or "", allocation.deletedUserId or ""


def activity_points(allocations: Iterable[Allocation], at: datetime) -> list[Measurement]:
    """One ``user_license_activity`` point per allocation whose last activity is known."""
    points = []
    for allocation in allocations:
        days = days_inactive(allocation, at)
        if days is None:
            continue
        directory, user_id = _owner(allocation)
        user = qualified(directory, user_id) if directory or user_id else allocation.id  # owner unknown to QRS
        tags = {"user_id": user, "user_directory": directory,
                "license_type": allocation.licenseType}
        fields = {"last_activity": iso(allocation.last_activity), "days_inactive": round(days, 3),
                  "quarantined": allocation.quarantined}
        points.append(Measurement(ACTIVITY, tags, fields, at))
    return points


def read_server_license(client: LicenseSource, today: date) -> dict[str, Any]:
    """``serverLicense`` as the status has it; a failed read is a status whose ``problem`` names the error."""
    try:
        return server_license_status(client.server_license(), today)
    except Exception as exc:  # fail closed (days left 0), and the access licenses are still collected
        problem = f"GET /qrs/license failed: {describe(exc)}"
        logger.warning("server license not read", extra={"error": problem})
        return unread_status(problem)


# --- the service ------------------------------------------------------------------------------------------------


@dataclass
class CollectionSummary:
    """What one collection did; ``to_json()`` is what ``butler collect`` prints."""

    enabled: bool
    timestamp: datetime | None = None
    influx: str = "not written"
    points: dict[str, int] = field(default_factory=dict)  # built, per measurement
    written: dict[str, int] = field(default_factory=dict)  # written to InfluxDB, per measurement
    usage: dict[str, Fields] = field(default_factory=dict)  # every license_usage field, by license_type
    error: str | None = None
    duration_seconds: float = 0.0
    server_license: dict[str, Any] | None = None  # serverLicense as in the status (server_license_status)
    history: str = "not kept"  # the daily snapshots in the audit store (butler.licenses.planning)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "timestamp": iso(self.timestamp),
            "influxDb": self.influx,
            "pointsWritten": dict(self.written),
            "pointsCollected": dict(self.points),
            "licenses": self.usage,
            "serverLicense": self.server_license,
            "error": self.error,
            "durationSeconds": round(self.duration_seconds, 3),
            "history": self.history,
        }


def run_collection(
    config: Config, client: LicenseSource | None, influx: MeasurementWriter | None, *, now: datetime | None = None,
    history: AuditSink | None = None,
) -> CollectionSummary:
    """Collect once. A failed InfluxDB write is reported in ``summary.error`` (the caller fails the run); a QRS
    failure raises. ``influx`` None: InfluxDB disabled, nothing is written. ``history``: the audit store that keeps
    the daily snapshots (a failed write is reported in ``summary.error`` too)."""
    monitoring = config.Butler.licenseMonitoring
    if not monitoring.enable:
        return CollectionSummary(enabled=False, influx="not written (licenseMonitoring.enable: false)")
    if client is None:
        raise ValueError("license monitoring is enabled but no QRS client was given")
    started = time.monotonic()
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    usage = usage_fields(client.access_type_overview())
    groups = {USAGE: usage_points(usage, monitoring.metrics, moment), ACTIVITY: []}
    if "userActivity" in monitoring.metrics:
        groups[ACTIVITY] = activity_points((a for t in LICENSE_TYPES for a in client.allocations(t)), moment)
    server = read_server_license(client, moment.date())
    groups[SERVER] = [Measurement(SERVER, {}, influx_fields(server), moment)]
    summary = CollectionSummary(enabled=True, timestamp=moment, usage=usage, server_license=server,
                                points={name: len(group) for name, group in groups.items()})
    _store(summary, groups, monitoring, influx)
    if history is not None:
        _keep_history(summary, history)
    summary.duration_seconds = time.monotonic() - started
    return summary


def _store(summary: CollectionSummary, groups: dict[str, list[Measurement]], monitoring: LicenseMonitoring,
           influx: MeasurementWriter | None) -> None:
    if not monitoring.storeInInfluxDb:
        summary.influx = "not written (licenseMonitoring.storeInInfluxDb: false)"
    elif influx is None:
        summary.influx = "not written (influxDb.enable: false)"
    else:
        try:
            influx.write([point for group in groups.values() for point in group])
            summary.influx, summary.written = "written", dict(summary.points)
        except MeasurementsNotWritten as exc:
            summary.influx, summary.error = "failed", str(exc)
            summary.written = _first_written(summary.points, exc.written)


def _keep_history(summary: CollectionSummary, history: AuditSink) -> None:
    """The day's snapshot of each type; a failure fails the collection visibly, after InfluxDB had its points."""
    from butler.licenses.planning import keep_snapshots

    if summary.timestamp is None:  # nothing was collected
        return
    try:
        summary.history = f"kept ({keep_snapshots(history, summary.usage, summary.timestamp)} snapshots)"
    except Exception as exc:  # the store's own failure (DynamoDB, a file): the adapter's error, on one line
        summary.history = "failed"
        problem = f"daily snapshots not kept: {' '.join(str(exc).split()) or type(exc).__name__}"
        summary.error = f"{summary.error}; {problem}" if summary.error else problem


def _first_written(counts: dict[str, int], written: int) -> dict[str, int]:
    """Batches go in order, so the first ``written`` points (measurement by measurement) made it."""
    result = {}
    for name, count in counts.items():
        result[name] = min(count, written)
        written -= result[name]
    return result


# --- CloudWatch (EMF) -------------------------------------------------------------------------------------------

# Per license_type (dimension LicenseType): metric name -> license_usage field.
TYPE_METRICS = {"Total": "total", "Allocated": "allocated", "Available": "available",
                "UtilizationPercent": "utilization", "Excess": "excess", "Quarantined": "quarantined"}


def emit_metrics(summary: CollectionSummary, costs: Costs | None = None) -> None:
    """One EMF record per access type (dimensions ``service``, ``LicenseType``), Analyzer Capacity's use in percent,
    ``AllocatedCost`` per type and ``LicenseType=total`` when costs are configured, and ``ServerLicenseDaysLeft``."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    from butler.observability import NAMESPACE, SERVICE

    def record(license_type: str | None, values: dict[str, tuple[float, MetricUnit]]) -> None:
        emf = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        if license_type:
            emf.add_dimension("LicenseType", license_type)
        for name, (value, unit) in values.items():
            emf.add_metric(name=name, unit=unit, value=value)
        emf.flush_metrics()

    for license_type, fields in summary.usage.items():
        if license_type != CAPACITY:
            record(license_type, {name: (float(fields[key]), MetricUnit.Percent if key == "utilization"
                                         else MetricUnit.Count) for name, key in TYPE_METRICS.items()})
    if CAPACITY in summary.usage:
        record(None, {"AnalyzerCapacityUsedPercent": (float(summary.usage[CAPACITY]["utilization"]),
                                                      MetricUnit.Percent)})
    for license_type, cost in allocated_costs(summary.usage, costs).items():
        record(license_type, {"AllocatedCost": (cost, MetricUnit.NoUnit)})
    if summary.server_license is not None:  # dimension service only; see server_license.metric_value
        record(None, {SERVER_METRIC: (metric_value(summary.server_license), MetricUnit.Count)})


def allocated_costs(usage: dict[str, Fields], costs: Costs | None) -> dict[str, float]:
    """Allocated licenses times their monthly price, per type and in total (``{}`` without costs)."""
    if costs is None:
        return {}
    per_type: dict[str, float] = {t: round(float(usage[t]["allocated"]) * getattr(costs, t), 2)
                                  for t in LICENSE_TYPES if t in usage}
    return {**per_type, "total": round(sum(per_type.values()), 2)}
