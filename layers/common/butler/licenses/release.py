"""The release executor: the only code that sends a DELETE for an allocation (evaluation and the API share it).

For each decision to ``release``, on a bounded thread pool, each allocation isolated from the others:
1. audit the intent (no DELETE without a trail: if the audit write fails, the release fails);
2. re-read the allocation by id (404: already released, recorded as ``skip``) and decide again with ``recheck``
   (the user may have come back since the inventory); only a fresh ``release`` goes on;
3. DELETE (404: already released, ``skip``); any error makes the decision ``failed`` with the error text;
4. audit the outcome, send the SNS notice, and write the ``license_release`` points to InfluxDB (when enabled).
In a dry run nothing is read or deleted: ``release`` becomes ``would-release`` and only InfluxDB events (tagged
``dry_run=true``) are written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from butler.licenses.policy import Decision
from butler.observability import logger
from butler.qrs import QrsClient, QrsError, QrsNotFound
from butler.qrs.models import Allocation, User

if TYPE_CHECKING:
    from influxdb_client.client.write.point import Point

    from butler.sinks.audit import AuditSink
    from butler.sinks.notify import Notifier

Recheck = Callable[[Allocation, User | None], Decision]
GONE_ON_READ = "already released: the allocation no longer exists (404 on re-read)"
GONE_ON_DELETE = "already released: the allocation no longer exists (404 on DELETE)"


def utc_now() -> datetime:
    return datetime.now(UTC)


def describe(exc: BaseException) -> str:
    """An error as report text: QRS errors carry method, path, status and QRS's reason; never a secret."""
    text = str(exc) if isinstance(exc, QrsError) else f"{type(exc).__name__}: {exc}"
    return text[:500]


def release_points(decisions: Sequence[Decision], *, dry_run: bool, at: datetime) -> list[Point]:
    """``license_release`` points (CONTRACT section 5) for released (or, in a dry run, would-be) allocations."""
    from butler.sinks.influx import make_point

    wanted = "would-release" if dry_run else "release"
    return [
        make_point("license_release",
                   {"license_type": d.license_type, "user_directory": d.user_directory,
                    "user_id": f"{d.user_directory}\\{d.user_id}", "dry_run": "true" if dry_run else "false"},
                   {"days_inactive": float(d.days_inactive or 0.0), "allocation_id": d.allocation.id}, at)
        for d in decisions if d.action == wanted
    ]


class ReleaseExecutor:
    def __init__(
        self, client: QrsClient, audit: AuditSink, notifier: Notifier | None, *, actor: str, run_id: str,
        concurrency: int, dry_run: bool, clock: Callable[[], datetime] = utc_now, influx: Any = None,
        log_level: str = "info",
    ) -> None:
        self.client, self.audit, self.notifier, self.influx = client, audit, notifier, influx
        self.actor, self.run_id, self.dry_run, self.clock = actor, run_id, dry_run, clock
        self.concurrency = max(1, concurrency)
        self.log_level = "warning" if log_level == "warn" else log_level  # auditLog.logLevel

    def release(self, decisions: Sequence[Decision], recheck: Recheck) -> list[Decision]:
        """The final decisions, in input order; only those to release change."""
        results = list(decisions)
        wanted = ("release", "would-release") if self.dry_run else ("release",)
        chosen = [i for i, d in enumerate(decisions) if d.action in wanted]
        if self.dry_run:
            for i in chosen:
                results[i] = decisions[i].with_outcome("would-release")
        elif chosen:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="release") as pool:
                outcomes = pool.map(lambda i: self._release_one(decisions[i], recheck), chosen)
                for i, outcome in zip(chosen, outcomes, strict=True):
                    results[i] = outcome
        self._write_events([results[i] for i in chosen])
        return results

    def _release_one(self, decision: Decision, recheck: Recheck) -> Decision:
        try:
            self._audit(decision, "release-intent")
            outcome = self._attempt(decision, recheck)
        except Exception as exc:  # each allocation is isolated: record the failure, the others go on
            outcome = decision.with_outcome("failed", describe(exc))
        try:
            self._audit(outcome, "release-outcome")
        except Exception as exc:
            logger.error("audit of a release outcome failed", extra={"allocationId": decision.allocation.id,
                                                                     "error": describe(exc)})
        self._log(outcome)
        if outcome.action == "release":
            self._notify(outcome)
        return outcome

    def _attempt(self, decision: Decision, recheck: Recheck) -> Decision:
        license_type, allocation_id = decision.license_type, decision.allocation.id
        try:
            fresh = self.client.allocation(license_type, allocation_id)
        except QrsNotFound:
            return decision.with_outcome("skip", GONE_ON_READ)
        again = recheck(fresh, decision.user)
        if again.action != "release":
            return again
        try:
            self.client.delete_allocation(license_type, allocation_id)
        except QrsNotFound:
            return again.with_outcome("skip", GONE_ON_DELETE)
        return again

    def _audit(self, decision: Decision, kind: str) -> None:
        from butler.sinks.audit import decision_record

        self.audit.write(decision_record(decision, kind, run_id=self.run_id, actor=self.actor, at=self.clock(),
                                         dry_run=self.dry_run))

    def _log(self, outcome: Decision) -> None:
        fields = {"runId": self.run_id, "allocationId": outcome.allocation.id, "licenseType": outcome.license_type,
                  "user": f"{outcome.user_directory}\\{outcome.user_id}", "action": outcome.action,
                  "reason": outcome.reason}
        if outcome.action == "failed":
            logger.warning("license release failed", extra=fields)
        else:
            getattr(logger, self.log_level)("license release", extra=fields)

    def _notify(self, outcome: Decision) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.release_notice(outcome, run_id=self.run_id, actor=self.actor)
        except Exception as exc:  # the release happened; a lost notice must not turn it into a failure
            logger.error("release notice failed", extra={"allocationId": outcome.allocation.id,
                                                         "error": describe(exc)})

    def _write_events(self, outcomes: Sequence[Decision]) -> None:
        if self.influx is None:
            return
        points = release_points(outcomes, dry_run=self.dry_run, at=self.clock())
        if not points:
            return
        try:
            self.influx.write(points)
        except Exception as exc:  # the releases are done and audited; the events are for dashboards
            # Only the type: an HTTP error from InfluxDB 1.x may quote a URL holding its credentials.
            logger.error("writing license_release events to InfluxDB failed", extra={"error": type(exc).__name__})
