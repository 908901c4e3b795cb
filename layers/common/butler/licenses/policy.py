"""The release policy: a pure function from (allocation, user, rules, now) to a decision with a reason.

No I/O here. The order is fixed and documented in the README:

1. ``skip``: the record could not be read whole, its id is not a GUID, its owner cannot be identified, the
   license type's release is disabled, Qlik has quarantined the allocation, or the user's record could not be
   read (protection rules cannot be checked, so nothing is risked).
2. Last activity is ``lastUsed``, or ``createdDate`` for a never-used allocation; ``daysInactive`` is
   ``(now - last activity)`` in days (UTC, exact, as a float). Below ``release.<type>.inactivityDays``: ``keep``.
3. Protection rules, the first that holds is named by its config key path and the matched value:
   ``quarantine.gracePeriod``, ``exclusions.users``, ``exclusions.userDirectories``, ``exclusions.tags``,
   ``exclusions.customProperties``, ``exclusions.userStatus.*``.  All matching is case-insensitive, as Qlik's.
   ``userStatus`` maps to the QMC's user flags: ``protectActiveUsers`` protects users whose ``inactive`` is false,
   ``protectNonBlockedUsers`` those whose ``blacklisted`` (the QMC's "Blocked") is false, and
   ``protectInternalUsers`` those whose ``removedExternally`` is false.
   With ``release.analyzer.releaseRedundant``, an analyzer allocation whose owner also holds a professional one
   (``professional_holders``, a fact the caller reads: decide stays pure) skips step 2, not 1 or 3; its reason is
   ``REDUNDANT``.
4. Otherwise ``release``: a candidate. Whether it is carried out (or reported ``would-release`` in a dry run) is
   the executor's business, under the run's ``RunMode``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from butler.config import LicenseManagement
from butler.licenses.model import Action, Decision, iso
from butler.qrs.models import Allocation, LicenseType, User, is_guid, qualified

__all__ = ["Action", "Decision", "Rules", "decide", "decide_on_request", "iso", "protections"]
OWNER_UNKNOWN = "owner unknown: the allocation names no user and no deleted user"
SECONDS_PER_DAY = 86400.0
REDUNDANT = "release.analyzer.releaseRedundant: holds professional"
NO_HOLDERS: frozenset[str] = frozenset()


def _fold(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.casefold() for v in values)


@dataclass(frozen=True)
class Rules:
    """The configuration's release rules, pre-folded for fast case-insensitive matching."""

    enabled: dict[LicenseType, bool]
    inactivity_days: dict[LicenseType, float]
    grace_period_days: float
    users: frozenset[tuple[str, str]]
    user_directories: frozenset[str]
    tags: frozenset[str]
    custom_properties: frozenset[tuple[str, str]]
    protect_active: bool
    protect_non_blocked: bool
    protect_internal: bool
    release_redundant: bool = False
    warn_days: float = 0.0  # notifications.warnDaysBefore: owners this close to their threshold are read too

    @classmethod
    def from_config(cls, management: LicenseManagement) -> Rules:
        release, exclusions = management.release, management.exclusions
        return cls(
            enabled={t: release.for_type(t).enable for t in ("professional", "analyzer")},
            inactivity_days={t: release.for_type(t).inactivityDays for t in ("professional", "analyzer")},
            grace_period_days=management.quarantine.gracePeriod,
            users=frozenset((u.userDirectory.casefold(), u.userId.casefold()) for u in exclusions.users),
            user_directories=_fold(exclusions.userDirectories),
            tags=_fold(exclusions.tags),
            custom_properties=frozenset((p.name.casefold(), p.value.casefold()) for p in exclusions.customProperties),
            protect_active=exclusions.userStatus.protectActiveUsers,
            protect_non_blocked=exclusions.userStatus.protectNonBlockedUsers,
            protect_internal=exclusions.userStatus.protectInternalUsers,
            release_redundant=release.analyzer.releaseRedundant,
            warn_days=management.notifications.warnDaysBefore,
        )


