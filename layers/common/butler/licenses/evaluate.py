"""One evaluation run: leftovers -> inventory -> decisions -> throttles and breaker -> release -> report.

Shared by the Lambda handler (``functions/evaluate``), ``python -m butler evaluate`` and the demo; the adapters
(QRS client, audit sink, notifier, InfluxDB writer) are built by ``butler.wiring`` and passed in.

Throttles: a run releases at most ``licenseManagement.maxReleasesPerRun`` allocations and at most
``maxReleasePercent`` of one type's allocations, the longest idle first; the other candidates are ``deferred`` to
later runs. Breaker: when one type's candidates exceed ``abortAbovePercent`` of its allocations the data looks
wrong (say, a QRS upgrade that reset lastUsed): a live run releases nothing (``aborted``; the CLI exits 3), a dry
run completes with ``capExceeded``.

Metrics (CloudWatch EMF, namespace ``QlikLicenseButler``), published by the Lambda handler only
(``publish_metrics``): ``Released``, ``WouldRelease``, ``Protected``, ``Deferred``, ``FailedReleases`` and
``EvaluationAborted``, once per license type (dimension ``LicenseType``) and once for the whole run.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from butler.config import LICENSE_TYPES, Config, LicenseManagement
from butler.licenses.model import (
    Action,
    AuditTrail,
    Decision,
    LicenseSource,
    MeasurementWriter,
    Notifier,
    RunContext,
    RunMode,
    UserNotices,
    decision_record,
    iso,
)
from butler.licenses.notice_run import NoticeRun
from butler.licenses.policy import Rules, decide
from butler.licenses.reconcile import reconcile
from butler.licenses.redundant import evaluation_inventory, fresh_recheck
from butler.licenses.release import ReleaseExecutor, describe, utc_now
from butler.licenses.tuning import evidence, evidence_line, protected_by_rule, user_name
from butler.observability import NAMESPACE, SERVICE, logger
from butler.qrs.models import LicenseType

SUMMARY_KEYS: dict[Action, str] = {"release": "released", "would-release": "wouldRelease", "protected": "protected",
                                "keep": "keep", "skip": "skip", "failed": "failed", "deferred": "deferred",
                                "warn": "warned", "would-warn": "wouldWarn", "notice-pending": "noticePending"}
METRIC_NAMES: dict[Action, str] = {"release": "Released", "would-release": "WouldRelease", "protected": "Protected",
                                "failed": "FailedReleases", "deferred": "Deferred"}
CANDIDATE_ACTIONS = ("release", "would-release")
RETURN_RATE_METRIC = "ReturnRate"  # percent of last month's released users of a type who came back (tuning)


@dataclass
class EvaluationReport:
    run_id: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    decisions: list[Decision] = field(default_factory=list)
    enabled: bool = True
    cap_exceeded: bool = False
    cap_reason: str | None = None
    abort_reason: str | None = None
    influx_error: str | None = None
    reconciled: dict[str, int] = field(default_factory=dict)
    notice_note: str | None = None  # warnings the administrators must pass on (the digest's note)
    evidence: dict[str, Any] = field(default_factory=dict)  # last month's returns, the recommendation (tuning)

    @property
    def aborted(self) -> bool:
        return self.abort_reason is not None

    @property
    def failed(self) -> int:
        """Releases of this run that failed: the scheduler must see them (exit 1, a failed invocation)."""
        return sum(1 for d in self.decisions if d.action == "failed")

    def summary(self, license_type: LicenseType | None = None) -> dict[str, int]:
        chosen = [d for d in self.decisions if license_type in (None, d.license_type)]
        counts = Counter(d.action for d in chosen)
        return {"evaluated": len(chosen), **{key: counts[action] for action, key in SUMMARY_KEYS.items()}}

    def to_json(self, *, decisions: bool = True) -> dict[str, Any]:
        """The evaluation report of CONTRACT section 3 (``decisions=False`` leaves out the per-allocation list)."""
        report: dict[str, Any] = {
            "runId": self.run_id, "dryRun": self.dry_run, "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at), "enabled": self.enabled, "summary": self.summary(),
            "capExceeded": self.cap_exceeded,
        }
        if self.cap_reason:
            report["capReason"] = self.cap_reason
        if self.abort_reason:
            report["aborted"] = self.abort_reason
        if self.influx_error:
            report["influxError"] = self.influx_error
        report["protectedByRule"] = protected_by_rule(self.decisions)
        report.update(self.evidence)
        if any(self.reconciled.values()):
            report["reconciled"] = self.reconciled
        if decisions:
            report["decisions"] = [d.to_report() for d in self.decisions]
        return report


def new_run_id(started: datetime) -> str:
    """Sortable by start time, unique across concurrent callers (the API's releases have run ids too)."""
    return f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def config_hash(management: LicenseManagement) -> str:
    """Which policy was in force: a hash of the licenseManagement section (it holds no secret)."""
    return hashlib.sha256(management.model_dump_json().encode()).hexdigest()[:16]


def breaker(decisions: Sequence[Decision], allocations: dict[LicenseType, int],
            management: LicenseManagement) -> str | None:
    """Why the candidates look like bad data (more than ``abortAbovePercent`` of one type), or None."""
    candidates = Counter(d.license_type for d in decisions if d.action in CANDIDATE_ACTIONS)
    limit = management.abortAbovePercent
    problems = []
    for license_type in LICENSE_TYPES:
        count, of = candidates[license_type], allocations.get(license_type, 0)
        if count and count > of * limit / 100:
            problems.append(f"{count} of {of} {license_type} allocations ({100 * count / of:.1f}%) are candidates, "
                            f"more than licenseManagement.abortAbovePercent {limit:g}%")
    return "; ".join(problems) or None


def throttle(decisions: Sequence[Decision], allocations: dict[LicenseType, int],
             management: LicenseManagement) -> list[Decision]:
    """The decisions with the candidates beyond the throttles ``deferred``; the longest idle go first."""
    per_type = {t: int(allocations.get(t, 0) * management.maxReleasePercent / 100) for t in LICENSE_TYPES}
    taken: Counter[str] = Counter()
    candidates = sorted((i for i, d in enumerate(decisions) if d.action in CANDIDATE_ACTIONS),
                        key=lambda i: -(decisions[i].days_inactive or 0.0))
    result = list(decisions)
    for i in candidates:
        decision = decisions[i]
        if sum(taken.values()) >= management.maxReleasesPerRun:
            result[i] = decision.with_outcome(
                "deferred", f"deferred: licenseManagement.maxReleasesPerRun {management.maxReleasesPerRun} reached "
                            "(longest idle first)")
        elif taken[decision.license_type] >= per_type[decision.license_type]:
            result[i] = decision.with_outcome(
                "deferred", f"deferred: licenseManagement.maxReleasePercent {management.maxReleasePercent:g}% of "
                            f"{allocations.get(decision.license_type, 0)} {decision.license_type} allocations "
                            f"({per_type[decision.license_type]}) reached (longest idle first)")
        else:
            taken[decision.license_type] += 1
    return result


def run_record(report: EvaluationReport, *, actor: str, management: LicenseManagement, status: str,
               error: str | None = None) -> dict[str, Any]:
    return {
        "kind": "run", "runId": report.run_id, "actor": actor, "dryRun": report.dry_run,
        "startedAt": iso(report.started_at), "finishedAt": iso(report.finished_at), "status": status,
        "configHash": config_hash(management), "summary": report.summary(), "capExceeded": report.cap_exceeded,
        "aborted": report.abort_reason, "error": error,
    }


def run_evaluation(
    config: Config, client: LicenseSource, *, audit: AuditTrail, notifier: Notifier | None,
    influx: MeasurementWriter | None, dry_run: bool | None = None, now: datetime | None = None,
    actor: str = "scheduler", alive: Callable[[], bool] = lambda: True, mail: UserNotices | None = None,
) -> EvaluationReport:
    """One evaluation. ``dry_run`` None follows the configuration (see ``RunMode.resolve``); ``now`` fixes the clock
    (tests); ``alive`` says whether the run lock is still ours."""
    management = config.Butler.licenseManagement
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utc_now
    started = clock()
    mode = RunMode.resolve(enabled=management.enable, configured_dry_run=management.dryRun, forced_dry_run=dry_run)
    run = RunContext(new_run_id(started), actor, mode, clock, alive)
    report = EvaluationReport(run.run_id, mode.dry_run, started, enabled=management.enable)
    if not management.enable:
        logger.info("license management is disabled (licenseManagement.enable: false): dry run only")
    audit.write(run_record(report, actor=actor, management=management, status="running"))
    try:
        report.reconciled = reconcile(audit, client, now=started, actor=actor, holding_run_lock=True,
                                      own_run=run.run_id)
        outcome = _evaluate(client, management, audit, influx, run, mail, digest=notifier is not None)
    except Exception as exc:  # the run record must not stay "running" when the cause is known
        report.finished_at = clock()
        try:
            audit.write(run_record(report, actor=actor, management=management, status="failed", error=describe(exc)))
        except Exception:  # the audit store may be the cause; the original error is the one to raise
            logger.exception("could not record the failed run")
        raise
    report = replace(report, finished_at=clock(), decisions=outcome.decisions, cap_reason=outcome.cap_reason,
                     cap_exceeded=outcome.cap_reason is not None, abort_reason=outcome.abort_reason,
                     influx_error=outcome.influx_error, evidence=outcome.evidence,
                     notice_note=outcome.notice_note)
    audit.write(run_record(report, actor=actor, management=management,
                           status="aborted" if report.aborted else "finished"))
    _send_digest(notifier, report, actor)
    logger.info("license evaluation finished", extra={"runId": report.run_id, "dryRun": report.dry_run,
                                                      "summary": report.summary(), "aborted": report.abort_reason})
    return report


class _Outcome(NamedTuple):
    decisions: list[Decision]
    cap_reason: str | None = None
    abort_reason: str | None = None
    influx_error: str | None = None
    evidence: dict[str, Any] = {}  # noqa: RUF012 (never mutated)
    notice_note: str | None = None


def _evaluate(source: LicenseSource, management: LicenseManagement, audit: AuditTrail,
              influx: MeasurementWriter | None, run: RunContext, mail: UserNotices | None = None, *,
              digest: bool = False) -> _Outcome:
    """Inventory, decisions, breaker and throttles, then the executor; returns what happened."""
    rules, at = Rules.from_config(management), run.clock()
    notices = NoticeRun.start(management, rules, audit)  # holds and warnings: one query each
    # holders: for releaseRedundant
    inventory, holders = evaluation_inventory(source, rules, at, with_email=notices.with_email)
    decisions = [notices.finish(decide(allocation, user, rules, at, holders), at)
                 for allocation, user in inventory.pairs()]
    counts = {t: inventory.count(t) for t in LICENSE_TYPES}
    tripped = breaker(decisions, counts, management)
    if tripped and not run.mode.dry_run:
        aborted = f"breaker: {tripped}; nothing was released"
        logger.error("license evaluation aborted", extra={"runId": run.run_id, "reason": aborted})
        decisions = [d.with_outcome("deferred", f"{d.reason}; not released: {aborted}") if d.action == "release"
                     else d for d in decisions]
        outcome = _Outcome(decisions, tripped, aborted)
    else:
        executor = ReleaseExecutor(source, audit, run, concurrency=management.concurrency, influx=influx,
                                   log_level=management.auditLog.logLevel)
        decisions = executor.release(throttle(decisions, counts, management),
                                     notices.recheck(fresh_recheck(source, rules, holders, run.clock), run.clock))
        outcome = _Outcome(decisions, tripped, None, executor.influx_error)
    told, note = notices.send(outcome.decisions, mail=mail, audit=audit, run=run, digest=digest)
    outcome = outcome._replace(decisions=told, notice_note=note)
    if management.auditLog.enable:
        _audit_decisions(outcome.decisions, audit, run)
    return outcome._replace(evidence=_evidence(audit, inventory.allocations, rules, at))


def _evidence(audit: AuditTrail, allocations: Any, rules: Rules, at: datetime) -> dict[str, Any]:
    """Last month's returns and the recommendation; the run's outcome never depends on them."""
    try:
        return evidence(audit, allocations, rules, at)
    except Exception as exc:
        logger.warning("returns could not be computed", extra={"error": describe(exc)})
        return {}


def _send_digest(notifier: Notifier | None, report: EvaluationReport, actor: str) -> None:
    """One notice per run for the administrators (not one per release), when something was or failed."""
    if notifier is None:
        return
    try:
        released = any(d.action in ("release", "failed") for d in report.decisions)  # a digest goes out anyway
        notes = [report.abort_reason, evidence_line(report.evidence) if released else None, report.notice_note]
        notifier.run_digest(report.run_id, report.decisions, actor=actor, dry_run=report.dry_run,
                            note="; ".join(n for n in notes if n) or None)
    except Exception as exc:  # the releases happened; a lost digest must not fail the run
        logger.error("run digest notice failed", extra={"runId": report.run_id, "error": describe(exc)})


def _audit_decisions(decisions: Sequence[Decision], audit: AuditTrail, run: RunContext) -> None:
    """One record per decision other than ``keep`` (those are only counted, in the run record); the log gets
    them at debug level only (the releases themselves are logged at ``auditLog.logLevel``)."""
    at, dry = run.clock(), run.mode.dry_run
    records = [decision_record(d, "decision", run_id=run.run_id, actor=run.actor, at=at, dry_run=dry)
               for d in decisions if d.action != "keep"]
    for record in records:
        logger.debug("license decision", extra={k: v for k, v in record.items() if k != "userName"})
    audit.write_many(records)


def metric_values(report: EvaluationReport) -> dict[LicenseType | None, dict[str, int]]:
    """The EMF metrics of a run, per license type and (key None) for the whole run."""
    values: dict[LicenseType | None, dict[str, int]] = {}
    for license_type in (*LICENSE_TYPES, None):
        counts = Counter(d.action for d in report.decisions if license_type in (None, d.license_type))
        values[license_type] = {name: counts[action] for action, name in METRIC_NAMES.items()}
        values[license_type]["EvaluationAborted"] = int(report.aborted)
    return values


def publish_metrics(report: EvaluationReport) -> None:
    """Print the run's EMF metrics (Lambda only: on the command line they would pollute the output)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    for license_type, values in metric_values(report).items():
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        if license_type is not None:
            metrics.add_dimension(name="LicenseType", value=license_type)
        for name, value in values.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        rate = return_rate(report, license_type)
        if rate is not None:  # the template alarms above ReturnRateAlarmPercent: thresholds too aggressive
            metrics.add_metric(name=RETURN_RATE_METRIC, unit=MetricUnit.Percent, value=rate)
        metrics.flush_metrics()


def return_rate(report: EvaluationReport, license_type: LicenseType | None) -> float | None:
    """Percent of last month's releases of the type whose user came back; None when none was released."""
    part = report.evidence.get("returns", {}).get(license_type or "total") or {}
    rate = part.get("returnRate")
    return None if rate is None else float(rate)


def format_table(report: EvaluationReport, rows: Sequence[Decision] | None = None) -> str:
    """The readable report of ``butler evaluate``: one line per allocation (``rows``: those chosen, e.g. by
    ``--only``), then the totals of the whole run and the protected allocations per rule."""
    table = [("USER", "NAME", "TYPE", "DAYS INACTIVE", "ACTION", "REASON")]
    table += [(d.qualified_user, user_name(d) or "-", d.license_type,
               "-" if d.days_inactive is None else f"{d.days_inactive:.1f}", d.action, d.reason)
              for d in (report.decisions if rows is None else rows)]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)), row[5]]).rstrip()
             for row in table]
    summary = report.summary()
    lines += ["", "Totals: " + ", ".join(f"{key} {value}" for key, value in summary.items())]
    by_rule = protected_by_rule(report.decisions)
    if by_rule:
        lines.append("Protected by rule: " + ", ".join(f"{rule} {n}" for rule, n in by_rule.items()))
    lines.append(_status_line(report))
    return "\n".join(lines)


def _status_line(report: EvaluationReport) -> str:
    if not report.enabled:
        return "License management is disabled (licenseManagement.enable: false): dry run only, nothing was released."
    if report.aborted:
        return f"ABORTED by the {report.abort_reason}."
    deferred = report.summary()["deferred"]
    later = f" {deferred} deferred by the throttles to later runs." if deferred else ""
    if report.dry_run:
        cap = f" The breaker would have stopped a live run: {report.cap_reason}." if report.cap_exceeded else ""
        return f"Dry run: nothing was released.{later}{cap}"
    failed = f" {report.failed} release(s) FAILED." if report.failed else ""
    return f"Run {report.run_id}: {report.summary()['released']} allocation(s) released.{later}{failed}"
