"""Scenario keys beyond the basics: `email`, a list of `license`s, `serverLicense`, `orphanAllocations`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from qrs_simulator import ScenarioError, Simulator, build_from_scenario

from .conftest import QLIK_USER, XRFKEY, Qrs, extras_scenario, scenario
from .test_cli import running
from .test_conformance import validate
from .test_mutations import assert_recount, details


@pytest.fixture
def extras_qrs(extras_sim: Simulator) -> Qrs:
    return Qrs(extras_sim)


@pytest.fixture
def fresh_extras(certs_dir: Path) -> Iterator[Qrs]:
    with Simulator(extras_scenario(), certs_dir=certs_dir) as sim:
        yield Qrs(sim)


def valid_to(license_: dict[str, Any]) -> str:
    match = re.search(r"^Valid To: (\d{4}-\d{2}-\d{2})\r?$", license_["keyDetails"], re.MULTILINE)
    assert match, license_["keyDetails"]
    return match.group(1)


# -- email ------------------------------------------------------------------------------------------------------


def test_email_becomes_the_email_attribute(extras_qrs: Qrs) -> None:
    both = extras_qrs.get("user/full", filter="userId eq 'both'")[0]
    assert [(a["attributeType"], a["attributeValue"], a["schemaPath"]) for a in both["attributes"]] == [
        ("email", "bo.th@corp.example", "UserAttribute")
    ]
    validate(both["attributes"][0], "UserAttribute")
    found = extras_qrs.get("user", filter="attributes.attributeType eq 'EMAIL' and attributes.attributeValue so 'only'")
    assert [u["userId"] for u in found] == ["mailonly"]


def test_table_attributes_list_column(extras_qrs: Qrs) -> None:
    body = {
        "type": "User",
        "columns": [
            {"name": "userId", "columnType": "Property", "definition": "userId"},
            {
                "name": "attributes",
                "columnType": "List",
                "definition": "attributes",
                "list": [
                    {"name": "attributeType", "columnType": "Property", "definition": "attributeType"},
                    {"name": "attributeValue", "columnType": "Property", "definition": "attributeValue"},
                ],
            },
        ],
    }
    response = extras_qrs.request("POST", "user/table", json=body)
    assert response.status_code == 201, response.text
    table = response.json()
    validate(table, "Table")
    rows = {row[0]: row[1] for row in table["rows"]}
    assert rows == {"both": [["email", "bo.th@corp.example"]], "mailonly": [["email", "mail.only@corp.example"]]}
    for alias in ("attribute", "userattribute"):  # the singular names QMC-style definitions use
        aliased = {**body, "columns": [{**body["columns"][1], "definition": alias}]}
        assert extras_qrs.request("POST", "user/table", json=aliased).json()["rows"][0] != [[]]


def test_bad_email_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError, match="email"):
        build_from_scenario({"users": [{"userDirectory": "D", "userId": "u", "email": 5}]})


# -- a user holding both types ------------------------------------------------------------------------------------


def test_a_user_can_hold_professional_and_analyzer(extras_qrs: Qrs) -> None:
    pro = extras_qrs.allocation_of("professional", "both")
    ana = extras_qrs.allocation_of("analyzer", "both")
    assert pro is not None and ana is not None
    assert pro["user"] == ana["user"]
    state = extras_qrs.control("GET", "state")
    assert sorted(a["type"] for a in state["allocations"] if a["user"] and a["user"]["userId"] == "both") == [
        "analyzer",
        "professional",
    ]


def test_two_allocations_of_one_type_are_refused() -> None:
    entry = {
        "userDirectory": "D",
        "userId": "u",
        "license": [{"type": "analyzer"}, {"type": "analyzer"}],
    }
    with pytest.raises(ScenarioError, match="already has analyzer"):
        build_from_scenario({"licenses": {"analyzer": {"total": 5}}, "users": [entry]})
    with pytest.raises(ScenarioError, match="license"):
        build_from_scenario({"users": [{**entry, "license": ["professional"]}]})


# -- serverLicense ------------------------------------------------------------------------------------------------


def test_server_license_from_the_scenario(extras_qrs: Qrs) -> None:
    license_ = extras_qrs.get("license")
    validate(license_, "License")
    assert valid_to(license_) == "2031-03-31"
    assert re.search(r"^Valid From: \d{4}-\d{2}-\d{2}\r?$", license_["keyDetails"], re.MULTILINE)
    assert re.search(r"^Product: ", license_["keyDetails"], re.MULTILINE)
    assert (license_["isExpired"], license_["isInvalid"], license_["isBlacklisted"]) == (False, False, False)
    assert license_["expiredReason"] == ""


def test_default_server_license_is_valid_far_ahead(qrs: Qrs, synthetic_sim: Simulator) -> None:
    for client in (qrs, Qrs(synthetic_sim)):
        license_ = client.get("license")
        validate(license_, "License")
        assert date.fromisoformat(valid_to(license_)) > date.today() + timedelta(days=5 * 365)
        assert license_["isExpired"] is False and license_["isInvalid"] is False


def test_expired_invalid_blacklisted_license(certs_dir: Path) -> None:
    past = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    site = {**scenario(), "serverLicense": {"validTo": past, "isInvalid": True, "isBlacklisted": True}}
    with Simulator(site, certs_dir=certs_dir) as sim:
        license_ = Qrs(sim).get("license")
    validate(license_, "License")
    assert valid_to(license_) == past
    assert license_["isExpired"] is True  # defaults to validTo < today
    assert license_["expiredReason"]
    assert (license_["isInvalid"], license_["isBlacklisted"]) == (True, True)


def test_license_without_end_and_explicit_flags() -> None:
    state = build_from_scenario({"serverLicense": {"validTo": None, "isExpired": True}})
    assert state.server_license is not None and state.server_license.valid_to is None
    with pytest.raises(ScenarioError, match="serverLicense"):
        build_from_scenario({"serverLicense": {"validTo": "31.12.2030"}})
    with pytest.raises(ScenarioError, match="serverLicense"):
        build_from_scenario({"serverLicense": {"validUntil": "2030-12-31"}})
    with pytest.raises(ScenarioError, match="serverLicense"):
        build_from_scenario({"serverLicense": {"validTo": "2030-12-31", "isExpired": "no"}})


def test_no_valid_to_line_for_a_license_without_end(certs_dir: Path) -> None:
    with Simulator({"serverLicense": {"validTo": None}}, certs_dir=certs_dir) as sim:
        license_ = Qrs(sim).get("license")
    validate(license_, "License")
    assert "Valid To" not in license_["keyDetails"] and license_["isExpired"] is False


# -- ownerless allocations ------------------------------------------------------------------------------------------


def test_orphan_allocations_are_listed_with_a_null_user(extras_qrs: Qrs) -> None:
    orphans = extras_qrs.get("license/professionalaccesstype/full", filter="user.userId eq null")
    assert len(orphans) == 2
    validate(orphans, "LicenseProfessionalAccessType", many=True)
    assert {(o["deletedUserDirectory"], o["deletedUserId"]) for o in orphans} == {("CORP", "gone"), (None, None)}
    assert all(o["user"] is None for o in orphans)
    # filters, orderby and tables over user.* cope with the null user
    named = extras_qrs.get("license/professionalaccesstype/full", filter="user.userId eq 'both'", orderby="user.name")
    assert len(named) == 1
    assert extras_qrs.get("license/analyzeraccesstype/count") == {"value": 2}
    overview = extras_qrs.get("license/accesstypeoverview")
    assert overview["professionalAccess"]["allocated"] == 3 and overview["professionalAccess"]["used"] == 2


def test_delete_of_an_orphan_works(fresh_extras: Qrs) -> None:
    idle = fresh_extras.get("license/professionalaccesstype/full", filter="deletedUserId eq 'gone'")[0]
    response = fresh_extras.request("DELETE", f"license/professionalaccesstype/{idle['id']}")
    assert response.status_code == 204
    assert fresh_extras.request("GET", f"license/professionalaccesstype/{idle['id']}").status_code == 404
    recent = fresh_extras.get("license/analyzeraccesstype/full", filter="user.userId eq null")[0]  # used 2 days ago
    assert fresh_extras.request("DELETE", f"license/analyzeraccesstype/{recent['id']}").status_code == 204
    quarantined = fresh_extras.get(f"license/analyzeraccesstype/{recent['id']}")
    assert quarantined["quarantined"] is True and quarantined["user"] is None
    assert details(fresh_extras, "analyzer")["quarantined"] == 1
    assert_recount(fresh_extras.sim.state)


def test_orphans_added_in_process(fresh_sim: Simulator) -> None:
    client = Qrs(fresh_sim)
    before = details(client, "analyzer")["allocated"]
    data = fresh_sim.state.add_orphan_allocation("analyzer", datetime.now(UTC) - timedelta(days=40), None)
    assert data["user"] is None
    assert details(client, "analyzer")["allocated"] == before + 1
    assert client.request("DELETE", f"license/analyzeraccesstype/{data['id']}").status_code == 204
    assert details(client, "analyzer")["allocated"] == before


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "analyzerTime"},
        {"type": "professional", "deletedUserId": 5},
        {"type": "analyzer", "lastUsed": "x"},
        "x",
    ],
)
def test_bad_orphans_are_scenario_errors(entry: Any) -> None:
    with pytest.raises(ScenarioError, match=r"orphanAllocations\[0\]"):
        build_from_scenario({"orphanAllocations": [entry]})


def test_extras_scenario_through_the_command_line(tmp_path: Path) -> None:
    site = extras_scenario()
    site["triggers"] = [
        {
            "afterRequests": {"method": "GET", "count": 1},
            "patchUsers": [{"userDirectory": "CORP", "userId": "both", "inactive": True}],
        }
    ]
    path = tmp_path / "extras.json"
    path.write_text(json.dumps(site))
    certs = tmp_path / "certs"
    with running("--port", "0", "--certs-dir", str(certs), "--scenario", str(path)) as (_proc, line):
        url = line.split()[1]
        session = requests.Session()
        session.cert = (str(certs / "client.pem"), str(certs / "client_key.pem"))
        session.headers.update({"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER})
        verify = str(certs / "root.pem")
        license_ = session.get(f"{url}/qrs/license", params={"xrfkey": XRFKEY}, verify=verify, timeout=10).json()
        assert valid_to(license_) == "2031-03-31"
        state = session.get(f"{url}/__sim/state", verify=verify, timeout=10).json()
        assert next(u for u in state["users"] if u["userId"] == "both")["inactive"] is True
        patched = session.patch(
            f"{url}/__sim/users",
            json=[{"userDirectory": "corp", "userId": "MAILONLY", "email": "new@corp.example"}],
            verify=verify,
            timeout=10,
        )
        assert patched.status_code == 200 and patched.json() == {"changed": 1}
        missing = session.patch(
            f"{url}/__sim/users", json=[{"userDirectory": "corp", "userId": "x"}], verify=verify, timeout=10
        )
        assert missing.status_code == 404
