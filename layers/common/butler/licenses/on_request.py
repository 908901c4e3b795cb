"""One user, on request (the API's routes and ``butler serve``): the license status, the user's license picture,
and the release of the user's licenses by an administrator.

Reads stay bulk-shaped even for one user: one ``/user/full`` lookup and one ``/full`` read per access type
filtered on the user's id. Decisions come from the policy, releases go through the scheduled run's executor
(re-read of allocation and owner before DELETE, audit intent and outcome), after completing stale leftovers.
Refusals are domain errors (``butler.licenses.model.Refusal``) that the API turns into 404, 409 or 502.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from butler.config import LICENSE_TYPES, LicenseManagement
from butler.licenses import policy
from butler.licenses.answers import (
    AllocationInfo,
    CustomProperty,
    Evaluation,
    LicenseStatus,
    ReleasedAllocation,
    ReleaseResult,
    UserLicenses,
)
from butler.licenses.model import (
    AmbiguousUser,
    AuditTrail,
    Decision,
    LicenseSource,
    MeasurementWriter,
    Notifier,
    ProtectedUser,
    ReleaseFailed,
    RunContext,
    RunMode,
    UserNotFound,
    decision_record,
    iso,
)
from butler.licenses.policy import Rules
from butler.licenses.reconcile import reconcile
from butler.licenses.redundant import professional_holders
from butler.licenses.release import ReleaseExecutor
from butler.licenses.server_license import server_license_status
from butler.licenses.status import license_status, redundant_pairs
from butler.observability import logger
from butler.qrs.models import Allocation, LicenseType, User, qualified

GRACE_RULE = "quarantine.gracePeriod"


@dataclass(frozen=True)
class OnRequest:
    source: LicenseSource
    management: LicenseManagement
    clock: Callable[[], datetime]

    @cached_property
    def rules(self) -> Rules:
        return Rules.from_config(self.management)

    @property
    def mode(self) -> RunMode:
        """Releases on request follow ``dryRun``; ``enable: false`` switches off automatic release, not these."""
        return RunMode(self.management.dryRun, "licenseManagement.dryRun")

    @property
    def scheduled_mode(self) -> RunMode:
        """What the scheduled evaluation does now."""
        return RunMode.resolve(enabled=self.management.enable, configured_dry_run=self.management.dryRun,
                               forced_dry_run=None)

    def status(self) -> LicenseStatus:
        """QRS's access type overview, the server license and the redundant analyzer allocations (4 reads)."""
        source = self.source
        server = server_license_status(source.server_license(), self.clock().date())
        redundant = redundant_pairs(source.allocations("professional"), source.allocations("analyzer"))
        return license_status(source.access_type_overview(), server, redundant)

    # --- lookup ------------------------------------------------------------------------------------------------

    def find_user(self, user_id: str, directory: str | None) -> User:
        """The one user named; UserNotFound, or AmbiguousUser naming the directories of a bare id."""
        found = self.source.users_named(user_id, directory)
        if not found:
            raise UserNotFound(f"no user {qualified(directory, user_id) if directory else user_id} in QRS")
        if len(found) > 1:
            directories = sorted({user.userDirectory for user in found}, key=str.casefold)
            raise AmbiguousUser(f"user id {user_id!r} exists in several user directories: {', '.join(directories)}; "
                                "name one as DIRECTORY\\userid or with ?userDirectory=",
                                {"userDirectories": directories})
        return found[0]

    def allocations_of(self, user: User, license_type: LicenseType | None = None) -> list[Allocation]:
        """The user's professional and analyzer allocations (or one type's); UserNotFound when there is none."""
        types = (license_type,) if license_type else LICENSE_TYPES
        found = [allocation for t in types for allocation in self.source.allocations_of_user(t, user.id)]
        if not found:
            kind = f"{license_type} " if license_type else ""
            raise UserNotFound(f"user {user.qualified_id} has no {kind}access allocated")
        return found

    # --- the user's picture ------------------------------------------------------------------------------------

    def user_licenses(self, user_id: str, directory: str | None) -> UserLicenses:
        user = self.find_user(user_id, directory)
        now, rules = self.clock(), self.rules
        allocations = self.allocations_of(user)  # both types: releaseRedundant's fact is among them
        holders = professional_holders(allocations) if rules.release_redundant else policy.NO_HOLDERS
        infos = [self._allocation_info(allocation, user, rules, now, holders) for allocation in allocations]
        held = list(dict.fromkeys(rule for info in infos for rule in info.protections))
        return UserLicenses(
            userDirectory=user.userDirectory, userId=user.userId, name=user.name, inactive=user.inactive,
            blacklisted=user.blacklisted, removedExternally=user.removedExternally,
            tags=[tag.name for tag in user.tags],
            customProperties=[CustomProperty(name=p.definition.name, value=p.value) for p in user.customProperties],
            protected=bool(held), protections=held, allocations=infos)

    def _allocation_info(self, allocation: Allocation, user: User, rules: Rules, now: datetime,
                         holders: frozenset[str] = policy.NO_HOLDERS) -> AllocationInfo:
        held = policy.protections(allocation, user, rules, now)
        days = policy.days_inactive(allocation, now)
        decision = self.scheduled_mode.apply(policy.decide(allocation, user, rules, now, holders))
        return AllocationInfo(
            licenseType=allocation.licenseType, allocationId=allocation.id, createdDate=iso(allocation.createdDate),
            lastUsed=iso(allocation.lastUsed), daysInactive=None if days is None else round(days, 2),
            quarantined=allocation.quarantined, quarantineEnd=iso(allocation.quarantineEnd), protections=held,
            releasableAt=iso(self._releasable_at(allocation, rules, held,
                                                 redundant=policy.redundant(allocation, rules, holders))),
            evaluation=Evaluation(action=decision.action, reason=decision.reason))

    def _releasable_at(self, allocation: Allocation, rules: Rules, held: list[str], *,
                       redundant: bool = False) -> datetime | None:
        """The scheduled run's earliest release: past the inactivity threshold and the grace period, if no other
        protection rule holds (those do not expire by themselves)."""
        if not self.management.enable or not rules.enabled[allocation.licenseType] or allocation.quarantined:
            return None
        if any(not rule.startswith(GRACE_RULE) for rule in held):
            return None
        moment = allocation.last_activity if redundant else policy.releasable_at(allocation, rules)
        if moment is not None and allocation.createdDate is not None:
            moment = max(moment, allocation.createdDate + timedelta(days=rules.grace_period_days))
        return moment

    # --- release on request ------------------------------------------------------------------------------------

    def release(self, user_id: str, directory: str | None, license_type: LicenseType | None, *, force: bool,
                sinks: RequestSinks, run: RunContext) -> ReleaseResult:
        """Release the user's allocations through the executor; a refusal or a dry run is audited as decisions.
        ProtectedUser when a protection rule holds (before or since the lookup), ReleaseFailed when one failed."""
        user = self.find_user(user_id, directory)
        now, rules = self.clock(), self.rules
        decisions = [policy.decide_on_request(a, user, rules, now, force=force)
                     for a in self.allocations_of(user, license_type)]
        if any(d.action == "protected" for d in decisions):
            sinks.record(decisions, run)
            held = sorted({rule for d in decisions if d.action == "protected"
                           for rule in policy.protections(d.allocation, user, rules, now)})
            raise ProtectedUser(f"a protection rule holds for {user.qualified_id}: {'; '.join(held)}; "
                                "nothing was released (add ?force=true to release anyway)",
                                {"protections": held, "allocations": [d.to_report() for d in decisions]})
        outcome = sinks.release(self.source, decisions, self._recheck(force), run, self.management)
        answer = ReleaseResult(
            userDirectory=user.userDirectory, userId=user.userId, dryRun=run.mode.dry_run, caller=run.actor,
            runId=run.run_id, released=sum(1 for d in outcome if d.action == "release"),
            allocations=[ReleasedAllocation.model_validate(d.to_report()) for d in outcome])
        _refuse_after(user, outcome, answer)
        return answer

    def _recheck(self, force: bool) -> Callable[[Allocation, User | None], Decision]:
        """The executor re-reads each allocation and its owner just before the DELETE and asks again: a user who
        was tagged or whose allocation Qlik quarantined meanwhile is not released."""

        def again(fresh: Allocation, user: User | None) -> Decision:
            return policy.decide_on_request(fresh, user, self.rules, self.clock(), force=force)

        return again


