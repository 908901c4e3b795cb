"""The tuning core (``butler.licenses.tuning``): protections by rule, selection and CSV, what-if against the
evaluation's own decisions, returns, and the recommendation's definition at its edges."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from butler.config import parse
from butler.licenses import tuning
from butler.licenses.evaluate import run_evaluation
from butler.licenses.model import Decision
from butler.qrs.models import Allocation
from tests.support.evaluate_fakes import FakeQrs, MemoryAudit, make_allocation, make_user

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def config(**management: Any) -> Any:
    return parse({"Butler": {"qrs": {"host": "qrs", "certificates": {
        "clientCert": "c.pem", "clientKey": "k.pem", "rootCa": "r.pem"}},
        "licenseMonitoring": {"costs": {"professional": 40, "analyzer": 15}},
        "licenseManagement": {"enable": True, "maxReleasesPerRun": 10000, "maxReleasePercent": 100,
                              "abortAbovePercent": 100, "exclusions": {"tags": ["VIP-User"]}, **management}}})


def site_source() -> FakeQrs:
    users, allocations = [], []
    for n, idle in enumerate((5, 20, 35, 50, 70, 100, 150, 200)):
        for kind in ("professional", "analyzer"):
            tags = [{"name": "VIP-User"}] if n % 3 == 0 else []
            user = make_user(f"{kind[0]}{n}", tags=tags)
            users.append(user)
            allocations.append(make_allocation(user, NOW, idle, kind))
    never = make_user("never")
    users.append(never)
    allocations.append(make_allocation(never, NOW, 0, "professional", lastUsed=None,
                                       createdDate="2026-03-01T00:00:00.000Z"))
    return FakeQrs(allocations, users)


@pytest.mark.parametrize("days", [14, 30, 45, 60, 90, 120, 180])
def test_what_if_equals_the_evaluation_at_each_threshold(days: int) -> None:
    source = site_source()
    site = tuning.read_site(config(), source, 14, NOW)
    outcome = tuning.what_if(site, {"professional": days, "analyzer": days})
    dry = run_evaluation(config(release={"professional": {"inactivityDays": days},
                                         "analyzer": {"inactivityDays": days}}),
                         site_source(), audit=MemoryAudit(), notifier=None, influx=None, dry_run=True, now=NOW)
    for license_type in ("professional", "analyzer"):
        mine = [d for d in dry.decisions if d.license_type == license_type]
        assert outcome[license_type].would_release == sum(d.action == "would-release" for d in mine)
        assert outcome[license_type].protected == sum(d.action == "protected" for d in mine)
        assert outcome[license_type].protected_by_rule == tuning.protected_by_rule(mine)
        assert outcome[license_type].monthly_saving == outcome[license_type].would_release * (
            40 if license_type == "professional" else 15)


def test_what_if_reads_the_site_once_for_every_threshold() -> None:
    source = site_source()
    site = tuning.read_site(config(), source, 14, NOW)
    reads = list(source.calls)
    assert [call for call in reads if "accesstype" in call[1]] == [
        ("GET", "license/professionalaccesstype/full"), ("GET", "license/analyzeraccesstype/full")]
    tuning.sweep(site)
    assert source.calls == reads  # every threshold decided on the one inventory
    json = tuning.sweep_json(site)
    assert [row["days"] for row in json["sweep"]] == list(tuning.SWEEP_DAYS)
    assert json["sweep"][0]["professional"]["inactivityDays"] == 14  # whole days print as integers


def decision(user: str, action: str, reason: str, days: float | None) -> Decision:
    owner = make_user(user)
    allocation = make_allocation(owner, NOW, days or 0, "professional")
    return Decision(allocation, owner, action, reason, days)


def test_protections_by_rule_selection_csv_and_pages() -> None:
    decisions = [decision("b", "protected", "exclusions.userStatus.protectActiveUsers: inactive=false", 40),
                 decision("a", "protected", "exclusions.userStatus.protectActiveUsers: inactive=false", 90),
                 decision("c", "protected", "exclusions.tags: VIP", 50),
                 decision("d", "would-release", "inactive 60.0 days >= x", 60),
                 decision("e", "skip", "no lastUsed", None)]
    assert tuning.protected_by_rule(decisions) == {"exclusions.userStatus.protectActiveUsers": 2,
                                                   "exclusions.tags": 1}
    by_days = tuning.select(decisions)
    assert [d.user_id for d in by_days] == ["a", "d", "c", "b", "e"]  # unknown idle time last
    assert [d.user_id for d in tuning.select(decisions, action="protected", sort="user")] == ["a", "b", "c"]
    rows = list(csv.DictReader(io.StringIO(tuning.to_csv(by_days))))
    assert tuple(rows[0]) == tuning.CSV_COLUMNS and rows[0]["userName"] == "A" and rows[4]["daysInactive"] == ""
    page = tuning.page_of(by_days, 2, 4)
    assert (page["total"], page["nextOffset"], len(page["decisions"])) == (5, None, 1)
    assert tuning.page_of(by_days, 2, 0)["nextOffset"] == 2


def release(user: str, at: datetime, idle: float, kind: str = "professional", **extra: Any) -> dict[str, Any]:
    return {"kind": "release-outcome", "runId": "r", "at": at.isoformat().replace("+00:00", "Z"), "dryRun": False,
            "allocationId": f"{kind}-{user}-{at:%j}", "licenseType": kind, "userDirectory": "CORP", "userId": user,
            "userName": user.title(), "action": "release", "daysInactive": idle, **extra}


def allocation(user: str, created: datetime, kind: str = "professional") -> Allocation:
    owner = make_user(user, directory="corp")  # directories match case-insensitively
    return make_allocation(owner, NOW, 0, kind, createdDate=created.isoformat().replace("+00:00", "Z"))


def test_returns_count_only_new_allocations_after_the_release() -> None:
    released = NOW - timedelta(days=10)
    releases = [release("back", released, 45), release("gone", released, 90), release("old", released, 60),
                release("back", released, 45),  # the same record twice (a re-read): counted once
                release("dry", released, 50, dryRun=True), release("ana", released, 70, "analyzer")]
    current = {"professional": [allocation("BACK", released + timedelta(days=2)),
                                allocation("old", released - timedelta(days=1))],  # held before: not a return
               "analyzer": [allocation("back", released + timedelta(days=1), "analyzer")]}  # other type
    outcome = tuning.returns(releases, current)
    professional = outcome["professional"]
    assert (professional.released, professional.returned, professional.return_rate) == (3, 1, 33.33)
    assert professional.median_days_to_return == 2.0 and professional.idle_at_release == [45.0]
    assert (outcome["analyzer"].released, outcome["analyzer"].returned) == (1, 0)
    answer = tuning.returns_json(outcome, 30, NOW)
    assert answer["professional"]["users"][0]["userId"] == "back" and answer["days"] == 30
    assert answer["total"] == {"released": 4, "returned": 1, "returnRate": 25.0}


@pytest.mark.parametrize(("idle", "expected"), [
    ([], None),
    ([45.2], 46),  # one return: just above it
    ([31.0] * 19 + [200.0], 32),  # 1 of 20 may be released: the 200-day one
    ([31.0] * 18 + [100.0, 200.0], 101),  # 2 of 20 above: only one may be released
    ([40.0, 40.0], 41),
])
def test_recommendation_is_the_smallest_threshold_releasing_at_most_5_percent(idle: list[float],
                                                                           expected: int | None) -> None:
    found = tuning.recommend(idle)
    assert found == expected
    if found is not None:
        assert sum(d >= found for d in idle) <= int(0.05 * len(idle))
        assert sum(d >= found - 1 for d in idle) > int(0.05 * len(idle))  # and it is the smallest


def test_evidence_in_the_evaluation_report_and_the_digest_line() -> None:
    audit = MemoryAudit()
    audit.write(release("p0", NOW - timedelta(days=5), 60))
    source = site_source()
    report = run_evaluation(config(), source, audit=audit, notifier=None, influx=None, dry_run=True, now=NOW)
    body = report.to_json(decisions=False)
    assert body["returns"]["professional"]["released"] == 1 and "users" not in body["returns"]["professional"]
    assert body["recommendation"]["professional"]["current"] == 30
    assert body["protectedByRule"] == tuning.protected_by_rule(report.decisions)
    line = tuning.evidence_line(body)
    assert line is not None and line.startswith("users back within 30 days of a release: professional 0 of 1 (0%)")


def test_a_preview_writes_nothing_and_completes_no_leftover() -> None:
    audit = MemoryAudit()
    audit.write({"kind": "release-intent", "runId": "old", "at": "2026-01-01T00:00:00.000Z", "open": True,
                 "allocationId": "x", "licenseType": "professional", "userDirectory": "CORP", "userId": "u",
                 "action": "release"})
    view = tuning.ReadOnlyAudit(audit)
    view.write({"kind": "run"})
    view.write_many([{"kind": "run"}])
    assert len(audit.records) == 1 and view.open_intents() == [] and view.open_runs() == []
    assert view.releases_between(NOW - timedelta(days=1), NOW) == []  # reads pass through
