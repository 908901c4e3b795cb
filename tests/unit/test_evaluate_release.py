"""The release executor: re-read and re-decide before each DELETE, isolation, 404s, audit order, bounded pool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from butler import config
from butler.licenses.policy import Decision, Rules, decide
from butler.licenses.release import GONE_ON_DELETE, GONE_ON_READ, ReleaseExecutor
from butler.qrs import QrsUnavailable
from butler.qrs.models import Allocation, User
from tests.support.evaluate_fakes import (
    FakeQrs,
    MemoryAudit,
    MemoryInflux,
    MemoryNotifier,
    make_allocation,
    make_user,
    qrs_date,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
RULES = Rules.from_config(config.parse({"Butler": {"licenseManagement": {"enable": True}}}).Butler.licenseManagement)


def recheck(fresh: Allocation, user: User | None) -> Decision:
    return decide(fresh, user, RULES, NOW, dry_run=False)


def site(count: int = 4, idle: float = 60) -> tuple[FakeQrs, list[Decision]]:
    users = [make_user(f"user{i}") for i in range(count)]
    allocations = [make_allocation(u, NOW, idle) for u in users]
    return FakeQrs(allocations, users), [decide(a, u, RULES, NOW, dry_run=False) for a, u in zip(allocations, users,
                                                                                                 strict=True)]


def executor(client: FakeQrs, audit: MemoryAudit | None = None, notifier: MemoryNotifier | None = None, *,
             dry_run: bool = False, concurrency: int = 4, influx: MemoryInflux | None = None) -> ReleaseExecutor:
    return ReleaseExecutor(client, audit or MemoryAudit(), notifier, actor="tester", run_id="run-1",
                           concurrency=concurrency, dry_run=dry_run, clock=lambda: NOW, influx=influx)


def test_releases_each_candidate_after_a_reread_and_keeps_input_order() -> None:
    client, decisions = site(3)
    keep = decide(make_allocation(make_user("active"), NOW, 2), None, RULES, NOW, dry_run=False)
    results = executor(client).release([decisions[0], keep, decisions[1], decisions[2]], recheck)
    assert [r.action for r in results] == ["release", "keep", "release", "release"]
    assert [r.allocation.id for r in results] == [decisions[0].allocation.id, keep.allocation.id,
                                                  decisions[1].allocation.id, decisions[2].allocation.id]
    for d in decisions:  # the re-read precedes the DELETE of the same allocation
        ids = [path for _, path in client.calls if path.endswith(d.allocation.id)]
        assert [m for m, p in client.calls if p in ids] == ["GET", "DELETE"]
    assert not client.store


def test_a_user_who_came_back_is_not_released() -> None:
    client, decisions = site(2)
    back = decisions[0].allocation
    client.refreshed[back.id] = back.model_copy(update={"lastUsed": NOW - timedelta(hours=3)})
    results = executor(client).release(decisions, recheck)
    assert [r.action for r in results] == ["keep", "release"]
    assert client.deletes() == [decisions[1].allocation.id]
    assert results[0].reason.startswith("last activity 0.1 days ago")


def test_failures_are_isolated_and_recorded() -> None:
    client, decisions = site(4)
    broken, unreadable = decisions[1].allocation.id, decisions[2].allocation.id
    client.delete_errors[broken] = QrsUnavailable("DELETE", "/qrs/license/professionalaccesstype/x", 503, "busy")
    client.read_errors[unreadable] = TimeoutError("read timed out")
    audit = MemoryAudit()
    results = executor(client, audit).release(decisions, recheck)
    assert [r.action for r in results] == ["release", "failed", "failed", "release"]
    assert results[1].reason == "DELETE /qrs/license/professionalaccesstype/x: HTTP 503: busy"
    assert results[2].reason == "TimeoutError: read timed out"
    outcomes = {r["allocationId"]: r["action"] for r in audit.of_kind("release-outcome")}
    assert outcomes == {d.allocation.id: r.action for d, r in zip(decisions, results, strict=True)}


def test_already_gone_is_recorded_not_an_error() -> None:
    client, decisions = site(2)
    del client.store[decisions[0].allocation.id]  # released by someone else since the inventory
    client.refreshed[decisions[1].allocation.id] = decisions[1].allocation  # still readable, gone by the DELETE
    del client.store[decisions[1].allocation.id]
    results = executor(client).release(decisions, recheck)
    assert [(r.action, r.reason) for r in results] == [("skip", GONE_ON_READ), ("skip", GONE_ON_DELETE)]


def test_intent_is_audited_before_the_delete_and_outcome_after() -> None:
    client, decisions = site(1)
    audit = MemoryAudit()
    executor(client, audit).release(decisions, recheck)
    kinds = [(r["kind"], r["action"]) for r in audit.records]
    assert kinds == [("release-intent", "release"), ("release-outcome", "release")]
    assert audit.records[0]["reason"].startswith("inactive 60.0 days")
    assert {r["actor"] for r in audit.records} == {"tester"} and {r["runId"] for r in audit.records} == {"run-1"}


def test_no_delete_without_an_audit_trail() -> None:
    client, decisions = site(2)
    results = executor(client, MemoryAudit(fail_kinds=("release-intent",))).release(decisions, recheck)
    assert [r.action for r in results] == ["failed", "failed"]
    assert results[0].reason == "OSError: audit store unavailable"
    assert client.deletes() == []


def test_notice_per_release_and_a_lost_notice_is_not_a_failure() -> None:
    client, decisions = site(3)
    notifier = MemoryNotifier()
    executor(client, notifier=notifier).release(decisions, recheck)
    assert sorted(n[0] for n in notifier.notices) == sorted(d.allocation.id for d in decisions)
    client2, decisions2 = site(2)
    results = executor(client2, notifier=MemoryNotifier(fail=True)).release(decisions2, recheck)
    assert [r.action for r in results] == ["release", "release"]


def test_concurrency_is_bounded() -> None:
    users = [make_user(f"u{i}") for i in range(12)]
    allocations = [make_allocation(u, NOW, 90) for u in users]
    client = FakeQrs(allocations, users, delay=0.05)
    decisions = [decide(a, u, RULES, NOW, dry_run=False) for a, u in zip(allocations, users, strict=True)]
    executor(client, concurrency=3).release(decisions, recheck)
    assert client.max_active == 3
    assert len(client.deletes()) == 12


def test_dry_run_touches_nothing_and_writes_dry_run_events() -> None:
    client, decisions = site(2)
    dry = [d.with_outcome("would-release") for d in decisions]
    influx, audit, notifier = MemoryInflux(), MemoryAudit(), MemoryNotifier()
    results = executor(client, audit, notifier, dry_run=True, influx=influx).release(dry, recheck)
    assert [r.action for r in results] == ["would-release", "would-release"]
    assert client.calls == [] and audit.records == [] and notifier.notices == []
    assert len(influx.lines) == 2 and all("dry_run=true" in line for line in influx.lines)


def test_release_events_carry_the_contract_tags_and_fields() -> None:
    client, decisions = site(1)
    influx = MemoryInflux()
    executor(client, influx=influx).release(decisions, recheck)
    allocation_id = decisions[0].allocation.id
    assert influx.lines == [
        "license_release,dry_run=false,license_type=professional,user_directory=CORP,user_id=CORP\\user0 "
        f'allocation_id="{allocation_id}",days_inactive=60 {int(NOW.timestamp())}'
    ]


@pytest.mark.parametrize("influx", [None, MemoryInflux(fail=True)])
def test_releases_stand_without_influx(influx: MemoryInflux | None) -> None:
    client, decisions = site(2)
    assert [r.action for r in executor(client, influx=influx).release(decisions, recheck)] == ["release", "release"]


def test_recheck_decides_on_the_fresh_allocation() -> None:
    client, decisions = site(1)
    fresh = decisions[0].allocation.model_copy(update={"quarantined": True, "quarantineEnd": NOW})
    client.refreshed[fresh.id] = fresh
    seen: list[Allocation] = []

    def spy(allocation: Allocation, user: User | None) -> Decision:
        seen.append(allocation)
        return recheck(allocation, user)

    results = executor(client).release(decisions, spy)
    assert seen == [fresh]
    assert (results[0].action, results[0].reason) == ("skip", f"quarantined by Qlik until {qrs_date(NOW)}")
    assert client.deletes() == []
