"""The release executor: the only code that sends a DELETE for an allocation (evaluation and the API share it).

Candidates go in chunks that grow from 1 to ``CHUNK_MAX`` (so a change made while the first releases run is seen
by the next chunk's re-read). For each chunk:
1. audit the intents (no DELETE without a trail: if the audit write fails, the chunk fails);
2. re-read the allocations and their owners by id, a few requests per chunk, and decide again with the fresh
   records (a user who came back, was tagged or moved is not released; gone means already released);
3. DELETE each still-releasable allocation on a bounded pool, each isolated from the others. A DELETE is never
   retried blindly: after an error without a clear answer the allocation is re-read; gone (or newly quarantined
   by Qlik) is a release confirmed by the re-read, still there earns one more DELETE at most, then ``failed``;
4. audit the outcomes (closing the intents) and write the ``license_release`` points to InfluxDB.
An outcome that could not be confirmed (the re-read failed too) leaves its intent open for ``reconcile``.
In a dry run nothing is read or deleted: ``release`` becomes ``would-release``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from butler.licenses.model import (
    AuditSink,
    Decision,
    LicenseSource,
    Measurement,
    MeasurementWriter,
    Record,
    RunContext,
    decision_record,
)
from butler.observability import logger
from butler.qrs.errors import QrsError, QrsHttpError, QrsNotFound
from butler.qrs.models import Allocation, User

Recheck = Callable[[Allocation, User | None], Decision]
CHUNK_MAX = 50  # ids per re-read request (the QRS client's filter limit)
GONE_ON_READ = "already released: the allocation no longer exists (re-read before DELETE)"
GONE_ON_DELETE = "already released: the allocation no longer exists (404 on DELETE)"
LOCK_LOST = "deferred: the run lock was lost (another run may have started); left for the next run"


def utc_now() -> datetime:
    return datetime.now(UTC)


def describe(exc: BaseException) -> str:
    """An error as report text: QRS errors carry method, path, status and QRS's reason; never a secret."""
    text = str(exc) if isinstance(exc, QrsError) else f"{type(exc).__name__}: {exc}"
    return text[:500]


def release_points(decisions: Sequence[Decision], *, dry_run: bool, at: datetime) -> list[Measurement]:
    """``license_release`` points (CONTRACT section 5) for released (or, in a dry run, would-be) allocations."""
    wanted = "would-release" if dry_run else "release"
    return [
        Measurement("license_release",
                   {"license_type": d.license_type, "user_directory": d.user_directory,
                    "user_id": d.qualified_user, "dry_run": "true" if dry_run else "false"},
                   {"days_inactive": float(d.days_inactive or 0.0), "allocation_id": d.allocation.id}, at)
        for d in decisions if d.action == wanted
    ]


def growing_chunks(items: Sequence[int], limit: int = CHUNK_MAX) -> Iterator[Sequence[int]]:
    """1, 2, 4, ... up to ``limit`` items: the first releases see the freshest data, the rest cost few reads."""
    start, size = 0, 1
    while start < len(items):
        yield items[start:start + size]
        start, size = start + size, min(size * 2, limit)


def _refused(error: Exception) -> bool:
    """A 4xx answer: QRS refused the DELETE and did nothing (no re-read needed, no second try)."""
    return isinstance(error, QrsHttpError) and error.status is not None and 400 <= error.status < 500


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    confirmed: bool = True  # False: the allocation's state after our DELETE is unknown; its intent stays open