def days_between(earlier: datetime, later: datetime) -> float:
    return (later - earlier).total_seconds() / SECONDS_PER_DAY


def days_inactive(allocation: Allocation, now: datetime) -> float | None:
    last = allocation.last_activity
    return None if last is None else days_between(last, now)


def releasable_at(allocation: Allocation, rules: Rules) -> datetime | None:
    """When the allocation passes its type's inactivity threshold, if nobody uses it before."""
    last = allocation.last_activity
    return None if last is None else last + timedelta(days=rules.inactivity_days[allocation.licenseType])


def protections(allocation: Allocation, user: User | None, rules: Rules, now: datetime) -> list[str]:
    """Every protection rule that holds, each as ``key.path: matched value``."""
    found: list[str] = []
    created = allocation.createdDate
    if created is not None and days_between(created, now) < rules.grace_period_days:
        found.append(f"quarantine.gracePeriod: allocated {iso(created)}, within {rules.grace_period_days:g} days")
    owner: Any = user or allocation.user
    directory = (owner.userDirectory if owner else allocation.deletedUserDirectory) or ""
    user_id = (owner.userId if owner else allocation.deletedUserId) or ""
    if (directory.casefold(), user_id.casefold()) in rules.users:
        found.append(f"exclusions.users: {qualified(directory, user_id)}")
    if directory.casefold() in rules.user_directories:
        found.append(f"exclusions.userDirectories: {directory}")
    if user is not None:
        found.extend(_user_protections(user, rules))
    return found


def _user_protections(user: User, rules: Rules) -> list[str]:
    found = [f"exclusions.tags: {tag.name}" for tag in user.tags if tag.name.casefold() in rules.tags]
    found += [
        f"exclusions.customProperties: {prop.definition.name}={prop.value}"
        for prop in user.customProperties
        if (prop.definition.name.casefold(), prop.value.casefold()) in rules.custom_properties
    ]
    if rules.protect_active and not user.inactive:
        found.append("exclusions.userStatus.protectActiveUsers: inactive=false")
    if rules.protect_non_blocked and not user.blacklisted:
        found.append("exclusions.userStatus.protectNonBlockedUsers: blacklisted=false")
    if rules.protect_internal and not user.removedExternally:
        found.append("exclusions.userStatus.protectInternalUsers: removedExternally=false")
    return found


def unreleasable(allocation: Allocation) -> str | None:
    """Why an allocation can never be released, whatever the rules: a record we could not read whole, an id that
    is not a GUID (it would go into a URL path), or an owner nobody can name (its audit record would be empty)."""
    if allocation.problem:
        return f"unreadable record: {allocation.problem}"
    if not is_guid(allocation.id):
        return f"allocation id {allocation.id[:60]!r} is not a GUID: never requested"
    owner = allocation.user
    if owner is None:
        return None if allocation.deletedUserId and allocation.deletedUserDirectory else OWNER_UNKNOWN
    if not is_guid(owner.id):
        return f"owner {owner.qualified_id} has no GUID id: its record cannot be re-read before a release"
    return None


def owner_record_problem(allocation: Allocation, user: User | None) -> str | None:
    """Why ``user`` cannot be taken as the allocation's owner: the protection rules are read from that record,
    so it must be the owner's by id, directory and user id alike (a record of someone else protects no one)."""
    owner = allocation.user
    if owner is None:
        return None
    if user is None:
        return "user record not found in QRS: protection rules cannot be checked"
    same = (user.id.casefold() == (owner.id or "").casefold()
            and user.userDirectory.casefold() == owner.userDirectory.casefold()
            and user.userId.casefold() == owner.userId.casefold())
    return None if same else (f"user record {user.qualified_id} does not match the allocation's owner "
                              f"{owner.qualified_id}: protection rules cannot be checked")


