"""DELETE with Qlik's quarantine rule, POST allocations, and an overview that follows the state."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from qrs_simulator import SimState, Simulator, build_from_scenario
from qrs_simulator.clock import SENTINEL

from .conftest import Qrs, scenario, when


def details(qrs: Qrs, kind: str) -> dict[str, Any]:
    result: dict[str, Any] = qrs.get("license/accesstypeoverview")[f"{kind}Access"]
    return result


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_overview_from_the_scenario(qrs: Qrs) -> None:
    overview = qrs.get("license/accesstypeoverview")
    assert overview["professionalAccess"] == {
        "enabled": True,
        "total": 3,
        "allocated": 2,
        "used": 1,
        "quarantined": 1,
        "excess": 0,
        "available": 0,
        "schemaPath": "AccessTypeOverview.Details",
    }
    assert overview["analyzerAccess"] | {"schemaPath": None} == {
        "enabled": True,
        "total": 5,
        "allocated": 2,
        "used": 2,
        "quarantined": 0,
        "excess": 0,
        "available": 3,
        "schemaPath": None,
    }
    assert overview["analyzerTimeAccess"] == {
        "enabled": True,
        "allocatedMinutes": 6000,
        "usedMinutes": 120,
        "unavailableMinutes": 0,
        "schemaPath": "AccessTypeOverview.AnalyzerTimeAccessDetails",
    }
    assert overview["tokensEnabled"] is False


def test_scenario_quarantine_end_is_last_used_plus_seven_days(qrs: Qrs) -> None:
    held = qrs.allocation_of("professional", "quar")
    assert held is not None and held["quarantined"] is True
    assert parse(held["quarantineEnd"]) - parse(held["lastUsed"]) == timedelta(days=7)


def test_delete_recently_used_quarantines(fresh_qrs: Qrs) -> None:
    held = fresh_qrs.allocation_of("professional", "jdoe")  # used 2 days ago
    assert held is not None
    response = fresh_qrs.request("DELETE", f"license/professionalaccesstype/{held['id']}")
    assert response.status_code == 204 and response.content == b""
    after = fresh_qrs.get(f"license/professionalaccesstype/{held['id']}")
    assert after["quarantined"] is True
    assert parse(after["quarantineEnd"]) == parse(held["lastUsed"]) + timedelta(days=7)
    assert after["modifiedByUserName"] == "INTERNAL\\sa_api"
    assert details(fresh_qrs, "professional") | {"schemaPath": None} == {
        "enabled": True,
        "total": 3,
        "allocated": 1,
        "used": 0,
        "quarantined": 2,
        "excess": 0,
        "available": 0,
        "schemaPath": None,
    }
    again = fresh_qrs.request("DELETE", f"license/professionalaccesstype/{held['id']}")
    assert again.status_code == 204
    assert fresh_qrs.get(f"license/professionalaccesstype/{held['id']}") == after  # unchanged


def test_delete_long_unused_releases(fresh_qrs: Qrs) -> None:
    held = fresh_qrs.allocation_of("analyzer", "pobrien")  # used 30 days ago
    assert held is not None
    assert fresh_qrs.request("DELETE", f"license/analyzeraccesstype/{held['id']}").status_code == 204
    assert fresh_qrs.request("GET", f"license/analyzeraccesstype/{held['id']}").status_code == 404
    assert fresh_qrs.request("DELETE", f"license/analyzeraccesstype/{held['id']}").status_code == 404
    assert details(fresh_qrs, "analyzer")["allocated"] == 1
    assert details(fresh_qrs, "analyzer")["available"] == 4
    assert fresh_qrs.get("license/analyzeraccesstype/count") == {"value": 1}


def test_delete_never_used_releases(fresh_qrs: Qrs) -> None:
    held = fresh_qrs.allocation_of("professional", "never")
    assert held is not None and held["lastUsed"] == SENTINEL
    assert fresh_qrs.request("DELETE", f"license/professionalaccesstype/{held['id']}").status_code == 204
    assert fresh_qrs.allocation_of("professional", "never") is None
    assert details(fresh_qrs, "professional")["available"] == 1


def test_allocate(fresh_qrs: Qrs) -> None:
    user_id = fresh_qrs.user_id("DOMAIN", "newbie")
    response = fresh_qrs.request("POST", "license/analyzeraccesstype", json={"user": {"id": user_id}})
    assert response.status_code == 201
    created = response.json()
    assert created["user"]["userId"] == "newbie"
    assert created["lastUsed"] == SENTINEL and created["quarantined"] is False and created["excess"] is False
    assert created["modifiedByUserName"] == "INTERNAL\\sa_api"
    assert fresh_qrs.get(f"license/analyzeraccesstype/{created['id']}") == created
    assert details(fresh_qrs, "analyzer")["allocated"] == 3
    again = fresh_qrs.request("POST", "license/analyzeraccesstype", json={"user": {"id": user_id}})
    assert again.status_code == 409


def test_allocate_refusals(fresh_qrs: Qrs) -> None:
    unknown = {"user": {"id": "6f1c2d7e-0000-4000-8000-000000000000"}}
    assert fresh_qrs.request("POST", "license/professionalaccesstype", json=unknown).status_code == 400
    assert fresh_qrs.request("POST", "license/professionalaccesstype", json={"user": {}}).status_code == 400
    assert fresh_qrs.request("POST", "license/professionalaccesstype", json={}).status_code == 400


def test_allocating_when_no_license_is_left_is_refused(fresh_qrs: Qrs) -> None:
    user_id = fresh_qrs.user_id("DOMAIN", "newbie")  # professional: 3 of 3 held, one of them quarantined
    before = fresh_qrs.get("license/professionalaccesstype/full")
    response = fresh_qrs.request("POST", "license/professionalaccesstype", json={"user": {"id": user_id}})
    assert response.status_code == 409
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "No professional access is available" in response.text
    assert fresh_qrs.get("license/professionalaccesstype/full") == before
    assert details(fresh_qrs, "professional")["available"] == 0
    never = fresh_qrs.allocation_of("professional", "never")
    assert never is not None
    assert fresh_qrs.request("DELETE", f"license/professionalaccesstype/{never['id']}").status_code == 204
    again = fresh_qrs.request("POST", "license/professionalaccesstype", json={"user": {"id": user_id}})
    assert again.status_code == 201
    assert details(fresh_qrs, "professional")["available"] == 0


def test_scenario_beyond_total_flags_the_newest_as_excess(certs_dir: Path) -> None:
    site = {
        "licenses": {"professional": {"total": 1}},
        "users": [
            {"userDirectory": "D", "userId": "old", "license": {"type": "professional", "createdDate": when(50)}},
            {"userDirectory": "D", "userId": "new", "license": {"type": "professional", "createdDate": when(5)}},
        ],
    }
    with Simulator(site, certs_dir=certs_dir) as sim:
        client = Qrs(sim)
        flagged = client.get("license/professionalaccesstype/full", filter="excess eq true")
        assert [a["user"]["userId"] for a in flagged] == ["new"]
        assert details(client, "professional")["excess"] == 1
        newbie = client.user_id("D", "new")
        refused = client.request("POST", "license/professionalaccesstype", json={"user": {"id": newbie}})
        assert refused.status_code == 409
        old = client.allocation_of("professional", "old")
        assert old is not None
        assert client.request("DELETE", f"license/professionalaccesstype/{old['id']}").status_code == 204
        assert client.get("license/professionalaccesstype/count", filter="excess eq true") == {"value": 0}
        assert details(client, "professional")["excess"] == 0


def test_reallocating_a_quarantined_allocation_reinstates_it(fresh_qrs: Qrs) -> None:
    held = fresh_qrs.allocation_of("professional", "quar")
    assert held is not None
    user_id = fresh_qrs.user_id("DOMAIN", "quar")
    response = fresh_qrs.request("POST", "license/professionalaccesstype", json={"user": {"id": user_id}})
    assert response.status_code == 201
    assert response.json()["id"] == held["id"]
    assert response.json()["quarantined"] is False
    assert details(fresh_qrs, "professional")["quarantined"] == 0


def test_overview_counts_stay_equal_to_a_recount() -> None:
    state = build_from_scenario(scenario())
    by = "INTERNAL\\sa_api"
    for kind in ("professional", "analyzer"):
        for record in list(state.allocations[kind]):
            state.release(kind, record.data["id"], by)
    state.allocate("analyzer", next(r.data["id"] for r in state.users if r.data["userId"] == "newbie"), by)
    assert_recount(state)


def assert_recount(state: SimState) -> None:
    overview = state.overview()
    for kind in ("professional", "analyzer"):
        held = [r.data for r in state.allocations[kind]]
        quarantined = sum(a["quarantined"] for a in held)
        used = sum(not a["quarantined"] and a["lastUsed"] != SENTINEL for a in held)
        got = overview[f"{kind}Access"]
        assert (got["allocated"], got["quarantined"], got["used"]) == (len(held) - quarantined, quarantined, used)


def test_state_endpoint_follows_changes(fresh_qrs: Qrs) -> None:
    held = fresh_qrs.allocation_of("analyzer", "pobrien")
    assert held is not None
    fresh_qrs.request("DELETE", f"license/analyzeraccesstype/{held['id']}")
    state = fresh_qrs.control("GET", "state")
    assert len(state["users"]) == 9
    assert {(a["type"], a["user"]["userId"]) for a in state["allocations"]} == {
        ("professional", "jdoe"),
        ("professional", "never"),
        ("professional", "quar"),
        ("analyzer", "ext1"),
    }
    assert when(0) > held["lastUsed"]
    assert state == fresh_qrs.sim.state.dump()
