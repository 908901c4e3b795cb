"""The synthetic site: deterministic for a seed, and with the mix of users the docs promise."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qrs_simulator import SimState, build_synthetic
from qrs_simulator.clock import SENTINEL

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def site() -> SimState:
    return build_synthetic(5000, seed=42, now=NOW)


def allocations(state: SimState) -> list[dict[str, Any]]:
    return [r.data for coll in state.allocations.values() for r in coll]


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_same_seed_same_site() -> None:
    assert build_synthetic(800, seed=3, now=NOW).dump() == build_synthetic(800, seed=3, now=NOW).dump()
    first, second = build_synthetic(300, seed=3), build_synthetic(300, seed=3)  # real clock: same ids
    assert [r.data["id"] for r in first.users] == [r.data["id"] for r in second.users]
    assert build_synthetic(300, seed=4, now=NOW).dump() != build_synthetic(300, seed=3, now=NOW).dump()


def test_size_and_unique_users(site: SimState) -> None:
    keys = {(r.data["userDirectory"].lower(), r.data["userId"].lower()) for r in site.users}
    assert len(site.users) == len(keys) == 5000
    ids = [r.data["id"] for r in site.users] + [a["id"] for a in allocations(site)]
    assert len(set(ids)) == len(ids)


def test_license_mix(site: SimState) -> None:
    held = allocations(site)
    assert 0.55 < len(held) / 5000 < 0.65
    assert 0.30 < len(site.allocations["professional"]) / len(held) < 0.40
    assert 0.03 < sum(a["lastUsed"] == SENTINEL for a in held) / len(held) < 0.08
    assert 0.005 < sum(a["quarantined"] for a in held) / len(held) < 0.02
    professional = [r.data["user"]["id"] for r in site.allocations["professional"]]
    assert len(set(professional)) == len(professional)  # one allocation of a type per user


def test_dates(site: SimState) -> None:
    held = allocations(site)
    used = [a for a in held if a["lastUsed"] != SENTINEL]
    ages = [(NOW - parse(a["lastUsed"])).days for a in used]
    assert max(ages) <= 400 and min(ages) >= 0
    assert sum(age <= 30 for age in ages) / len(ages) > 0.25  # skewed towards recent use
    assert all(parse(a["createdDate"]) <= parse(a["lastUsed"]) for a in used)
    assert any(NOW - parse(a["createdDate"]) < timedelta(days=7) for a in held)
    for a in held:
        if a["quarantined"]:
            assert parse(a["quarantineEnd"]) == parse(a["lastUsed"]) + timedelta(days=7)
            assert parse(a["quarantineEnd"]) > NOW
        else:
            assert a["quarantineEnd"] == SENTINEL


def test_directories_tags_and_properties(site: SimState) -> None:
    users = [r.data for r in site.users]
    directories = Counter(u["userDirectory"] for u in users)
    assert 0.80 < directories["CORP"] / 5000 < 0.90
    assert {"EXTERNAL", "ADMIN_DOMAIN", "SERVICE_ACCOUNTS", "INTERNAL"} <= set(directories)
    assert {u["userId"] for u in users if u["userDirectory"] == "INTERNAL"} >= {"sa_api", "sa_scheduler"}
    tags = Counter(t["name"] for u in users for t in u["tags"])
    assert set(tags) == {"VIP-User", "Always-Licensed", "Executive", "Power-User"}
    assert tags["Power-User"] > tags["Always-Licensed"]
    departments = [
        [p["value"] for p in u["customProperties"] if p["definition"]["name"] == "Department"] for u in users
    ]
    assert 0.65 < sum(bool(d) for d in departments) / 5000 < 0.85
    assert any(len(d) > 1 for d in departments)
    keep = [p for u in users for p in u["customProperties"] if p["definition"]["name"] == "LicenseProtection"]
    assert keep and {p["value"] for p in keep} == {"Keep"}
    assert {r.data["name"] for r in site.custom_properties} == {"Department", "LicenseProtection"}
    assert {r.data["name"] for r in site.tags} == set(tags)


@pytest.mark.parametrize(("flag", "share"), [("inactive", 0.03), ("blacklisted", 0.02), ("removedExternally", 0.03)])
def test_flags(site: SimState, flag: str, share: float) -> None:
    assert share / 2 < sum(r.data[flag] for r in site.users) / 5000 < share * 1.6


def test_totals_and_capacity(site: SimState) -> None:
    for kind in ("professional", "analyzer"):
        held = len(site.allocations[kind])
        assert held < site.licenses.total(kind) <= held * 1.1 + 1
    minutes = site.licenses.analyzer_time
    assert minutes["allocatedMinutes"] > minutes["usedMinutes"] > 0
    usages = [r.data for r in site.time_usages]
    assert usages
    holders = {a["user"]["id"] for a in allocations(site)}
    assert not {u["user"]["id"] for u in usages} & holders
    assert (
        sum((parse(u["useStopTime"]) - parse(u["useStartTime"])).seconds // 60 for u in usages)
        == minutes["usedMinutes"]
    )
    overview = site.overview()
    assert overview["professionalAccess"]["excess"] == 0
    assert overview["analyzerTimeAccess"]["enabled"] is True
