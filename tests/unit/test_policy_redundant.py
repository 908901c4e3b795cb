"""``release.analyzer.releaseRedundant``: an analyzer allocation whose user also holds a professional one is released
whatever its inactivity; grace period, Qlik's quarantine and exclusions still hold; professional is never touched."""

from __future__ import annotations

from typing import Any

import pytest

from butler.licenses.policy import REDUNDANT, decide, needs_user_record
from butler.licenses.redundant import fresh_recheck, professional_holders
from butler.qrs.errors import QrsHttpError
from butler.qrs.models import Allocation, LicenseType, User

from .test_policy import NOW, allocation, rules, user

OWNER = "0e0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"  # the owner of test_policy's allocation()
HOLDERS = frozenset({OWNER})
ON: dict[str, Any] = {"release": {"analyzer": {"releaseRedundant": True}}}


def test_a_recently_used_analyzer_allocation_of_a_professional_holder_is_released() -> None:
    decision = decide(allocation("analyzer", idle=1), user(), rules(**ON), NOW, HOLDERS)
    assert (decision.action, decision.reason) == ("release", REDUNDANT)
    assert REDUNDANT == "release.analyzer.releaseRedundant: holds professional"


def test_the_reason_is_the_rule_also_past_the_inactivity_threshold() -> None:
    assert decide(allocation("analyzer", idle=90), user(), rules(**ON), NOW, HOLDERS).reason == REDUNDANT


def test_the_professional_allocation_is_never_released_by_the_rule() -> None:
    decision = decide(allocation("professional", idle=1), user(), rules(**ON), NOW, HOLDERS)
    assert decision.action == "keep"
    assert not needs_user_record(allocation("professional", idle=1), rules(**ON), NOW, HOLDERS)


@pytest.mark.parametrize(("alloc", "reason"), [
    ({"idle": 1, "created": 3}, "quarantine.gracePeriod"),
    ({"idle": 1, "quarantined": True}, "quarantined by Qlik"),
])
def test_grace_period_and_quarantine_hold(alloc: dict[str, Any], reason: str) -> None:
    decision = decide(allocation("analyzer", **alloc), user(), rules(**ON), NOW, HOLDERS)
    assert decision.action in ("protected", "skip") and decision.reason.startswith(reason)


@pytest.mark.parametrize(("management", "owner", "reason"), [
    ({"exclusions": {"tags": ["VIP"]}}, {"tags": ["vip"]}, "exclusions.tags: vip"),
    ({"exclusions": {"users": [{"userDirectory": "corp", "userId": "JDOE"}]}}, {}, "exclusions.users"),
    ({"exclusions": {"userDirectories": ["CORP"]}}, {}, "exclusions.userDirectories"),
    ({"exclusions": {"userStatus": {"protectActiveUsers": True}}}, {}, "exclusions.userStatus.protectActiveUsers"),
])
def test_exclusions_hold(management: dict[str, Any], owner: dict[str, Any], reason: str) -> None:
    decision = decide(allocation("analyzer", idle=1), user(**owner), rules(**ON, **management), NOW, HOLDERS)
    assert decision.action == "protected" and decision.reason.startswith(reason)


def test_a_missing_user_record_is_a_skip() -> None:
    assert decide(allocation("analyzer", idle=1), None, rules(**ON), NOW, HOLDERS).action == "skip"
    assert needs_user_record(allocation("analyzer", idle=1), rules(**ON), NOW, HOLDERS)


@pytest.mark.parametrize(("management", "holders", "idle", "action"), [
    ({}, HOLDERS, 1, "keep"),  # the rule is off by default: the inactivity rule alone
    ({}, HOLDERS, 50, "release"),
    (ON, frozenset(), 1, "keep"),  # the user holds no professional allocation
    (ON, frozenset({"someone-else"}), 50, "release"),
    ({"release": {"analyzer": {"enable": False, "releaseRedundant": True}}}, HOLDERS, 1, "skip"),
])
def test_otherwise_the_inactivity_rule(management: dict[str, Any], holders: frozenset[str], idle: float,
                                       action: str) -> None:
    decision = decide(allocation("analyzer", idle=idle), user(), rules(**management), NOW, holders)
    assert decision.action == action and decision.reason != REDUNDANT


def test_holders_match_the_owner_id_case_insensitively() -> None:
    assert decide(allocation("analyzer", idle=1), user(), rules(**ON), NOW,
                  frozenset({OWNER.upper().casefold()})).reason == REDUNDANT


def test_only_clean_unquarantined_professional_allocations_count() -> None:
    fine = allocation("professional")
    quarantined = allocation("professional", quarantined=True, user_id="q").model_copy(
        update={"user": fine.user.model_copy(update={"id": "11111111-1111-4111-8111-111111111111"})})
    ownerless = allocation("professional", owner=False)
    analyzer = allocation("analyzer").model_copy(
        update={"user": fine.user.model_copy(update={"id": "22222222-2222-4222-8222-222222222222"})})
    assert professional_holders([fine, quarantined, ownerless, analyzer]) == HOLDERS


# --- the re-decision before DELETE reads the professional allocations again ------------------------------------


class Professional:
    """The one read the recheck makes: the owner's professional allocations, as QRS holds them now."""

    def __init__(self, held: list[Allocation] | Exception) -> None:
        self.held, self.reads = held, 0

    def allocations_of_user(self, license_type: LicenseType, user_guid: str) -> list[Allocation]:
        self.reads += 1
        assert (license_type, user_guid) == ("professional", OWNER)
        if isinstance(self.held, Exception):
            raise self.held
        return self.held


def recheck(source: Professional, idle: float = 1, owner: User | None = None) -> tuple[str, str]:
    decision = fresh_recheck(source, rules(**ON), HOLDERS, lambda: NOW)(
        allocation("analyzer", idle=idle), owner or user())
    return decision.action, decision.reason


def test_the_recheck_releases_while_the_professional_allocation_is_still_held() -> None:
    source = Professional([allocation("professional")])
    assert recheck(source) == ("release", REDUNDANT) and source.reads == 1


def test_the_recheck_does_not_release_once_the_professional_allocation_is_gone() -> None:
    assert recheck(Professional([]))[0] == "keep"
    assert recheck(Professional([allocation("professional", quarantined=True)]))[0] == "keep"


def test_a_failed_read_fails_that_allocation_only_unless_inactivity_releases_it() -> None:
    action, reason = recheck(Professional(QrsHttpError("GET", "/qrs/license/professionalaccesstype/full", 503, "busy")))
    assert action == "failed" and reason.startswith("re-read of the owner's professional allocations failed")
    assert recheck(Professional(ValueError("boom")), idle=90)[0] == "release"


def test_the_recheck_reads_nothing_for_other_allocations() -> None:
    source = Professional(AssertionError("no read expected"))
    decision = fresh_recheck(source, rules(**ON), HOLDERS, lambda: NOW)(
        allocation("professional", idle=90), user())
    assert decision.action == "release" and source.reads == 0