class ReleaseExecutor:
    def __init__(self, client: LicenseSource, audit: AuditSink, run: RunContext, *, concurrency: int,
                 influx: MeasurementWriter | None = None, log_level: str = "info") -> None:
        self.client, self.audit, self.run, self.influx = client, audit, run, influx
        self.concurrency = max(1, concurrency)
        self.log_level = "warning" if log_level == "warn" else log_level  # auditLog.logLevel
        self.influx_error: str | None = None

    def release(self, decisions: Sequence[Decision], recheck: Recheck) -> list[Decision]:
        """The final decisions, in input order; only those to release change (to ``would-release`` in a dry
        run, which reads and deletes nothing)."""
        results = list(decisions)
        chosen = sorted((i for i, d in enumerate(decisions) if d.action == "release"),
                        key=lambda i: -(decisions[i].days_inactive or 0.0))  # the longest idle go first
        if self.run.mode.dry_run:
            for i in chosen:
                results[i] = self.run.mode.apply(decisions[i])
        elif chosen:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="release") as pool:
                for chunk in growing_chunks(chosen):
                    if not self.run.alive():
                        for i in chosen[chosen.index(chunk[0]):]:
                            results[i] = decisions[i].with_outcome("deferred", LOCK_LOST)
                        break
                    outcomes = self._release_chunk([decisions[i] for i in chunk], recheck, pool)
                    for i, outcome in zip(chunk, outcomes, strict=True):
                        results[i] = outcome
        self._write_events([results[i] for i in chosen])
        return results

    # --- one chunk ---------------------------------------------------------------------------------------------

    def _release_chunk(self, batch: list[Decision], recheck: Recheck, pool: ThreadPoolExecutor) -> list[Decision]:
        intents = [{**record, "open": True} for record in self._records(batch, "release-intent")]
        try:
            self.audit.write_many(intents)
        except Exception as exc:  # no DELETE without a trail
            return self._close(intents, [Outcome(d.with_outcome("failed", f"audit of the intent failed: "
                                                                          f"{describe(exc)}")) for d in batch])
        try:
            fresh = self._reread(batch, recheck)
        except Exception as exc:  # without fresh data nothing is released
            return self._close(intents, [Outcome(d.with_outcome("failed", f"re-read before release failed: "
                                                                          f"{describe(exc)}")) for d in batch])
        return self._close(intents, list(pool.map(self._delete, fresh)))

    def _reread(self, batch: list[Decision], recheck: Recheck) -> list[Decision]:
        """Each decision made again on the allocation and owner as QRS holds them now (a few requests)."""
        current: dict[str, Allocation] = {}
        for license_type in dict.fromkeys(d.license_type for d in batch):
            ids = [d.allocation.id for d in batch if d.license_type == license_type]
            for found in self.client.allocations_by_id(license_type, ids):
                current[found.id] = found.model_copy(update={"licenseType": license_type})
        owner_ids = sorted({a.user.id for a in current.values() if a.user is not None and a.user.id})
        owners = {u.id: u for u in self.client.users_by_id(owner_ids)} if owner_ids else {}
        again = []
        for decision in batch:
            allocation = current.get(decision.allocation.id)
            if allocation is None:
                again.append(decision.with_outcome("skip", GONE_ON_READ))
                continue
            owner = owners.get(allocation.user.id or "") if allocation.user is not None else None
            again.append(recheck(allocation, owner))
        return again

    def _delete(self, decision: Decision) -> Outcome:
        """One DELETE, confirmed by a re-read whenever its answer is not clear; never blindly repeated."""
        if decision.action != "release":
            return Outcome(decision)
        error = self._send_delete(decision)
        if error is None:
            return Outcome(decision)
        if isinstance(error, QrsNotFound):
            return Outcome(decision.with_outcome("skip", GONE_ON_DELETE))
        state = "present" if _refused(error) else self._state_of(decision.allocation)
        if state == "present" and not _refused(error):  # the DELETE did not happen: one more, the last
            second = self._send_delete(decision)
            if second is None or isinstance(second, QrsNotFound):
                return Outcome(decision.with_outcome("release", f"{decision.reason}; released by a second DELETE "
                                                                f"after {describe(error)}"))
            error = second
            state = "present" if _refused(second) else self._state_of(decision.allocation)
        if state in ("gone", "quarantined"):
            return Outcome(decision.with_outcome(
                "release", f"{decision.reason}; confirmed by re-read ({state}) after {describe(error)}"))
        if state == "unknown":
            return Outcome(decision.with_outcome("failed", f"outcome unknown: {describe(error)}"), confirmed=False)
        return Outcome(decision.with_outcome("failed", describe(error)))

    def _send_delete(self, decision: Decision) -> Exception | None:
        try:
            self.client.delete_allocation(decision.license_type, decision.allocation.id)
        except Exception as exc:  # each allocation is isolated; the caller sorts out what the error means
            return exc
        return None

    def _state_of(self, before: Allocation) -> str:
        """``gone``, ``quarantined`` (by Qlik, as the result of our DELETE), ``present`` or ``unknown``."""
        try:
            found = self.client.allocations_by_id(before.licenseType, [before.id])
        except Exception as exc:
            logger.warning("re-read after a failed DELETE failed", extra={"allocationId": before.id,
                                                                          "error": describe(exc)})
            return "unknown"
        if not found:
            return "gone"
        return "quarantined" if found[0].quarantined and not before.quarantined else "present"

    # --- records -----------------------------------------------------------------------------------------------

    def _close(self, intents: list[Record], outcomes: list[Outcome]) -> list[Decision]:
        """Audit the outcomes; a confirmed one also closes its intent (the same record, no longer open). A lost
        audit write is logged loudly: the release stays as it is, and the next run's reconcile completes it."""
        records = self._records([o.decision for o in outcomes], "release-outcome")
        for record, outcome in zip(records, outcomes, strict=True):
            if not outcome.confirmed:
                record["unconfirmed"] = True
        records += [{**intent, "open": False} for intent, o in zip(intents, outcomes, strict=True) if o.confirmed]
        try:
            self.audit.write_many(records)
        except Exception as exc:
            logger.error("audit of release outcomes failed", extra={
                "runId": self.run.run_id, "error": describe(exc), "allocations": [i["allocationId"] for i in intents]})
        for outcome in outcomes:
            self._log(outcome.decision)
        return [o.decision for o in outcomes]

    def _records(self, decisions: Sequence[Decision], kind: str) -> list[Record]:
        run, at = self.run, self.run.clock()
        return [decision_record(d, kind, run_id=run.run_id, actor=run.actor, at=at, dry_run=run.mode.dry_run)
                for d in decisions]

    def _log(self, outcome: Decision) -> None:
        fields = {"runId": self.run.run_id, "allocationId": outcome.allocation.id, "licenseType": outcome.license_type,
                  "user": outcome.qualified_user, "action": outcome.action,
                  "reason": outcome.reason}
        if outcome.action == "failed":
            logger.warning("license release failed", extra=fields)
        else:
            getattr(logger, self.log_level)("license release", extra=fields)

    def _write_events(self, outcomes: Sequence[Decision]) -> None:
        if self.influx is None:
            return
        points = release_points(outcomes, dry_run=self.run.mode.dry_run, at=self.run.clock())
        if not points:
            return
        try:
            self.influx.write(points)
        except Exception as exc:  # the releases are done and audited; the events are for dashboards
            # Only the type: an HTTP error from InfluxDB 1.x may quote a URL holding its credentials.
            self.influx_error = f"writing license_release events to InfluxDB failed ({type(exc).__name__})"
            logger.error(self.influx_error)
