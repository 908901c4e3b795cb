"""`POST /qrs/selection/license/<type>`, then GET/DELETE `/qrs/selection/{id}/license/<type>[...]`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from qrs_simulator import Simulator

from .conftest import Qrs, scenario
from .test_conformance import validate
from .test_mutations import assert_recount, details

PRO = "license/professionalaccesstype"


def select(client: Qrs, kind: str = "professional", body: Any = None, **params: str) -> dict[str, Any]:
    kwargs = {"json": body} if body is not None else {}
    response = client.request("POST", f"selection/license/{kind}accesstype", params, **kwargs)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def ids_of(client: Qrs, kind: str, *user_ids: str) -> list[str]:
    found = [client.allocation_of(kind, user_id) for user_id in user_ids]
    return [str(item["id"]) for item in found if item is not None]


def test_select_by_filter_then_list(fresh_qrs: Qrs) -> None:
    selection = select(fresh_qrs, filter="quarantined eq false")
    validate(selection, "Selection")
    assert selection["schemaPath"] == "Selection"
    assert selection["modifiedByUserName"] == "INTERNAL\\sa_api"
    chosen = set(ids_of(fresh_qrs, "professional", "jdoe", "never"))
    assert {item["objectID"] for item in selection["items"]} == chosen
    assert {item["type"] for item in selection["items"]} == {"LicenseProfessionalAccessType"}
    base = f"selection/{selection['id']}/{PRO}"
    full = fresh_qrs.get(f"{base}/full")
    validate(full, "LicenseProfessionalAccessType", many=True)
    assert {a["id"] for a in full} == chosen
    condensed = fresh_qrs.get(base)
    validate(condensed, "LicenseProfessionalAccessTypeCondensed", many=True)
    assert fresh_qrs.get(f"{base}/count") == {"value": 2}
    assert fresh_qrs.get(f"{base}/count", filter="user.userId eq 'never'") == {"value": 1}
    ordered = fresh_qrs.get(f"{base}/full", orderby="user.userId desc")
    assert [a["user"]["userId"] for a in ordered] == ["never", "jdoe"]
    assert fresh_qrs.get(f"selection/{selection['id']}/license/analyzeraccesstype/full") == []
    table = fresh_qrs.request(
        "POST",
        f"{base}/table",
        json={
            "type": "LicenseProfessionalAccessType",
            "columns": [{"name": "id", "columnType": 1, "definition": "id"}],
        },
    )
    assert table.status_code == 201
    assert sorted(row[0] for row in table.json()["rows"]) == sorted(chosen)


def test_select_without_filter_takes_all_of_the_type(fresh_qrs: Qrs) -> None:
    selection = select(fresh_qrs, "analyzer")
    assert len(selection["items"]) == 2
    assert {item["type"] for item in selection["items"]} == {"LicenseAnalyzerAccessType"}


def test_select_by_items_body(fresh_qrs: Qrs) -> None:
    wanted = ids_of(fresh_qrs, "professional", "jdoe", "quar")
    items = [{"type": "LicenseProfessionalAccessType", "objectID": guid.upper()} for guid in wanted]
    items.append({"type": "LicenseProfessionalAccessType", "objectID": str(uuid.uuid4())})  # not there: left out
    selection = select(fresh_qrs, body={"items": items})
    assert [item["objectID"] for item in selection["items"]] == wanted  # in the order given
    narrowed = select(fresh_qrs, body={"items": items}, filter="quarantined eq true")
    assert [item["objectID"] for item in narrowed["items"]] == ids_of(fresh_qrs, "professional", "quar")


def test_bad_selection_bodies_are_400(fresh_qrs: Qrs) -> None:
    guid = ids_of(fresh_qrs, "professional", "jdoe")[0]
    for body in (
        {"items": [{"type": "User", "objectID": guid}]},
        {"items": [{"type": "LicenseProfessionalAccessType", "objectID": "nope"}]},
        {"items": "all"},
        [guid],
    ):
        response = fresh_qrs.request("POST", f"selection/{PRO}", json=body)
        assert response.status_code == 400, body
    assert fresh_qrs.request("POST", f"selection/{PRO}", data=b"{broken").status_code == 400
    assert fresh_qrs.request("POST", f"selection/{PRO}", {"filter": "nonsense eq 1"}).status_code == 400


def test_delete_selected_with_the_quarantine_rule(fresh_qrs: Qrs) -> None:
    jdoe, never, quar = ids_of(fresh_qrs, "professional", "jdoe", "never", "quar")
    before_quar = fresh_qrs.get(f"{PRO}/{quar}")
    selection = select(fresh_qrs)
    response = fresh_qrs.request("DELETE", f"selection/{selection['id']}/{PRO}")
    assert response.status_code == 204 and response.content == b""
    assert fresh_qrs.get(f"{PRO}/{jdoe}")["quarantined"] is True  # used 2 days ago: quarantined
    assert fresh_qrs.request("GET", f"{PRO}/{never}").status_code == 404  # never used: removed
    assert fresh_qrs.get(f"{PRO}/{quar}") == before_quar  # already quarantined: unchanged
    assert details(fresh_qrs, "professional")["allocated"] == 0
    assert details(fresh_qrs, "professional")["quarantined"] == 2
    assert_recount(fresh_qrs.sim.state)
    # the selection lives on; what it names and still exists is listed
    assert {a["id"] for a in fresh_qrs.get(f"selection/{selection['id']}/{PRO}/full")} == {jdoe, quar}


def test_delete_selected_narrowed_by_filter(fresh_qrs: Qrs) -> None:
    selection = select(fresh_qrs, "analyzer")
    path = f"selection/{selection['id']}/license/analyzeraccesstype"
    assert fresh_qrs.request("DELETE", path, {"filter": "user.userId eq 'ext1'"}).status_code == 204
    assert fresh_qrs.allocation_of("analyzer", "ext1") is None
    assert fresh_qrs.allocation_of("analyzer", "pobrien") is not None


def test_delete_selection_license_touches_no_allocation(fresh_qrs: Qrs) -> None:
    selection = select(fresh_qrs)
    before = fresh_qrs.control("GET", "state")
    assert fresh_qrs.request("DELETE", f"selection/{selection['id']}/license").status_code == 204
    assert fresh_qrs.control("GET", "state") == before


def test_unknown_or_expired_selection_is_404(fresh_qrs: Qrs) -> None:
    missing = str(uuid.uuid4())
    assert fresh_qrs.request("GET", f"selection/{missing}/{PRO}/full").status_code == 404
    assert fresh_qrs.request("DELETE", f"selection/{missing}/{PRO}").status_code == 404
    selection = select(fresh_qrs)
    fresh_qrs.sim.selection_ttl = 0
    assert fresh_qrs.request("GET", f"selection/{selection['id']}/{PRO}/full").status_code == 404
    assert fresh_qrs.request("DELETE", f"selection/{selection['id']}/{PRO}").status_code == 404
    assert details(fresh_qrs, "professional")["allocated"] == 2


def test_wrong_methods_and_paths(fresh_qrs: Qrs) -> None:
    assert fresh_qrs.request("GET", f"selection/{PRO}").status_code == 405
    selection = select(fresh_qrs)
    base = f"selection/{selection['id']}/{PRO}"
    assert fresh_qrs.request("POST", base).status_code == 405
    assert fresh_qrs.request("DELETE", f"{base}/full").status_code == 405
    assert fresh_qrs.request("GET", f"selection/{selection['id']}/license/useraccessgroup").status_code == 404
    assert fresh_qrs.request("POST", "selection/license/tag").status_code == 404


def test_stats_key_selections_by_id(fresh_qrs: Qrs) -> None:
    fresh_qrs.control("POST", "reset-stats")
    selection = select(fresh_qrs, filter="user.userId eq 'never'")
    fresh_qrs.get(f"selection/{selection['id']}/{PRO}/full")
    fresh_qrs.request("DELETE", f"selection/{selection['id'].upper()}/{PRO}")
    assert fresh_qrs.control("GET", "stats") == {
        "requests": {
            "POST /qrs/selection/license/professionalaccesstype": 1,
            "GET /qrs/selection/{id}/license/professionalaccesstype/full": 1,
            "DELETE /qrs/selection/{id}/license/professionalaccesstype": 1,
        }
    }
    assert fresh_qrs.allocation_of("professional", "never") is None


def test_faults_apply_to_selections(certs_dir: Path) -> None:
    with Simulator(scenario(), certs_dir=certs_dir, fault_kinds="error", fault_methods="DELETE") as sim:
        client = Qrs(sim)
        selection = select(client)
        sim.fault_rate = 1.0
        assert client.request("DELETE", f"selection/{selection['id']}/{PRO}").status_code == 503
        assert details(client, "professional")["allocated"] == 2


def test_selecting_by_a_long_id_filter(fresh_qrs: Qrs) -> None:
    wanted = ids_of(fresh_qrs, "professional", "jdoe", "never")
    decoys = [str(uuid.uuid4()) for _ in range(300)]
    text = " or ".join(f"id eq {guid}" for guid in [*decoys, *wanted])
    selection = select(fresh_qrs, filter=text)
    assert sorted(item["objectID"] for item in selection["items"]) == sorted(wanted)
