"""One evaluation run over an in-memory QRS: decisions, dry run, throttles, breaker, leftovers, audit records,
report, metrics, digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from butler import config
from butler.licenses.evaluate import (
    EvaluationReport,
    format_table,
    publish_metrics,
    run_evaluation,
)
from butler.licenses.inventory import USER_FILTER_MAX, Inventory, fetch_users
from butler.qrs import QrsUnavailable
from butler.qrs.models import UserCondensed
from tests.support.evaluate_fakes import FakeQrs, MemoryAudit, MemoryNotifier, make_allocation, make_user

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def make_site() -> FakeQrs:
    """8 professional and 8 analyzer allocations; one of each to release (12.5% of its type)."""
    users, allocations = [], []

    def add(user_id: str, idle: float, kind: Any = "professional", **fields: Any) -> None:
        user = make_user(user_id, **fields.pop("user", {}))
        users.append(user)
        allocations.append(make_allocation(user, NOW, idle, kind, **fields))

    add("p_idle", 60)
    add("p_vip", 90, user={"tags": [{"name": "VIP-User"}]})
    for i in range(6):
        add(f"p_active{i}", 5)
    add("a_idle", 60, "analyzer")
    add("a_quarantined", 90, "analyzer", quarantined=True)
    for i in range(6):
        add(f"a_active{i}", 20, "analyzer")
    return FakeQrs(allocations, users)


def settings(**management: Any) -> config.Config:
    base = {"enable": True, "exclusions": {"tags": ["VIP-User"]}}
    return config.parse({"Butler": {"licenseManagement": {**base, **management}}})


def evaluate(client: FakeQrs, audit: MemoryAudit | None = None, dry_run: bool | None = None,
             notifier: MemoryNotifier | None = None, **management: Any) -> EvaluationReport:
    return run_evaluation(settings(**management), client, audit=audit or MemoryAudit(), notifier=notifier,
                          influx=None, dry_run=dry_run, now=NOW, actor="tester")


def actions(report: EvaluationReport) -> dict[str, str]:
    return {d.user_id: d.action for d in report.decisions if not d.user_id.startswith(("p_active", "a_active"))}


def test_live_run_releases_exactly_the_inactive_unprotected() -> None:
    client, audit = make_site(), MemoryAudit()
    report = evaluate(client, audit)
    assert actions(report) == {"p_idle": "release", "p_vip": "protected", "a_idle": "release",
                               "a_quarantined": "skip"}
    assert report.summary() == {"evaluated": 16, "released": 2, "wouldRelease": 0, "protected": 1, "keep": 12,
                                "skip": 1, "failed": 0, "deferred": 0, "warned": 0, "wouldWarn": 0,
                                "noticePending": 0}
    released = {d.allocation.id for d in report.decisions if d.action == "release"}
    assert set(client.deletes()) == released
    assert not report.aborted and not report.cap_exceeded


def test_dry_run_sends_no_delete_and_no_reread() -> None:
    client = make_site()
    report = evaluate(client, dry_run=True)
    assert actions(report)["p_idle"] == actions(report)["a_idle"] == "would-release"
    assert sorted(client.calls) == [("GET", "license/analyzeraccesstype/full"),
                                    ("GET", "license/professionalaccesstype/full"), ("POST", "user/table")]
    assert report.to_json()["dryRun"] is True


@pytest.mark.parametrize(("configured", "forced", "dry"), [(True, None, True), (False, None, False),
                                                           (False, True, True)])
def test_dry_run_from_config_or_forced(configured: bool, forced: bool | None, dry: bool) -> None:
    client = make_site()
    report = evaluate(client, dry_run=forced, dryRun=configured)
    assert report.dry_run is dry
    assert bool(client.deletes()) is not dry


def test_a_rerun_releases_nothing_twice() -> None:
    client = make_site()
    evaluate(client)
    deletes = len(client.deletes())
    again = evaluate(client)
    assert again.summary()["released"] == 0 and len(client.deletes()) == deletes == 2
    assert again.summary()["evaluated"] == 14


@pytest.mark.parametrize(("throttle", "released", "reason"), [
    ({"maxReleasesPerRun": 1}, {"a_idle2"}, "deferred: licenseManagement.maxReleasesPerRun 1 reached"),
    ({"maxReleasePercent": 12.5}, {"p_idle", "a_idle2"},
     "deferred: licenseManagement.maxReleasePercent 12.5% of 9 analyzer allocations (1) reached"),
])
def test_throttles_release_the_longest_idle_and_defer_the_rest(throttle: dict[str, Any], released: set[str],
                                                               reason: str) -> None:
    client = make_site()
    user = make_user("a_idle2")
    client.user_list.append(user)
    longest = make_allocation(user, NOW, 300, "analyzer")
    client.store[longest.id] = longest
    report = evaluate(client, **throttle)
    assert {d.user_id for d in report.decisions if d.action == "release"} == released
    deferred = [d for d in report.decisions if d.action == "deferred"]
    assert deferred and all(d.reason.startswith(reason) for d in deferred)
    assert not report.aborted and not report.cap_exceeded
    assert report.summary()["deferred"] == len(deferred)
    assert evaluate(client, **throttle).summary()["released"] >= 1  # the deferred go in the next run


def test_throttles_in_a_dry_run_show_what_a_live_run_would_do() -> None:
    report = evaluate(make_site(), dry_run=True, maxReleasesPerRun=1)
    assert report.summary()["wouldRelease"] == 1 and report.summary()["deferred"] == 1


def test_breaker_stops_a_live_run() -> None:
    client, audit = make_site(), MemoryAudit()
    report = evaluate(client, audit, abortAbovePercent=10)
    assert report.aborted and report.cap_exceeded
    assert ("breaker: 1 of 8 professional allocations (12.5%) are candidates, more than "
            "licenseManagement.abortAbovePercent 10%") in (report.abort_reason or "")
    assert client.deletes() == [] and all(path.endswith(("/full", "/table")) for _, path in client.calls)
    assert actions(report)["p_idle"] == "deferred"
    assert all(d.reason.endswith("nothing was released") for d in report.decisions if d.action == "deferred")
    assert audit.of_kind("run")[-1]["status"] == "aborted"
    assert audit.of_kind("run")[-1]["aborted"] == report.abort_reason
    assert report.to_json()["aborted"] == report.abort_reason


def test_breaker_in_a_dry_run_completes_and_is_marked() -> None:
    report = evaluate(make_site(), dry_run=True, abortAbovePercent=10)
    assert report.cap_exceeded and not report.aborted
    body = report.to_json()
    assert body["capExceeded"] is True and "aborted" not in body
    assert "abortAbovePercent 10%" in body["capReason"]
    assert report.summary()["wouldRelease"] == 2


def test_breaker_at_exactly_the_percentage_lets_the_run_go() -> None:
    assert not evaluate(make_site(), abortAbovePercent=12.5).cap_exceeded


def test_leftovers_of_a_crashed_run_are_completed_first() -> None:
    client, audit = make_site(), MemoryAudit()
    gone = make_allocation(make_user("released_before_crash"), NOW, 90)
    still = next(a for a in client.store.values() if a.user and a.user.userId == "p_active0")
    for allocation, run in ((gone, "crashed"), (still, "crashed")):
        audit.write({"kind": "release-intent", "runId": run, "at": "2026-06-14T02:00:00.000Z", "actor": "scheduler",
                     "dryRun": False, "allocationId": allocation.id, "licenseType": "professional",
                     "userDirectory": "CORP", "userId": allocation.user.userId, "userName": None,  # type: ignore[union-attr]
                     "action": "release", "reason": "inactive", "daysInactive": 90, "lastUsed": None, "open": True})
    audit.write({"kind": "run", "runId": "crashed", "startedAt": "2026-06-14T02:00:00.000Z", "status": "running"})
    report = evaluate(client, audit)
    assert report.reconciled == {"released": 1, "failed": 1, "open": 0, "runs": 1}
    outcomes = {r["allocationId"]: r for r in audit.latest() if r["kind"] == "release-outcome"
                and r["runId"] == "crashed"}
    assert outcomes[gone.id]["action"] == "release" and "reconciled" in outcomes[gone.id]["reason"]
    assert outcomes[still.id]["action"] == "failed" and "interrupted" in outcomes[still.id]["reason"]
    assert audit.open_intents() == [] and audit.open_runs() == []
    assert next(r for r in audit.latest() if r.get("runId") == "crashed" and r["kind"] == "run")["status"] == \
        "interrupted"


def test_one_digest_per_run_names_releases_and_failures() -> None:
    client, notifier = make_site(), MemoryNotifier()
    broken = next(a.id for a in client.store.values() if a.user and a.user.userId == "a_idle")
    client.delete_errors[broken] = QrsUnavailable("DELETE", "/qrs/x", 503, "busy")
    report = evaluate(client, notifier=notifier)
    assert len(notifier.digests) == 1
    run_id, actor, released, failed = notifier.digests[0]
    assert (run_id, actor) == (report.run_id, "tester")
    assert len(released) == 1 and failed == [broken] and report.failed == 1


@pytest.mark.parametrize("dry_run", [None, False])
def test_disabled_management_is_a_dry_run_whatever_is_asked(dry_run: bool | None) -> None:
    client, audit = make_site(), MemoryAudit()
    report = run_evaluation(config.parse({"Butler": {"licenseManagement": {"dryRun": False}}}), client, audit=audit,
                            notifier=None, influx=None, now=NOW, dry_run=dry_run)
    assert (report.enabled, report.dry_run) == (False, True)
    enabled = run_evaluation(config.parse({"Butler": {"licenseManagement": {"enable": True, "dryRun": True}}}),
                             make_site(), audit=MemoryAudit(), notifier=None, influx=None, now=NOW)
    assert report.summary() == enabled.summary()
    assert report.summary()["wouldRelease"] > 0
    assert client.deletes() == []
    assert "dry run only" in format_table(report)


def test_audit_records_of_a_run() -> None:
    client, audit = make_site(), MemoryAudit()
    report = evaluate(client, audit)
    runs = audit.of_kind("run")
    assert [r["status"] for r in runs] == ["running", "finished"]
    assert runs[-1]["summary"] == report.summary() and runs[-1]["configHash"] == runs[0]["configHash"]
    decisions = {r["userId"]: r["action"] for r in audit.of_kind("decision")}
    assert decisions == {"p_idle": "release", "p_vip": "protected", "a_idle": "release", "a_quarantined": "skip"}
    intents = [r for r in audit.latest() if r["kind"] == "release-intent"]
    assert sorted(r["userId"] for r in intents) == ["a_idle", "p_idle"] and not any(r["open"] for r in intents)
    assert sorted(r["userId"] for r in audit.of_kind("release-outcome")) == ["a_idle", "p_idle"]
    assert {r["runId"] for r in audit.records} == {report.run_id}


def test_audit_disabled_still_records_releases() -> None:
    audit = MemoryAudit()
    evaluate(make_site(), audit, auditLog={"enable": False})
    assert audit.of_kind("decision") == []
    latest = audit.latest()
    assert [r["kind"] for r in latest].count("release-intent") == len(audit.of_kind("release-outcome")) == 2
    assert len(audit.of_kind("run")) == 2


def test_a_failing_inventory_marks_the_run_failed() -> None:
    client, audit = make_site(), MemoryAudit()

    def down(*args: Any, **kwargs: Any) -> None:
        raise QrsUnavailable("GET", "/qrs/license/professionalaccesstype/full", 503, "Service Unavailable")

    client.allocations = down  # type: ignore[method-assign]
    with pytest.raises(QrsUnavailable):
        evaluate(client, audit)
    assert audit.of_kind("run")[-1]["status"] == "failed"
    assert "HTTP 503" in audit.of_kind("run")[-1]["error"]


@pytest.mark.parametrize(("candidates", "filtered"), [(3, True), (USER_FILTER_MAX, True),
                                                      (USER_FILTER_MAX + 1, False)])
def test_users_are_fetched_in_one_request(candidates: int, filtered: bool) -> None:
    users = [make_user(f"u{i}") for i in range(candidates + 20)]
    allocations = [make_allocation(u, NOW, 60 if i < candidates else 1) for i, u in enumerate(users)]
    client = FakeQrs(allocations, users)
    report = evaluate(client, dry_run=True, maxReleasePercent=100, maxReleasesPerRun=1000)
    assert client.calls.count(("POST", "user/table")) == 1
    assert (client.user_filters[0] is not None) is filtered
    assert report.summary()["wouldRelease"] == candidates  # every candidate's user record was found


def test_report_json_matches_the_contract() -> None:
    report = evaluate(make_site(), dry_run=True)
    body = json.loads(json.dumps(report.to_json()))
    assert set(body) >= {"runId", "dryRun", "startedAt", "finishedAt", "summary", "decisions", "capExceeded"}
    assert body["startedAt"] == "2026-06-15T12:00:00.000Z"
    assert set(body["summary"]) >= {"evaluated", "released", "wouldRelease", "protected", "keep", "skip", "failed",
                                    "deferred"}
    assert len(body["decisions"]) == 16
    assert set(body["decisions"][0]) == {"userDirectory", "userId", "licenseType", "allocationId", "lastUsed",
                                         "daysInactive", "action", "reason"}


def test_readable_table() -> None:
    text = format_table(evaluate(make_site(), dry_run=True))
    lines = text.splitlines()
    assert lines[0].split() == ["USER", "NAME", "TYPE", "DAYS", "INACTIVE", "ACTION", "REASON"]
    vip = next(line for line in lines if "p_vip" in line)
    assert vip.split()[:5] == ["CORP\\p_vip", "P_Vip", "professional", "90.0", "protected"]
    assert vip.endswith("exclusions.tags: VIP-User")
    assert ("Totals: evaluated 16, released 0, wouldRelease 2, protected 1, keep 12, skip 1, failed 0, deferred 0, "
            "warned 0, wouldWarn 0, noticePending 0") in lines
    assert "Protected by rule: exclusions.tags 1" in lines
    assert lines[-1] == "Dry run: nothing was released."


def test_metrics_per_type_and_for_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    report = evaluate(make_site(), abortAbovePercent=10)
    capsys.readouterr()
    publish_metrics(report)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    by_type = {blob.get("LicenseType"): blob for blob in blobs}
    assert set(by_type) == {"professional", "analyzer", None}
    assert by_type[None]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert by_type["analyzer"]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "QlikLicenseButler"
    assert {k: by_type[None][k] for k in ("Released", "WouldRelease", "Protected", "FailedReleases",
                                          "EvaluationAborted")} == {
        "Released": [0.0], "WouldRelease": [0.0], "Protected": [1.0], "FailedReleases": [0.0],
        "EvaluationAborted": [1.0]}
    assert by_type[None]["Deferred"] == [2.0]
    assert by_type["professional"]["Protected"] == [1.0] and by_type["analyzer"]["Protected"] == [0.0]


def test_inventory_joins_owners_by_their_qrs_id_only() -> None:
    jdoe, other = make_user("jdoe"), make_user("other")
    by_id = make_allocation(jdoe, NOW, 60)
    no_id = make_allocation(other, NOW, 60).model_copy(
        update={"user": UserCondensed(userDirectory="corp", userId="OTHER")})  # never released: no record needed
    orphan = make_allocation(jdoe, NOW, 60, "analyzer").model_copy(update={"user": None})
    inventory = Inventory.join({"professional": [by_id, no_id], "analyzer": [orphan]}, [jdoe, other])
    assert [user for _, user in inventory.pairs()] == [jdoe, None, None]
    client = FakeQrs([], [jdoe, other])
    assert fetch_users(client, {jdoe.id}) == [jdoe]
    assert client.user_filters == [f"id eq {jdoe.id}"]
