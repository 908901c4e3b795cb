"""What the /v4 routes do, free of HTTP: live status, one user's license picture, and a release on request.

Reads are bulk-shaped even for one user: one ``/user/full`` lookup and one ``/full`` allocation read per license
type filtered on ``user.id``. Decisions come from the same policy code as the scheduled evaluation, and releases go
through the same executor (re-read before DELETE, audit intent and outcome, SNS notice).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from butler.api.errors import BadGateway, Conflict, NotFound
from butler.api.identity import UserRef
from butler.config import LICENSE_TYPES, LicenseManagement
from butler.licenses import policy
from butler.licenses.policy import Decision, Rules, iso
from butler.licenses.status import license_status
from butler.qrs import filters
from butler.qrs.models import AccessTypeOverview, Allocation, LicenseType, User

GRACE_RULE = "quarantine.gracePeriod"


class LicenseReads(Protocol):
    """The QRS reads the API needs (``butler.qrs.QrsClient`` in production)."""

    def access_type_overview(self) -> AccessTypeOverview: ...

    def find_users(self, qrs_filter: str) -> list[User]: ...

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]: ...

    def allocation(self, license_type: LicenseType, allocation_id: str) -> Allocation: ...

    def delete_allocation(self, license_type: LicenseType, allocation_id: str) -> None: ...


class Releaser(Protocol):
    """A release on request: the scheduled run's executor after completing stale leftovers, with a digest
    (``butler.api.backend.RequestReleaser``); ``record`` audits decisions that release nothing (refused, dry run)."""

    def release(self, decisions: Sequence[Decision],
                recheck: Callable[[Allocation, User | None], Decision]) -> list[Decision]: ...

    def record(self, decisions: Sequence[Decision]) -> None: ...


@dataclass(frozen=True)
class LicenseService:
    client: LicenseReads
    management: LicenseManagement
    clock: Callable[[], datetime]

    @cached_property
    def rules(self) -> Rules:
        return Rules.from_config(self.management)

    @property
    def dry_run(self) -> bool:
        """Releases on request follow ``dryRun``; ``enable: false`` switches off automatic release, not these."""
        return self.management.dryRun

    @property
    def scheduled_dry_run(self) -> bool:
        """What the scheduled evaluation does: a dry run when configured so or automatic release is off."""
        return self.management.dryRun or not self.management.enable

    def status(self) -> dict[str, Any]:
        return license_status(self.client.access_type_overview())

    # --- lookup ------------------------------------------------------------------------------------------------

    def find_user(self, ref: UserRef) -> User:
        """The one user a reference names; 404 when none, 409 naming the directories when a bare id is ambiguous."""
        condition = filters.eq("userId", ref.user_id)
        if ref.user_directory is not None:
            condition = filters.all_of(filters.eq("userDirectory", ref.user_directory), condition)
        found = self.client.find_users(condition)
        if not found:
            raise NotFound(f"no user {ref} in QRS")
        if len(found) > 1:
            directories = sorted({user.userDirectory for user in found}, key=str.casefold)
            raise Conflict(f"user id {ref.user_id!r} exists in several user directories: {', '.join(directories)}; "
                           "name one as DIRECTORY\\userid or with ?userDirectory=", {"userDirectories": directories})
        return found[0]

    def allocations_of(self, user: User, license_type: LicenseType | None = None) -> list[Allocation]:
        """The user's professional and analyzer allocations (or one type's); 404 when there is none."""
        condition = filters.compare("user.id", "eq", _guid(user.id))
        types = (license_type,) if license_type else LICENSE_TYPES
        found = [allocation for t in types for allocation in self.client.allocations(t, condition)]
        if not found:
            kind = f"{license_type} " if license_type else ""
            raise NotFound(f"user {user.qualified_id} has no {kind}access allocated")
        return found

    # --- the user's picture ------------------------------------------------------------------------------------

    def user_licenses(self, ref: UserRef) -> dict[str, Any]:
        user = self.find_user(ref)
        allocations = self.allocations_of(user)
        now, rules = self.clock(), self.rules
        infos = [self._allocation_info(allocation, user, rules, now) for allocation in allocations]
        held = list(dict.fromkeys(rule for info in infos for rule in info["protections"]))
        return {
            "userDirectory": user.userDirectory,
            "userId": user.userId,
            "name": user.name,
            "inactive": user.inactive,
            "blacklisted": user.blacklisted,
            "removedExternally": user.removedExternally,
            "tags": [tag.name for tag in user.tags],
            "customProperties": [{"name": p.definition.name, "value": p.value} for p in user.customProperties],
            "protected": bool(held),
            "protections": held,
            "allocations": infos,
        }

    def _allocation_info(self, allocation: Allocation, user: User, rules: Rules, now: datetime) -> dict[str, Any]:
        held = policy.protections(allocation, user, rules, now)
        days = policy.days_inactive(allocation, now)
        return {
            "licenseType": allocation.licenseType,
            "allocationId": allocation.id,
            "createdDate": iso(allocation.createdDate),
            "lastUsed": iso(allocation.lastUsed),
            "daysInactive": None if days is None else round(days, 2),
            "quarantined": allocation.quarantined,
            "quarantineEnd": iso(allocation.quarantineEnd),
            "protections": held,
            "releasableAt": iso(self._releasable_at(allocation, rules, held)),
            "evaluation": self._evaluation(allocation, user, rules, now),
        }

    def _evaluation(self, allocation: Allocation, user: User, rules: Rules, now: datetime) -> dict[str, str]:
        """What the scheduled evaluation would decide now (a dry run when automatic release is off)."""
        decision = policy.decide(allocation, user, rules, now, dry_run=self.scheduled_dry_run)
        return {"action": decision.action, "reason": decision.reason}

    def _releasable_at(self, allocation: Allocation, rules: Rules, held: list[str]) -> datetime | None:
        """The scheduled run's earliest release: past the inactivity threshold and the grace period, if no other
        protection rule holds (those do not expire by themselves)."""
        if not self.management.enable or not rules.enabled[allocation.licenseType] or allocation.quarantined:
            return None
        if any(not rule.startswith(GRACE_RULE) for rule in held):
            return None
        moment = policy.releasable_at(allocation, rules)
        if moment is not None and allocation.createdDate is not None:
            moment = max(moment, allocation.createdDate + timedelta(days=rules.grace_period_days))
        return moment

    # --- release on request ------------------------------------------------------------------------------------

    def plan_release(
        self, ref: UserRef, license_type: LicenseType | None, *, force: bool,
        record: Callable[[Sequence[Decision]], None] = lambda decisions: None,
    ) -> tuple[User, list[Decision]]:
        """The decisions for an administrator's release; 409 (nothing released, the refusal audited through
        ``record``) when a protection rule holds."""
        user = self.find_user(ref)
        allocations = self.allocations_of(user, license_type)
        now, rules = self.clock(), self.rules
        decisions = [policy.decide_on_request(a, user, rules, now, force=force, dry_run=self.dry_run)
                     for a in allocations]
        protected = [d for d in decisions if d.action == "protected"]
        if protected:
            record(decisions)
            held = sorted({rule for d in protected for rule in policy.protections(d.allocation, user, rules, now)})
            raise Conflict(f"a protection rule holds for {user.qualified_id}: {'; '.join(held)}; "
                           "nothing was released (add ?force=true to release anyway)",
                           {"protections": held, "allocations": [d.to_report() for d in decisions]})
        return user, decisions

    def release(self, ref: UserRef, license_type: LicenseType | None, *, force: bool, caller: str, run_id: str,
                releaser: Callable[[], Releaser]) -> dict[str, Any]:
        """Release the user's allocations through the executor; a refusal or a dry run is audited as decisions."""
        run = releaser()
        user, decisions = self.plan_release(ref, license_type, force=force, record=run.record)
        wanted = [d for d in decisions if d.action == "release"]
        done = {d.allocation.id: d for d in run.release(wanted, self.recheck(force))} if wanted else {}
        outcome = [done.get(d.allocation.id, d) for d in decisions]
        if not wanted:
            run.record(outcome)
        answer = {
            "userDirectory": user.userDirectory,
            "userId": user.userId,
            "dryRun": self.dry_run,
            "caller": caller,
            "runId": run_id,
            "released": sum(1 for d in outcome if d.action == "release"),
            "allocations": [d.to_report() for d in outcome],
        }
        held = [d for d in outcome if d.action == "protected"]
        if held:  # protected since the lookup (the executor re-read the user): nothing more was released
            raise Conflict(f"a protection rule holds for {user.qualified_id}: {held[0].reason}; not released",
                           answer)
        failed = [d for d in outcome if d.action == "failed"]
        if failed:  # a script must not read a failed release as done
            raise BadGateway(f"releasing {len(failed)} allocation(s) of {user.qualified_id} failed: {failed[0].reason}",
                             answer)
        return answer

    def recheck(self, force: bool) -> Callable[[Allocation, User | None], Decision]:
        """The executor re-reads each allocation just before its DELETE and asks again: a user who was tagged or
        whose allocation Qlik quarantined meanwhile is not released."""

        def again(fresh: Allocation, user: User | None) -> Decision:
            return policy.decide_on_request(fresh, user, self.rules, self.clock(), force=force,
                                            dry_run=self.dry_run)

        return again


def _guid(value: str) -> uuid.UUID | str:
    try:
        return uuid.UUID(value)
    except ValueError:
        return value
