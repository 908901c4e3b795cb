"""`PATCH /__sim/users` and scenario `triggers`: changing QRS while it runs, over mutual TLS."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from qrs_simulator import ScenarioError, Simulator, build_from_scenario
from qrs_simulator.clock import SENTINEL

from .conftest import Qrs, scenario, when
from .test_conformance import validate
from .test_mutations import assert_recount


def patch(client: Qrs, body: Any) -> requests.Response:
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, str | bytes) else {"json": body}
    return client.session.patch(f"{client.sim.url}/__sim/users", verify=client.sim.ca_file, timeout=30, **kwargs)


def user(client: Qrs, user_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = client.get("user/full", filter=f"userId eq '{user_id}'")
    assert len(found) == 1
    return found[0]


def test_patch_replaces_tags_properties_flags_and_email(fresh_qrs: Qrs) -> None:
    before = user(fresh_qrs, "pobrien")
    untouched = user(fresh_qrs, "jdoe")
    response = patch(
        fresh_qrs,
        [
            {
                "userDirectory": "domain",  # case-insensitive, as QRS
                "userId": "POBRIEN",
                "tags": ["VIP-User", "Brand-New"],
                "customProperties": {"Department": ["Sales", "Legal"], "LicenseProtection": ["Keep"]},
                "inactive": True,
                "blacklisted": True,
                "removedExternally": True,
                "email": "pat@corp.example",
            }
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"changed": 1}
    after = user(fresh_qrs, "pobrien")
    assert [t["name"] for t in after["tags"]] == ["VIP-User", "Brand-New"]
    assert after["tags"][0]["id"] == untouched["tags"][0]["id"]  # the existing tag, not a copy
    assert [(v["definition"]["name"], v["value"]) for v in after["customProperties"]] == [
        ("Department", "Sales"),
        ("Department", "Legal"),
        ("LicenseProtection", "Keep"),
    ]
    assert after["customProperties"][0] == before["customProperties"][0]  # Sales kept as it was
    assert (after["inactive"], after["blacklisted"], after["removedExternally"]) == (True, True, True)
    assert [(a["attributeType"], a["attributeValue"]) for a in after["attributes"]] == [("email", "pat@corp.example")]
    assert after["modifiedDate"] > before["modifiedDate"]
    validate(after, "User")
    assert user(fresh_qrs, "jdoe") == untouched
    # new tag and new choice are defined in the repository
    assert "Brand-New" in {t["name"] for t in fresh_qrs.get("tag")}
    department = fresh_qrs.get("custompropertydefinition/full", filter="name eq 'Department'")[0]
    assert "Legal" in department["choiceValues"]
    validate(fresh_qrs.get("custompropertydefinition/full"), "CustomPropertyDefinition", many=True)
    validate(fresh_qrs.get("tag/full"), "Tag", many=True)
    # the filters see the change
    assert fresh_qrs.get("user/count", filter="tags.name eq 'brand-new'") == {"value": 1}
    assert fresh_qrs.get("user/count", filter="attributes.attributeValue eq 'PAT@corp.example'") == {"value": 1}


def test_patch_email_replace_and_remove(fresh_qrs: Qrs) -> None:
    target = {"userDirectory": "DOMAIN", "userId": "newbie"}
    assert patch(fresh_qrs, [{**target, "email": "a@x.example"}]).json() == {"changed": 1}
    first = user(fresh_qrs, "newbie")["attributes"]
    assert patch(fresh_qrs, [{**target, "email": "a@x.example"}]).json() == {"changed": 0}  # same value: unchanged
    assert user(fresh_qrs, "newbie")["attributes"] == first
    assert patch(fresh_qrs, [{**target, "email": "b@x.example"}]).json() == {"changed": 1}
    assert [a["attributeValue"] for a in user(fresh_qrs, "newbie")["attributes"]] == ["b@x.example"]
    assert patch(fresh_qrs, [{**target, "email": None, "tags": []}]).json() == {"changed": 1}
    assert user(fresh_qrs, "newbie")["attributes"] == []


def test_patch_last_used_and_quarantine_apply_to_allocations(fresh_qrs: Qrs) -> None:
    before = fresh_qrs.allocation_of("analyzer", "pobrien")
    assert before is not None
    used = when(1)
    body = [{"userDirectory": "DOMAIN", "userId": "pobrien", "lastUsed": used, "quarantined": True}]
    assert patch(fresh_qrs, body).json() == {"changed": 1}
    after = fresh_qrs.allocation_of("analyzer", "pobrien")
    assert after is not None
    assert after["lastUsed"] == used and after["quarantined"] is True
    assert datetime.fromisoformat(after["quarantineEnd"]) - datetime.fromisoformat(used) == timedelta(days=7)
    assert after["modifiedDate"] > before["modifiedDate"]
    assert user(fresh_qrs, "pobrien")["modifiedDate"] == user(fresh_qrs, "pobrien")["createdDate"]  # user unchanged
    overview = fresh_qrs.get("license/accesstypeoverview")["analyzerAccess"]
    assert (overview["allocated"], overview["quarantined"]) == (1, 1)
    body = [{"userDirectory": "DOMAIN", "userId": "pobrien", "lastUsed": None, "quarantined": False}]
    assert patch(fresh_qrs, body).json() == {"changed": 1}
    reset = fresh_qrs.allocation_of("analyzer", "pobrien")
    assert reset is not None
    assert (reset["lastUsed"], reset["quarantined"], reset["quarantineEnd"]) == (SENTINEL, False, SENTINEL)
    assert fresh_qrs.get("license/accesstypeoverview")["analyzerAccess"]["used"] == 1
    assert_recount(fresh_qrs.sim.state)
    # a user without allocations: lastUsed has nothing to apply to
    assert patch(fresh_qrs, [{"userDirectory": "DOMAIN", "userId": "newbie", "lastUsed": used}]).json() == {
        "changed": 0
    }


def test_patch_release_applies_the_delete_rule_to_the_named_types(fresh_qrs: Qrs) -> None:
    # jdoe's professional allocation was used 2 days ago: quarantined; pobrien's analyzer 30 days ago: removed
    body = [{"userDirectory": "DOMAIN", "userId": "jdoe", "release": ["professional", "analyzer"]},
            {"userDirectory": "DOMAIN", "userId": "pobrien", "release": ["analyzer"]}]
    assert patch(fresh_qrs, body).json() == {"changed": 2}
    kept = fresh_qrs.allocation_of("professional", "jdoe")
    assert kept is not None and kept["quarantined"] is True
    assert fresh_qrs.allocation_of("analyzer", "pobrien") is None
    assert patch(fresh_qrs, [{"userDirectory": "DOMAIN", "userId": "newbie", "release": ["analyzer"]}]).json() == {
        "changed": 0
    }
    assert patch(fresh_qrs, [{"userDirectory": "DOMAIN", "userId": "jdoe", "release": ["pro"]}]).status_code == 400
    assert_recount(fresh_qrs.sim.state)


def test_unknown_user_is_404_and_changes_nothing(fresh_qrs: Qrs) -> None:
    before = fresh_qrs.control("GET", "state")
    body = [
        {"userDirectory": "DOMAIN", "userId": "jdoe", "inactive": True},
        {"userDirectory": "DOMAIN", "userId": "nobody", "inactive": True},
    ]
    response = patch(fresh_qrs, body)
    assert response.status_code == 404
    assert "DOMAIN\\nobody" in response.text
    assert fresh_qrs.control("GET", "state") == before


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        {"userDirectory": "DOMAIN", "userId": "jdoe"},  # not a list
        [{"userId": "jdoe", "inactive": True}],
        [{"userDirectory": "DOMAIN", "userId": "jdoe", "blocked": True}],  # QRS says blacklisted
        [{"userDirectory": "DOMAIN", "userId": "jdoe", "tags": "VIP-User"}],
        [{"userDirectory": "DOMAIN", "userId": "jdoe", "customProperties": {"Department": [1]}}],
        [{"userDirectory": "DOMAIN", "userId": "jdoe", "inactive": "yes"}],
        [{"userDirectory": "DOMAIN", "userId": "jdoe", "lastUsed": "yesterday"}],
    ],
)
def test_bad_patches_are_400_and_change_nothing(fresh_qrs: Qrs, body: Any) -> None:
    before = fresh_qrs.control("GET", "state")
    response = patch(fresh_qrs, body)
    assert response.status_code == 400
    assert response.text
    assert fresh_qrs.control("GET", "state") == before


def test_patch_endpoint_is_not_counted_and_other_methods_405(fresh_qrs: Qrs) -> None:
    fresh_qrs.control("POST", "reset-stats")
    patch(fresh_qrs, [{"userDirectory": "DOMAIN", "userId": "jdoe", "inactive": True}])
    assert fresh_qrs.control("GET", "stats") == {"requests": {}}
    url = f"{fresh_qrs.sim.url}/__sim/users"
    assert fresh_qrs.session.get(url, verify=fresh_qrs.sim.ca_file, timeout=10).status_code == 405


def test_in_process_patch(fresh_sim: Simulator) -> None:
    assert fresh_sim.patch_users([{"userDirectory": "DOMAIN", "userId": "jdoe", "tags": []}]) == 1
    jdoe = next(r.data for r in fresh_sim.state.users if r.data["userId"] == "jdoe")
    assert jdoe["tags"] == []


# -- triggers -------------------------------------------------------------------------------------------------


def with_trigger(method: str, count: int, patches: list[dict[str, Any]]) -> dict[str, Any]:
    site = scenario()
    site["triggers"] = [{"afterRequests": {"method": method, "count": count}, "patchUsers": patches}]
    return site


def test_trigger_applies_after_the_nth_delete(certs_dir: Path) -> None:
    site = with_trigger("DELETE", 2, [{"userDirectory": "EXTERNAL", "userId": "ext1", "tags": ["Executive"]}])
    with Simulator(site, certs_dir=certs_dir) as sim:
        client = Qrs(sim)
        assert len(sim.triggers) == 1
        jdoe = client.allocation_of("professional", "jdoe")
        never = client.allocation_of("professional", "never")
        assert jdoe is not None and never is not None
        client.request("DELETE", f"license/professionalaccesstype/{jdoe['id']}")
        client.get("about")  # other methods do not count
        assert [t["name"] for t in user(client, "ext1")["tags"]] == ["Executive", "VIP-User"]
        client.request("DELETE", f"license/professionalaccesstype/{never['id']}")
        # applied before the second DELETE was answered: the very next request sees it
        assert [t["name"] for t in user(client, "ext1")["tags"]] == ["Executive"]
        assert sim.triggers == []


def test_trigger_fires_even_when_the_answer_is_lost(certs_dir: Path) -> None:
    site = with_trigger("DELETE", 1, [{"userDirectory": "DOMAIN", "userId": "jdoe", "inactive": True}])
    with Simulator(
        site, certs_dir=certs_dir, fault_rate=1.0, fault_kinds="lost-response", fault_methods="DELETE"
    ) as sim:
        client = Qrs(sim)
        guid = next(r.data["id"] for r in sim.state.allocations["analyzer"] if r.data["user"]["userId"] == "pobrien")
        with pytest.raises(requests.exceptions.ConnectionError):
            client.request("DELETE", f"license/analyzeraccesstype/{guid}")
        assert user(client, "jdoe")["inactive"] is True


def test_faulted_requests_that_were_not_carried_out_do_not_count(certs_dir: Path) -> None:
    site = with_trigger("GET", 1, [{"userDirectory": "DOMAIN", "userId": "jdoe", "inactive": True}])
    with Simulator(site, certs_dir=certs_dir, fault_rate=1.0, fault_kinds="error", fault_methods="GET") as sim:
        client = Qrs(sim)
        assert client.request("GET", "about").status_code == 503
        assert sim.triggers != []
        sim.fault_rate = 0
        client.get("about")
        assert sim.triggers == []
        assert user(client, "jdoe")["inactive"] is True


def test_no_request_sees_the_old_state_after_the_trigger(certs_dir: Path) -> None:
    """Readers racing the triggering DELETE see either the old state before it or the new state after it."""
    site = with_trigger("DELETE", 1, [{"userDirectory": "DOMAIN", "userId": "jdoe", "blacklisted": True}])
    with Simulator(site, certs_dir=certs_dir) as sim:
        guid = next(r.data["id"] for r in sim.state.allocations["analyzer"] if r.data["user"]["userId"] == "pobrien")
        deleted = threading.Event()
        stale_after_delete: list[bool] = []

        def reader() -> None:
            client = Qrs(sim)
            for _ in range(40):
                done = deleted.is_set()
                blacklisted = user(client, "jdoe")["blacklisted"]
                if done and not blacklisted:
                    stale_after_delete.append(True)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for thread in threads:
            thread.start()
        assert Qrs(sim).request("DELETE", f"license/analyzeraccesstype/{guid}").status_code == 204
        deleted.set()
        for thread in threads:
            thread.join()
        assert stale_after_delete == []


def test_triggers_set_in_process(fresh_sim: Simulator) -> None:
    client = Qrs(fresh_sim)
    client.get("about")  # requests before arming do not count
    fresh_sim.triggers = [
        {
            "afterRequests": {"method": "GET", "count": 2},
            "patchUsers": [{"userDirectory": "DOMAIN", "userId": "jdoe", "tags": []}],
        }
    ]
    client.get("about")
    assert len(fresh_sim.triggers) == 1
    client.get("about")  # the second GET since arming: the patches apply before its answer
    assert fresh_sim.triggers == []
    assert user(client, "jdoe")["tags"] == []


@pytest.mark.parametrize(
    ("triggers", "message"),
    [
        (
            [
                {
                    "afterRequests": {"method": "DELETE", "count": 1},
                    "patchUsers": [{"userDirectory": "X", "userId": "y"}],
                }
            ],
            "X\\y",
        ),
        ([{"afterRequests": {"method": "FETCH", "count": 1}, "patchUsers": []}], "method"),
        ([{"afterRequests": {"method": "GET", "count": 0}, "patchUsers": []}], "count"),
        ([{"afterRequests": {"method": "GET", "count": 1}}], "afterRequests"),
        ([{"afterRequests": {"method": "GET", "count": 1}, "patchUsers": [{"userId": "jdoe"}]}], "patchUsers[0]"),
    ],
)
def test_bad_triggers_in_a_scenario(triggers: list[dict[str, Any]], message: str) -> None:
    site = scenario()
    site["triggers"] = triggers
    with pytest.raises(ScenarioError) as caught:
        build_from_scenario(site)
    assert message in str(caught.value)
