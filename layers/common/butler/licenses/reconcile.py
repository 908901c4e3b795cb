"""Completing what a crashed run left behind: release intents without an outcome, and runs still ``running``.

Each open intent's allocation is re-read (a few requests for all of them): gone, or quarantined by Qlik, means
our DELETE was carried out (outcome ``release``, reconciled); still allocated means it was not (``failed``,
interrupted). An intent whose allocation cannot be read now stays open for the next run. Nothing is deleted here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from butler.licenses.model import AuditTrail, LicenseSource, Record, iso
from butler.observability import logger
from butler.qrs.models import Allocation, LicenseType, is_guid

API_LEFTOVER_AGE = timedelta(minutes=15)  # an API release (not under the run lock) is surely over by then


def stale(record: Record, now: datetime, *, holding_run_lock: bool, own_run: str | None) -> bool:
    """Whether a leftover belongs to a run that can no longer be alive. Under the site's run lock no other
    evaluation runs, so its leftovers are stale at once; an API release's only after ``API_LEFTOVER_AGE``."""
    if record.get("runId") == own_run:
        return False
    at = str(record.get("at") or record.get("startedAt") or "")
    old = at < (iso(now - API_LEFTOVER_AGE) or "")
    return old or (holding_run_lock and not str(record.get("runId", "")).startswith("api-"))


def reconcile(audit: AuditTrail, client: LicenseSource, *, now: datetime, actor: str, holding_run_lock: bool,
              own_run: str | None = None) -> dict[str, int]:
    """Close stale open intents and runs; returns the counts (``released``, ``failed``, ``open``, ``runs``)."""
    def is_stale(record: Record) -> bool:
        return stale(record, now, holding_run_lock=holding_run_lock, own_run=own_run)

    intents = [r for r in audit.open_intents() if is_stale(r)]
    counts = {"released": 0, "failed": 0, "open": 0, "runs": 0}
    if intents:
        _close_intents(audit, client, intents, now, actor, counts)
    for run in (r for r in audit.open_runs() if is_stale(r)):
        audit.write({**run, "status": "interrupted", "finishedAt": run.get("finishedAt") or iso(now),
                     "error": "the run ended without closing its record (crash or time-out); completed by "
                              f"{actor} at {iso(now)}"})
        counts["runs"] += 1
    if any(counts.values()):
        logger.warning("completed leftovers of interrupted runs", extra=counts)
    return counts


def _close_intents(audit: AuditTrail, client: LicenseSource, intents: list[Record], now: datetime, actor: str,
                   counts: dict[str, int]) -> None:
    current = _reread(client, intents)
    records: list[Record] = []
    for intent in intents:
        state = current.get(intent["allocationId"], "unknown")
        if state == "unknown":
            counts["open"] += 1
            continue
        done = state in ("gone", "quarantined")
        counts["released" if done else "failed"] += 1
        reason = (f"reconciled: our DELETE was carried out ({state} on re-read at {iso(now)})" if done
                  else "interrupted: the run ended before the DELETE; the allocation is still there")
        records.append({**intent, "kind": "release-outcome", "at": iso(now), "action": "release" if done else "failed",
                        "reason": f"{intent.get('reason')}; {reason}", "reconciledBy": actor})
        records.append({**intent, "open": False})
    audit.write_many(records)


def _reread(client: LicenseSource, intents: list[Record]) -> dict[str, str]:
    """allocationId -> gone | quarantined | present; absent when it could not be read."""
    states: dict[str, str] = {}
    by_type: dict[LicenseType, list[str]] = {}
    for intent in intents:
        if is_guid(intent.get("allocationId")) and intent.get("licenseType") in ("professional", "analyzer"):
            by_type.setdefault(intent["licenseType"], []).append(intent["allocationId"])
    for license_type, ids in by_type.items():
        try:
            found: dict[str, Allocation] = {a.id: a for a in client.allocations_by_id(license_type, ids)}
        except Exception as exc:  # leave them open: the next run tries again
            logger.warning("re-read of interrupted releases failed", extra={"error": f"{type(exc).__name__}"})
            continue
        for allocation_id in ids:
            allocation = found.get(allocation_id)
            states[allocation_id] = ("gone" if allocation is None
                                     else "quarantined" if allocation.quarantined else "present")
    return states


