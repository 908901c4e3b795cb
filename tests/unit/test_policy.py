"""The release policy, table-driven: every rule, both sides of each boundary, null lists, multi-valued properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from butler import config
from butler.licenses.model import RunMode
from butler.licenses.policy import Rules, decide, decide_on_request, needs_user_record, protections
from butler.qrs.models import Allocation, User

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def rules(**management: Any) -> Rules:
    return Rules.from_config(config.parse({"Butler": {"licenseManagement": management}}).Butler.licenseManagement)


def ago(days: float | None) -> str | None:
    return None if days is None else (NOW - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def allocation(kind: str = "professional", *, idle: float | None = 40, created: float = 200, quarantined: bool = False,
               directory: str = "CORP", user_id: str = "jdoe", owner: bool = True) -> Allocation:
    data: dict[str, Any] = {
        "id": "6f1c2a52-3b7e-4d1f-9a43-0a9b0c1d2e3f", "createdDate": ago(created),
        "lastUsed": ago(idle) if idle is not None else "1753-01-01T00:00:00.000Z", "quarantined": quarantined,
        "user": {"id": "0e0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "userDirectory": directory, "userId": user_id,
                 "name": "Jane Doe"} if owner else None,
        "deletedUserDirectory": None if owner else directory, "deletedUserId": None if owner else user_id,
    }
    return Allocation.model_validate(data).model_copy(update={"licenseType": kind})


def user(directory: str = "CORP", user_id: str = "jdoe", *, tags: list[str] | None = None,
         props: dict[str, list[str]] | None = None, inactive: bool = False, blacklisted: bool = False,
         removed: bool = False) -> User:
    return User.model_validate({
        "id": "0e0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "userDirectory": directory, "userId": user_id,
        "inactive": inactive, "blacklisted": blacklisted, "removedExternally": removed,
        "tags": None if tags is None else [{"name": t} for t in tags],
        "customProperties": None if props is None else [
            {"value": v, "definition": {"name": name}} for name, values in props.items() for v in values],
    })


EXCLUSIONS: dict[str, Any] = {
    "users": [{"userDirectory": "DOMAIN", "userId": "Admin.User"}],
    "tags": ["VIP-User", "Always-Licensed"],
    "customProperties": [{"name": "LicenseProtection", "value": "Keep"}, {"name": "Department", "value": "IT"}],
    "userDirectories": ["ADMIN_DOMAIN", "SERVICE_ACCOUNTS"],
}

# (case id, management config, allocation kwargs, user kwargs or None for "no user record", action, reason start)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any] | None, str, str]] = [
    # 1. skip
    ("professional disabled", {"release": {"professional": {"enable": False}}}, {}, {}, "skip",
     "release.professional.enable: false"),
    ("analyzer disabled", {"release": {"analyzer": {"enable": False}}}, {"kind": "analyzer", "idle": 90}, {},
     "skip", "release.analyzer.enable: false"),
    ("other type disabled", {"release": {"analyzer": {"enable": False}}}, {}, {}, "release", "inactive 40.0 days"),
    ("quarantined by Qlik", {}, {"quarantined": True}, {}, "skip", "quarantined by Qlik"),
    ("no user record", {}, {}, None, "skip", "user record not found"),
    # 2. inactivity, exact and in UTC, both sides
    ("29.5 days idle, 30-day threshold", {}, {"idle": 29.5}, {}, "keep", "last activity 29.5 days ago"),
    ("30.5 days idle, 30-day threshold", {}, {"idle": 30.5}, {}, "release", "inactive 30.5 days"),
    ("exactly at the threshold", {}, {"idle": 30}, {}, "release", "inactive 30.0 days"),
    ("one second below the threshold", {}, {"idle": 30 - 1 / 86400}, {}, "keep", "last activity"),
    ("analyzer 44.9 days, default 45", {}, {"kind": "analyzer", "idle": 44.9}, {}, "keep", "last activity"),
    ("analyzer 45.1 days, default 45", {}, {"kind": "analyzer", "idle": 45.1}, {}, "release", "inactive 45.1"),
    ("custom threshold 10 days", {"release": {"professional": {"inactivityDays": 10}}}, {"idle": 10.2}, {},
     "release", "inactive 10.2 days >= release.professional.inactivityDays 10"),
    ("never used, allocated 40 days ago", {}, {"idle": None, "created": 40}, {}, "release",
     "never used; allocated 40.0 days ago >= release.professional.inactivityDays 30"),
    ("never used, allocated 20 days ago", {}, {"idle": None, "created": 20}, {}, "keep",
     "never used; allocated 20.0 days ago, below"),
    # 3. protection rules
    ("grace period: allocated 6.9 days ago", {"release": {"professional": {"inactivityDays": 5}}},
     {"idle": None, "created": 6.9}, {}, "protected", "quarantine.gracePeriod"),
    ("grace period: allocated 7.1 days ago", {"release": {"professional": {"inactivityDays": 5}}},
     {"idle": None, "created": 7.1}, {}, "release", "never used; allocated 7.1"),
    ("grace period 0 disables it", {"quarantine": {"gracePeriod": 0}, "release": {"professional": {
        "inactivityDays": 1}}}, {"idle": None, "created": 2}, {}, "release", "never used; allocated 2.0"),
    ("excluded user, other case", {"exclusions": EXCLUSIONS}, {"directory": "domain", "user_id": "ADMIN.user"},
     {"directory": "domain", "user_id": "ADMIN.user"}, "protected", "exclusions.users: domain\\ADMIN.user"),
    ("same user id, other directory", {"exclusions": EXCLUSIONS}, {"directory": "CORP", "user_id": "admin.user"},
     {"directory": "CORP", "user_id": "admin.user"}, "release", "inactive"),
    ("excluded tag, other case", {"exclusions": EXCLUSIONS}, {}, {"tags": ["Sales", "vip-user"]}, "protected",
     "exclusions.tags: vip-user"),
    ("tag not excluded", {"exclusions": EXCLUSIONS}, {}, {"tags": ["VIP"]}, "release", "inactive"),
    ("custom property, one of several values", {"exclusions": EXCLUSIONS}, {},
     {"props": {"department": ["Sales", "it"]}}, "protected", "exclusions.customProperties: department=it"),
    ("custom property, other value", {"exclusions": EXCLUSIONS}, {}, {"props": {"Department": ["Sales", "HR"]}},
     "release", "inactive"),
    ("custom property value under another name", {"exclusions": EXCLUSIONS}, {}, {"props": {"Role": ["IT"]}},
     "release", "inactive"),
    ("excluded directory, other case", {"exclusions": EXCLUSIONS}, {"directory": "Admin_Domain"},
     {"directory": "Admin_Domain"}, "protected", "exclusions.userDirectories: Admin_Domain"),
    ("deleted user in an excluded directory", {"exclusions": EXCLUSIONS},
     {"directory": "SERVICE_ACCOUNTS", "owner": False}, None, "protected", "exclusions.userDirectories"),
    ("deleted user, no rule", {"exclusions": EXCLUSIONS}, {"owner": False}, None, "release", "inactive"),
    ("protectActiveUsers, active user", {"exclusions": {"userStatus": {"protectActiveUsers": True}}}, {},
     {"inactive": False}, "protected", "exclusions.userStatus.protectActiveUsers: inactive=false"),
    ("protectActiveUsers, inactive user", {"exclusions": {"userStatus": {"protectActiveUsers": True}}}, {},
     {"inactive": True}, "release", "inactive"),
    ("protectNonBlockedUsers, not blocked", {"exclusions": {"userStatus": {"protectNonBlockedUsers": True}}}, {},
     {"blacklisted": False}, "protected", "exclusions.userStatus.protectNonBlockedUsers: blacklisted=false"),
    ("protectNonBlockedUsers, blocked", {"exclusions": {"userStatus": {"protectNonBlockedUsers": True}}}, {},
     {"blacklisted": True}, "release", "inactive"),
    ("protectInternalUsers, internal", {"exclusions": {"userStatus": {"protectInternalUsers": True}}}, {},
     {"removed": False}, "protected", "exclusions.userStatus.protectInternalUsers: removedExternally=false"),
    ("protectInternalUsers, removed externally", {"exclusions": {"userStatus": {"protectInternalUsers": True}}},
     {}, {"removed": True}, "release", "inactive"),
    ("status flags ignored when not enabled", {}, {}, {"inactive": False}, "release", "inactive"),
    # null lists are empty lists, for both license types
    ("null exclusion lists, professional", {"exclusions": {"users": None, "tags": None, "customProperties": None,
                                                           "userDirectories": None}}, {}, {}, "release", "inactive"),
    ("null exclusion lists, analyzer", {"exclusions": {"users": None, "tags": None, "customProperties": None,
                                                       "userDirectories": None}},
     {"kind": "analyzer", "idle": 50}, {}, "release", "inactive"),
    ("null exclusions section", {"exclusions": None}, {"kind": "analyzer", "idle": 50}, {}, "release", "inactive"),
    ("user with null tags and properties", {"exclusions": EXCLUSIONS}, {}, {"tags": None, "props": None},
     "release", "inactive"),
]


@pytest.mark.parametrize(("management", "alloc", "owner", "action", "reason"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_decide(management: dict[str, Any], alloc: dict[str, Any], owner: dict[str, Any] | None, action: str,
                reason: str) -> None:
    decision = decide(allocation(**alloc), None if owner is None else user(**owner), rules(**management), NOW)
    assert (decision.action, decision.reason[: len(reason)]) == (action, reason)


def test_dry_run_says_would_release_and_changes_nothing_else() -> None:
    live = RunMode(dry_run=False).apply(decide(allocation(), user(), rules(), NOW))
    dry = RunMode(dry_run=True).apply(decide(allocation(), user(), rules(), NOW))
    assert (live.action, dry.action) == ("release", "would-release")
    assert live.reason == dry.reason == "inactive 40.0 days >= release.professional.inactivityDays 30"
    protected = decide(allocation(), user(tags=["VIP-User"]), rules(exclusions=EXCLUSIONS), NOW)
    assert RunMode(dry_run=True).apply(protected) == protected  # only a release changes


@pytest.mark.parametrize(("enabled", "configured", "forced", "dry", "why"), [
    (False, False, False, True, "licenseManagement.enable: false"),
    (True, True, None, True, "licenseManagement.dryRun"),
    (True, False, None, False, "licenseManagement.dryRun"),
    (True, False, True, True, "asked by the caller"),
])
def test_the_run_mode_is_resolved_once(enabled: bool, configured: bool, forced: bool | None, dry: bool,
                                       why: str) -> None:
    assert RunMode.resolve(enabled=enabled, configured_dry_run=configured, forced_dry_run=forced) == RunMode(dry, why)


def test_report_row_has_the_contract_fields() -> None:
    row = RunMode(dry_run=True).apply(decide(allocation(idle=40.25), user(), rules(), NOW)).to_report()
    assert row == {"userDirectory": "CORP", "userId": "jdoe", "licenseType": "professional",
                   "allocationId": "6f1c2a52-3b7e-4d1f-9a43-0a9b0c1d2e3f", "lastUsed": "2026-05-06T06:00:00.000Z",
                   "daysInactive": 40.25, "action": "would-release",
                   "reason": "inactive 40.2 days >= release.professional.inactivityDays 30"}


def test_every_matching_rule_is_listed() -> None:
    found = protections(allocation(directory="ADMIN_DOMAIN"),
                        user("ADMIN_DOMAIN", tags=["VIP-User"], props={"LicenseProtection": ["keep"]}),
                        rules(exclusions=EXCLUSIONS), NOW)
    assert found == ["exclusions.userDirectories: ADMIN_DOMAIN", "exclusions.tags: VIP-User",
                     "exclusions.customProperties: LicenseProtection=keep"]


@given(idle=st.floats(min_value=0, max_value=400, allow_nan=False), threshold=st.integers(min_value=1, max_value=365))
def test_threshold_is_exact(idle: float, threshold: int) -> None:
    decision = decide(allocation(idle=idle), user(), rules(release={"professional": {"inactivityDays": threshold}}),
                      NOW)
    assert decision.action == ("keep" if (NOW - (NOW - timedelta(days=idle))) < timedelta(days=threshold)
                               else "release")


@pytest.mark.parametrize(("alloc", "management", "needed"), [
    ({"idle": 40}, {}, True),
    ({"idle": 20}, {}, False),
    ({"idle": 40, "quarantined": True}, {}, False),
    ({"idle": 40}, {"release": {"professional": {"enable": False}}}, False),
    ({"idle": 40, "owner": False}, {}, False),
    ({"kind": "analyzer", "idle": 40}, {}, False),
])
def test_needs_user_record_only_past_the_threshold(alloc: dict[str, Any], management: dict[str, Any],
                                                   needed: bool) -> None:
    assert needs_user_record(allocation(**alloc), rules(**management), NOW) is needed


@pytest.mark.parametrize(("force", "action", "reason"), [
    (False, "protected", "exclusions.tags: VIP-User"),
    (True, "release", "released on request (force overrides exclusions.tags: VIP-User)"),
])
def test_release_on_request(force: bool, action: str, reason: str) -> None:
    decision = decide_on_request(allocation(idle=2), user(tags=["VIP-User"]), rules(exclusions=EXCLUSIONS), NOW,
                                 force=force)
    assert (decision.action, decision.reason) == (action, reason)


# --- what can never be released, whatever the rules (fail closed) -------------------------------------------------


@pytest.mark.parametrize(("change", "reason"), [
    ({"id": "../../user/0e0f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"}, "allocation id '../../user/0e0f1a2b-3c4d-4e5f-8a9b"
                                                               "-0c1d2e3f4a5b' is not a GUID: never requested"),
    ({"id": ""}, "allocation id '' is not a GUID: never requested"),
    ({"user": None, "deletedUserId": None, "deletedUserDirectory": None},
     "owner unknown: the allocation names no user and no deleted user"),
    ({"user": None, "deletedUserId": "jdoe", "deletedUserDirectory": None},
     "owner unknown: the allocation names no user and no deleted user"),
    ({"problem": "lastUsed: unreadable date '2026-13-45'"}, "unreadable record: lastUsed: unreadable date "
                                                            "'2026-13-45'"),
])
def test_unreleasable_allocations_are_skipped_with_the_reason(change: dict[str, Any], reason: str) -> None:
    odd = allocation(idle=400).model_copy(update=change)
    for decision in (decide(odd, user(), rules(), NOW),
                     decide_on_request(odd, user(), rules(), NOW, force=True)):
        assert (decision.action, decision.reason) == ("skip", reason)
    assert not needs_user_record(odd, rules(), NOW)


def test_an_owner_without_a_guid_is_skipped() -> None:
    odd = allocation(idle=400)
    odd = odd.model_copy(update={"user": odd.user.model_copy(update={"id": "jdoe"})})  # type: ignore[union-attr]
    decision = decide(odd, user(), rules(), NOW)
    assert decision.action == "skip" and "has no GUID id" in decision.reason


def test_a_user_record_of_another_owner_is_not_used() -> None:
    other = user().model_copy(update={"id": "11111111-2222-4333-8444-555555555555"})
    decision = decide(allocation(idle=400), other, rules(), NOW)
    assert decision.action == "skip" and "does not match the allocation's owner" in decision.reason
    renamed = user(user_id="someone.else")  # the owner's id, another user's name: a swapped row
    decision = decide(allocation(idle=400), renamed, rules(exclusions=EXCLUSIONS), NOW)
    assert decision.action == "skip" and "does not match the allocation's owner CORP\\jdoe" in decision.reason


@given(st.text(max_size=60))
def test_no_id_but_a_guid_is_ever_released(odd_id: str) -> None:
    import uuid

    try:
        uuid.UUID(odd_id)
        return
    except ValueError:
        pass
    decision = decide(allocation(idle=400).model_copy(update={"id": odd_id}), user(), rules(), NOW)
    assert decision.action == "skip"