def _refuse_after(user: User, outcome: Sequence[Decision], answer: ReleaseResult) -> None:
    details = answer.model_dump()
    held = [d for d in outcome if d.action == "protected"]
    if held:  # protected since the lookup (the executor re-read the user): nothing more was released
        raise ProtectedUser(f"a protection rule holds for {user.qualified_id}: {held[0].reason}; not released",
                            details)
    failed = [d for d in outcome if d.action == "failed"]
    if failed:  # a script must not read a failed release as done
        raise ReleaseFailed(f"releasing {len(failed)} allocation(s) of {user.qualified_id} failed: "
                            f"{failed[0].reason}", details)


@dataclass(frozen=True)
class RequestSinks:
    """Where a release on request leaves its traces: the audit trail, the administrators' digest, InfluxDB."""

    audit: AuditTrail
    notifier: Notifier | None = None
    influx: MeasurementWriter | None = None

    def record(self, decisions: Sequence[Decision], run: RunContext) -> None:
        """Audit decisions that released nothing (a refusal, a dry run) with the caller."""
        at = run.clock()
        self.audit.write_many([decision_record(d, "decision", run_id=run.run_id, actor=run.actor, at=at,
                                               dry_run=run.mode.dry_run) for d in decisions])

    def release(self, source: LicenseSource, decisions: Sequence[Decision],
                recheck: Callable[[Allocation, User | None], Decision], run: RunContext,
                management: LicenseManagement) -> list[Decision]:
        """Complete stale leftovers, release through the executor, send the digest; in a dry run, only audit."""
        wanted = [d for d in decisions if d.action == "release"]
        if run.mode.dry_run or not wanted:
            outcome = [run.mode.apply(d) for d in decisions]
            self.record(outcome, run)
            return outcome
        reconcile(self.audit, source, now=run.clock(), actor=run.actor, holding_run_lock=False, own_run=run.run_id)
        executor = ReleaseExecutor(source, self.audit, run, concurrency=management.concurrency,
                                   influx=self.influx, log_level=management.auditLog.logLevel)
        done = {d.allocation.id: d for d in executor.release(wanted, recheck)}
        outcome = [done.get(d.allocation.id, d) for d in decisions]
        if self.notifier is not None:
            try:
                self.notifier.run_digest(run.run_id, outcome, actor=run.actor, dry_run=False)
            except Exception as exc:  # the release happened; a lost notice must not turn it into a failure
                logger.error("release digest failed", extra={"runId": run.run_id, "error": type(exc).__name__})
        return outcome