def redundant(allocation: Allocation, rules: Rules, professional_holders: frozenset[str]) -> bool:
    """The rule ``releaseRedundant`` applies: an analyzer allocation whose owner (by QRS id, case-folded) is among
    the holders of a professional allocation."""
    owner_id = allocation.user.id if allocation.user is not None else None
    return (rules.release_redundant and allocation.licenseType == "analyzer" and bool(owner_id)
            and str(owner_id).strip().casefold() in professional_holders)


def needs_user_record(allocation: Allocation, rules: Rules, now: datetime,
                      professional_holders: frozenset[str] = NO_HOLDERS) -> bool:
    """Whether ``decide`` reads the owner's user record: only for allocations past their threshold, so the
    inventory fetches just those users. Mirrors the order of ``decide``."""
    license_type = allocation.licenseType
    if unreleasable(allocation) or not rules.enabled[license_type] or allocation.quarantined:
        return False
    if allocation.user is None:
        return False
    days = days_inactive(allocation, now)
    if days is not None and redundant(allocation, rules, professional_holders):
        return True
    return days is not None and days >= rules.inactivity_days[license_type] - rules.warn_days


def decide(allocation: Allocation, user: User | None, rules: Rules, now: datetime,
           professional_holders: frozenset[str] = NO_HOLDERS) -> Decision:
    """The decision for one allocation. ``user`` is None when QRS has no user record for it;
    ``professional_holders``: the case-folded QRS ids of the users holding a professional allocation."""
    license_type = allocation.licenseType
    days = days_inactive(allocation, now)

    def result(action: Action, reason: str) -> Decision:
        return Decision(allocation, user, action, reason, days)

    blocked = unreleasable(allocation)
    if blocked:
        return result("skip", blocked)
    if not rules.enabled[license_type]:
        return result("skip", f"release.{license_type}.enable: false")
    if allocation.quarantined:
        return result("skip", f"quarantined by Qlik until {iso(allocation.quarantineEnd)}")
    threshold = rules.inactivity_days[license_type]
    if days is None:
        return result("skip", "no lastUsed and no createdDate: inactivity unknown")
    wasted = redundant(allocation, rules, professional_holders)
    if days < threshold and not wasted:
        return result("keep", f"{idle_text(allocation, days)}, below release.{license_type}.inactivityDays "
                              f"{threshold:g}")
    mismatch = owner_record_problem(allocation, user)
    if mismatch:
        return result("skip", mismatch)
    held = protections(allocation, user, rules, now)
    if held:
        return result("protected", held[0])
    if wasted:
        return result("release", REDUNDANT)
    idle = f"inactive {days:.1f} days" if allocation.lastUsed else idle_text(allocation, days)
    return result("release", f"{idle} >= release.{license_type}.inactivityDays {threshold:g}")


def idle_text(allocation: Allocation, days: float) -> str:
    """How long the allocation has been idle, in words: a never-used one counts from its allocation date."""
    if allocation.lastUsed is None:
        return f"never used; allocated {days:.1f} days ago"
    return f"last activity {days:.1f} days ago"


def decide_on_request(
    allocation: Allocation, user: User | None, rules: Rules, now: datetime, *, force: bool
) -> Decision:
    """An administrator's explicit release (the API's DELETE): no inactivity threshold, protections hold unless
    ``force``. A forced release names the rules it overrode."""
    days = days_inactive(allocation, now)
    blocked = unreleasable(allocation)
    if blocked:
        return Decision(allocation, user, "skip", blocked, days)
    if allocation.quarantined:
        return Decision(allocation, user, "skip", f"quarantined by Qlik until {iso(allocation.quarantineEnd)}", days)
    mismatch = owner_record_problem(allocation, user)
    if mismatch:
        return Decision(allocation, user, "skip", mismatch, days)
    held = protections(allocation, user, rules, now)
    if held and not force:
        return Decision(allocation, user, "protected", held[0], days)
    reason = "released on request" + (f" (force overrides {'; '.join(held)})" if held else "")
    return Decision(allocation, user, "release", reason, days)
