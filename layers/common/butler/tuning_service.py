"""The tuning loop's use cases with their adapters: what the CLI (``what-if``, ``returns``, ``evaluate --only``,
``report``) and the API (``/v4/licenses/candidates``, ``what-if``, ``returns``, ``report``) call.

Each builds a QRS client for bulk reads (users in pages of ``TUNING_PAGE_SIZE``, so a 100,000-user site is read in
one page: 3 requests whatever the thresholds) and the audit store of ``butler.wiring``, calls the pure core
(``butler.licenses.tuning``) and closes the client. Nothing here writes to QRS or to the audit store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from butler.config import LICENSE_TYPES, Config
from butler.licenses import tuning
from butler.licenses.evaluate import EvaluationReport, run_evaluation, throttle
from butler.licenses.forecast import monthly_cost, monthly_savings
from butler.licenses.model import AuditTrail, Decision, RunMode
from butler.licenses.release import utc_now
from butler.licenses.status import license_status
from butler.qrs.models import LicenseType
from butler.report import Candidate, MonthRow, ReportData, Savings, SweepRow, TypeUsage, render

if TYPE_CHECKING:
    from butler.qrs import QrsClient

TUNING_PAGE_SIZE = 200_000  # one /user/table page up to 200,000 users (a full page costs a count and one more)
REPORT_MONTHS = 12
SHOWN_ACTIONS = ("would-release", "protected", "deferred", "notice-pending", "would-warn")


@contextmanager
def bulk_client(config: Config) -> Iterator[QrsClient]:
    from butler.wiring import qrs_client

    client = qrs_client(config)
    client.page_size = max(client.page_size, TUNING_PAGE_SIZE)
    try:
        yield client
    finally:
        client.close()


def _audit(config: Config, audit_file: str | None) -> Any:
    from butler.wiring import audit_sink

    return audit_sink(config, audit_file)


def candidates(config: Config, audit_file: str | None, now: datetime | None = None) -> EvaluationReport:
    """The report of a dry run made now by the evaluation's own code, its audit store read (holds, history) but
    never written; no notice is sent."""
    with bulk_client(config) as client:
        audit = cast(AuditTrail, tuning.ReadOnlyAudit(_audit(config, audit_file)))
        return run_evaluation(config, client, audit=audit, notifier=None, influx=None, dry_run=True, now=now,
                              actor="candidates")


def what_if(config: Config, thresholds: Mapping[LicenseType, float] | None, *, sweep: bool = False,
            now: datetime | None = None) -> dict[str, Any]:
    """The what-if of ``thresholds`` (the configured one for a type not named), or the sweep."""
    at = now or utc_now()
    asked = list((thresholds or {}).values()) + ([min(tuning.SWEEP_DAYS)] if sweep else [])
    with bulk_client(config) as client:
        site = tuning.read_site(config, client, min(asked, default=float("inf")), at)
    return tuning.sweep_json(site) if sweep else tuning.what_if_json(site, thresholds or {})


def returns(config: Config, days: float, audit_file: str | None, now: datetime | None = None) -> dict[str, Any]:
    audit = _audit(config, audit_file)
    with bulk_client(config) as client:
        return tuning.read_returns(client, audit, days, now or utc_now())


# --- the HTML report -------------------------------------------------------------------------------------------


def report_html(config: Config, audit_file: str | None, now: datetime | None = None) -> str:
    return render(report_data(config, audit_file, now))


def report_data(config: Config, audit_file: str | None, now: datetime | None = None) -> ReportData:
    """Everything from one inventory (the sweep's, users past 14 days), the access type overview and one audit
    query: the next run's candidates (the policy and the throttles of the configuration; holds and notices are
    the evaluation's), protections, releases and returns per month, savings, the sweep and the recommendation."""
    at = now or utc_now()
    management = config.Butler.licenseManagement
    audit = _audit(config, audit_file)
    with bulk_client(config) as client:
        status = license_status(client.access_type_overview())
        site = tuning.read_site(config, client, min(tuning.SWEEP_DAYS), at)
    planned = _next_run(site, management)
    history = audit.releases_between(at - timedelta(days=tuning.HISTORY_DAYS), at)
    allocations = site.inventory.allocations
    recent = tuning.returns([r for r in history if str(r.get("at", "")) >= (_iso(at - timedelta(days=30)))],
                            allocations)
    advice = tuning.recommendation_json(tuning.returns(history, allocations), site.rules)
    since = _iso(at - timedelta(days=31 * REPORT_MONTHS))
    return ReportData(
        site=f"{config.Butler.qrs.host}:{config.Butler.qrs.port}",
        generated_at=at,
        dry_run_note=_dry_run_note(config),
        utilization=[TypeUsage(t, getattr(status, t).total, getattr(status, t).allocated,
                               getattr(status, t).available, getattr(status, t).utilization) for t in LICENSE_TYPES],
        monthly=[MonthRow(*row) for row in tuning.monthly_returns(
            [r for r in history if str(r.get("at", "")) >= since], allocations)],
        savings=_savings(config, {t: getattr(status, t).allocated for t in LICENSE_TYPES},
                         {t: recent[t].released for t in LICENSE_TYPES}),
        candidates=[_candidate(d) for d in tuning.select(planned) if d.action in SHOWN_ACTIONS],
        protections=tuning.protected_by_rule(planned),
        sweep=[SweepRow(days, t, row[t].would_release, row[t].protected, row[t].share_freed_percent,
                        row[t].monthly_saving)
               for days, row in zip(tuning.SWEEP_DAYS, tuning.sweep(site), strict=True) for t in LICENSE_TYPES],
        return_rate={t: recent[t].return_rate for t in LICENSE_TYPES},
        recommendation={t: advice[t]["inactivityDays"] for t in LICENSE_TYPES},
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _next_run(site: tuning.Site, management: Any) -> list[Decision]:
    decisions = tuning.decisions_at(site, site.rules)
    counts = {t: site.inventory.count(t) for t in LICENSE_TYPES}
    mode = RunMode(True)
    return [mode.apply(d) for d in throttle(decisions, counts, management)]


def _candidate(decision: Decision) -> Candidate:
    name = tuning.user_name(decision)
    user = decision.qualified_user + (f" ({name})" if name else "")
    return Candidate(user, decision.license_type, decision.days_inactive, decision.allocation.lastUsed is None,
                     decision.action, decision.reason)


def _savings(config: Config, allocated: dict[str, int], released: dict[str, int]) -> Savings | None:
    costs = config.Butler.licenseMonitoring.costs
    if costs is None:
        return None
    prices = costs.model_dump()
    cost, saved = monthly_cost(allocated, prices)["byType"], monthly_savings(released, prices)["byType"]
    return Savings({t: cost[t]["cost"] for t in cost}, {t: saved[t]["savings"] for t in saved})


def _dry_run_note(config: Config) -> str | None:
    management = config.Butler.licenseManagement
    if not management.enable:
        return "License management is disabled (licenseManagement.enable: false): nothing is released."
    if management.dryRun:
        return "Dry run (licenseManagement.dryRun: true): the scheduled evaluation releases nothing."
    return None
