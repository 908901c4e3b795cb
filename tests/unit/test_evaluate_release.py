"""The release executor: re-read allocation and owner before each DELETE, confirmed outcomes after lost answers,
isolation, 404s, audit order (intents open, then closed), growing chunks, a bounded pool, the lock's life."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from butler import config
from butler.licenses.model import RunContext, RunMode
from butler.licenses.policy import Decision, Rules, decide
from butler.licenses.release import GONE_ON_DELETE, GONE_ON_READ, LOCK_LOST, ReleaseExecutor, growing_chunks
from butler.qrs import QrsHttpError, QrsUnavailable, QrsUnreachable
from butler.qrs.models import Allocation, TagCondensed, User
from tests.support.evaluate_fakes import FakeQrs, MemoryAudit, MemoryInflux, make_allocation, make_user, qrs_date

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
RULES = Rules.from_config(config.parse({"Butler": {"licenseManagement": {
    "enable": True, "exclusions": {"tags": ["VIP-User"]}}}}).Butler.licenseManagement)


def recheck(fresh: Allocation, user: User | None) -> Decision:
    return decide(fresh, user, RULES, NOW)


def site(count: int = 4, idle: float = 60) -> tuple[FakeQrs, list[Decision]]:
    users = [make_user(f"user{i}") for i in range(count)]
    allocations = [make_allocation(u, NOW, idle) for u in users]
    return FakeQrs(allocations, users), [decide(a, u, RULES, NOW) for a, u in zip(allocations, users,
                                                                                                 strict=True)]


def executor(client: FakeQrs, audit: MemoryAudit | None = None, *, dry_run: bool = False, concurrency: int = 4,
             influx: MemoryInflux | None = None, alive: Callable[[], bool] = lambda: True) -> ReleaseExecutor:
    run = RunContext("run-1", "tester", RunMode(dry_run), lambda: NOW, alive)
    return ReleaseExecutor(client, audit or MemoryAudit(), run, concurrency=concurrency, influx=influx)


def test_releases_each_candidate_after_a_reread_and_keeps_input_order() -> None:
    client, decisions = site(3)
    keep = decide(make_allocation(make_user("active"), NOW, 2), None, RULES, NOW)
    results = executor(client).release([decisions[0], keep, decisions[1], decisions[2]], recheck)
    assert [r.action for r in results] == ["release", "keep", "release", "release"]
    assert [r.allocation.id for r in results] == [decisions[0].allocation.id, keep.allocation.id,
                                                  decisions[1].allocation.id, decisions[2].allocation.id]
    assert not client.store
    # chunks of 1 then 2: each chunk re-reads allocations and owners (one request each) before its DELETEs
    kinds = [path.split("?")[-1] if "?" in path else method for method, path in client.calls]
    assert kinds == ["ids", "POST", "DELETE", "ids", "POST", "DELETE", "DELETE"]


def test_chunks_grow_to_fifty() -> None:
    sizes = [len(c) for c in growing_chunks(list(range(300)))]
    assert sizes[:7] == [1, 2, 4, 8, 16, 32, 50] and set(sizes[6:-1]) == {50} and sum(sizes) == 300


def test_a_user_who_came_back_is_not_released() -> None:
    client, decisions = site(2)
    back = decisions[0].allocation
    client.refreshed[back.id] = back.model_copy(update={"lastUsed": NOW - timedelta(hours=3)})
    results = executor(client).release(decisions, recheck)
    assert [r.action for r in results] == ["keep", "release"]
    assert client.deletes() == [decisions[1].allocation.id]
    assert results[0].reason.startswith("last activity 0.1 days ago")


def test_an_owner_protected_after_the_listing_is_not_released() -> None:
    client, decisions = site(2)
    owner = decisions[1].user
    assert owner is not None
    client.refreshed_users[owner.id] = owner.model_copy(update={"tags": [TagCondensed(name="vip-user")]})
    results = executor(client).release(decisions, recheck)
    assert [r.action for r in results] == ["release", "protected"]
    assert results[1].reason == "exclusions.tags: vip-user"
    assert client.deletes() == [decisions[0].allocation.id]


def test_an_owner_missing_on_reread_is_not_released() -> None:
    client, decisions = site(1)
    client.user_list = []
    results = executor(client).release(decisions, recheck)
    assert results[0].action == "skip" and "user record not found" in results[0].reason
    assert client.deletes() == []


def test_failures_are_isolated_and_recorded() -> None:
    client, decisions = site(4)
    broken = decisions[1].allocation.id
    client.delete_errors[broken] = QrsHttpError("DELETE", "/qrs/license/professionalaccesstype/x", 400, "refused")
    audit = MemoryAudit()
    results = executor(client, audit).release(decisions, recheck)
    assert [r.action for r in results] == ["release", "failed", "release", "release"]
    assert results[1].reason == "DELETE /qrs/license/professionalaccesstype/x: HTTP 400: refused"
    assert client.deletes().count(broken) == 1  # a refusal is final: no re-read, no second DELETE
    outcomes = {r["allocationId"]: r["action"] for r in audit.of_kind("release-outcome")}
    assert outcomes == {d.allocation.id: r.action for d, r in zip(decisions, results, strict=True)}


def test_a_lost_delete_answer_is_a_release_confirmed_by_reread() -> None:
    client, decisions = site(2)
    lost = decisions[0].allocation.id
    client.lost_deletes.add(lost)
    audit = MemoryAudit()
    results = executor(client, audit).release(decisions, recheck)
    assert [r.action for r in results] == ["release", "release"]
    assert "confirmed by re-read (gone)" in results[0].reason
    assert client.deletes().count(lost) == 1  # never sent twice
    assert audit.open_intents() == []


def test_a_delete_that_did_not_happen_gets_one_more_then_fails() -> None:
    client, decisions = site(1)
    target = decisions[0].allocation.id
    client.delete_errors[target] = QrsUnavailable("DELETE", "/qrs/x", 503, "busy")
    audit = MemoryAudit()
    results = executor(client, audit).release(decisions, recheck)
    assert results[0].action == "failed" and "HTTP 503" in results[0].reason
    assert client.deletes().count(target) == 2
    assert audit.open_intents() == []  # confirmed still there: the intent is closed as failed


def test_an_unknown_outcome_leaves_the_intent_open_for_reconcile() -> None:
    client, decisions = site(1)
    target = decisions[0].allocation.id
    client.delete_errors[target] = QrsUnreachable("DELETE: connection reset")
    calls = {"reads": 0}
    original = client.allocations_by_id

    def reads_fail_after_the_first(license_type, ids):  # type: ignore[no-untyped-def]
        calls["reads"] += 1
        if calls["reads"] > 1:
            raise QrsUnreachable("GET: connection reset")
        return original(license_type, ids)

    client.allocations_by_id = reads_fail_after_the_first  # type: ignore[method-assign]
    audit = MemoryAudit()
    results = executor(client, audit).release(decisions, recheck)
    assert results[0].action == "failed" and results[0].reason.startswith("outcome unknown")
    assert [r["allocationId"] for r in audit.open_intents()] == [target]
    assert audit.of_kind("release-outcome")[0]["unconfirmed"] is True


def test_already_gone_is_recorded_not_an_error() -> None:
    client, decisions = site(2)
    del client.store[decisions[0].allocation.id]  # released by someone else since the inventory
    client.refreshed[decisions[1].allocation.id] = decisions[1].allocation  # still readable, gone by the DELETE
    del client.store[decisions[1].allocation.id]
    results = executor(client).release(decisions, recheck)
    assert [(r.action, r.reason) for r in results] == [("skip", GONE_ON_READ), ("skip", GONE_ON_DELETE)]


def test_intent_is_audited_open_before_the_delete_and_closed_with_the_outcome() -> None:
    client, decisions = site(1)
    audit = MemoryAudit()
    executor(client, audit).release(decisions, recheck)
    kinds = [(r["kind"], r["action"], r.get("open")) for r in audit.records]
    assert kinds == [("release-intent", "release", True), ("release-outcome", "release", None),
                     ("release-intent", "release", False)]
    assert audit.records[0]["reason"].startswith("inactive 60.0 days")
    assert {r["actor"] for r in audit.records} == {"tester"} and {r["runId"] for r in audit.records} == {"run-1"}


def test_no_delete_without_an_audit_trail() -> None:
    client, decisions = site(2)
    results = executor(client, MemoryAudit(fail_kinds=("release-intent",))).release(decisions, recheck)
    assert [r.action for r in results] == ["failed", "failed"]
    assert results[0].reason == "audit of the intent failed: OSError: audit store unavailable"
    assert client.deletes() == []


def test_a_failed_reread_releases_nothing() -> None:
    client, decisions = site(2)
    client.read_errors[decisions[0].allocation.id] = QrsUnreachable("GET: no answer")
    results = executor(client).release(decisions, recheck)
    assert results[0].action == "failed" and results[0].reason.startswith("re-read before release failed")
    assert decisions[0].allocation.id not in client.deletes()


def test_a_lost_lock_defers_the_rest() -> None:
    client, decisions = site(5)
    checks = iter([True, False])
    results = executor(client, alive=lambda: next(checks, False)).release(decisions, recheck)
    assert [r.action for r in results] == ["release", *["deferred"] * 4]
    assert results[1].reason == LOCK_LOST and len(client.deletes()) == 1


def test_concurrency_is_bounded() -> None:
    users = [make_user(f"u{i}") for i in range(24)]
    allocations = [make_allocation(u, NOW, 90) for u in users]
    client = FakeQrs(allocations, users, delay=0.05)
    decisions = [decide(a, u, RULES, NOW) for a, u in zip(allocations, users, strict=True)]
    executor(client, concurrency=3).release(decisions, recheck)
    assert client.max_active == 3
    assert len(client.deletes()) == 24


def test_dry_run_touches_nothing_and_writes_dry_run_events() -> None:
    client, decisions = site(2)
    influx, audit = MemoryInflux(), MemoryAudit()
    results = executor(client, audit, dry_run=True, influx=influx).release(decisions, recheck)
    assert [r.action for r in results] == ["would-release", "would-release"]
    assert client.calls == [] and audit.records == []
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


@pytest.mark.parametrize("fail", [False, True])
def test_releases_stand_without_influx_and_a_failed_write_is_reported(fail: bool) -> None:
    client, decisions = site(2)
    run = executor(client, influx=MemoryInflux(fail=True) if fail else None)
    assert [r.action for r in run.release(decisions, recheck)] == ["release", "release"]
    assert (run.influx_error is not None) == fail


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
