"""Redundant analyzer allocations (``licenseManagement.release.analyzer.releaseRedundant``): the fact the policy
needs, read by the evaluation, and read again before each DELETE.

``policy.decide`` stays pure: it is given ``professional_holders``, the case-folded QRS ids of the users holding a
professional allocation that counts. Only a clean, unquarantined professional allocation counts: a quarantined one
has been released already (its user holds it only if they come back within Qlik's quarantine), and a record we
could not read whole proves nothing. The professional allocation is never a candidate of this rule.

The executor re-reads each candidate and its owner before its DELETE and decides again; for a candidate of this
rule it must also see that the owner still holds a professional allocation, so ``Recheck`` reads the owner's
professional allocations afresh (one filtered ``/full`` read per such candidate, so at most
``maxReleasesPerRun``). Only owners already in the evaluation's set are re-read: the rule never releases on a fact
the evaluation did not see. A failed read fails that one allocation (nothing is deleted; unless the inactivity
rule alone releases it on the fresh data), not its chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from butler.config import LICENSE_TYPES
from butler.licenses.inventory import Inventory, inventory_of
from butler.licenses.model import Decision, LicenseSource
from butler.licenses.policy import NO_HOLDERS, Rules, decide, needs_user_record, redundant
from butler.licenses.release import Recheck, describe
from butler.qrs.models import Allocation, User

REREAD_FAILED = "re-read of the owner's professional allocations failed"


def professional_holders(allocations: Iterable[Allocation]) -> frozenset[str]:
    """The owners (QRS user id, case-folded) of the professional allocations that count."""
    return frozenset(a.user.id.strip().casefold() for a in allocations
                     if a.licenseType == "professional" and not a.quarantined and not a.problem
                     and a.user is not None and a.user.id and a.user.id.strip())


def evaluation_inventory(source: LicenseSource, rules: Rules, at: datetime,
                         *, with_email: bool = False) -> tuple[Inventory, frozenset[str]]:
    """The evaluation's inventory and its professional holders (empty while the rule is off: nothing to know)."""
    allocations = {t: source.allocations(t) for t in LICENSE_TYPES}
    holders = professional_holders(allocations["professional"]) if rules.release_redundant else NO_HOLDERS
    return inventory_of(source, allocations, lambda a: needs_user_record(a, rules, at, holders),
                        with_email=with_email), holders


def fresh_recheck(source: LicenseSource, rules: Rules, holders: frozenset[str],
                  clock: Callable[[], datetime]) -> Recheck:
    """The executor's re-decision: on the fresh allocation and owner, and, for this rule's candidates, on the
    owner's professional allocations as QRS holds them now."""

    def recheck(fresh: Allocation, owner: User | None) -> Decision:
        if not redundant(fresh, rules, holders) or fresh.user is None or not fresh.user.id:
            return decide(fresh, owner, rules, clock())
        try:
            still = professional_holders(source.allocations_of_user("professional", fresh.user.id))
        except Exception as exc:  # without the fact this rule releases nothing; the other allocations go on
            plain = decide(fresh, owner, rules, clock())
            if plain.action == "release":  # the inactivity rule alone releases it, on fresh data
                return plain
            return plain.with_outcome("failed", f"{REREAD_FAILED}: {describe(exc)}")
        return decide(fresh, owner, rules, clock(), still)

    return recheck
