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


def needs_user_record(allocation: Allocation, rules: Rules, now: datetime) -> bool:
    """Whether ``decide`` reads the owner's user record: only for allocations past their threshold, so the
    inventory fetches just those users. Mirrors the order of ``decide``."""
    license_type = allocation.licenseType
    if unreleasable(allocation) or not rules.enabled[license_type] or allocation.quarantined:
        return False
    if allocation.user is None:
        return False
    days = days_inactive(allocation, now)
    return days is not None and days >= rules.inactivity_days[license_type]


def decide(allocation: Allocation, user: User | None, rules: Rules, now: datetime) -> Decision:
    """The decision for one allocation. ``user`` is None when QRS has no user record for it."""
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
    if days < threshold:
        return result("keep", f"last activity {days:.1f} days ago, below release.{license_type}.inactivityDays "
                              f"{threshold:g}")
    if allocation.user is not None and (user is None or user.id != allocation.user.id):
        return result("skip", "user record not found in QRS: protection rules cannot be checked")
    held = protections(allocation, user, rules, now)
    if held:
        return result("protected", held[0])
    reason = f"inactive {days:.1f} days >= release.{license_type}.inactivityDays {threshold:g}"
    return result("release", reason)


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
    if allocation.user is not None and (user is None or user.id != allocation.user.id):
        return Decision(allocation, user, "skip", "user record not found in QRS: protection rules cannot be checked",
                        days)
    held = protections(allocation, user, rules, now)
    if held and not force:
        return Decision(allocation, user, "protected", held[0], days)
    reason = "released on request" + (f" (force overrides {'; '.join(held)})" if held else "")
    return Decision(allocation, user, "release", reason, days)
