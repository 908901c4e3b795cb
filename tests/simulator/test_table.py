"""POST .../table: columns, list columns, aliases, filter, sort, skip/take."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Qrs

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "columnType": "Property", "definition": "id"},
    {"name": "userId", "columnType": "Property", "definition": "userId"},
    {
        "name": "tags",
        "columnType": "List",
        "definition": "tag",
        "list": [{"name": "name", "columnType": "Property", "definition": "name"}],
    },
    {
        "name": "customProperties",
        "columnType": "List",
        "definition": "customProperties",
        "list": [
            {"name": "definition.name", "columnType": "Property", "definition": "definition.name"},
            {"name": "value", "columnType": "Property", "definition": "value"},
        ],
    },
]


def table(qrs: Qrs, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = qrs.request("POST", path, params, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_columns_and_list_cells(qrs: Qrs) -> None:
    result = table(qrs, "user/table", {"type": "User", "columns": COLUMNS}, filter="userDirectory ne 'INTERNAL'")
    assert result["schemaPath"] == "Table"
    assert result["columnNames"] == ["id", "userId", "tags", "customProperties"]
    rows = {row[1]: row for row in result["rows"]}
    assert sorted(rows["ext1"][2]) == [["Executive"], ["VIP-User"]]
    assert rows["pobrien"][3] == [["Department", "Sales"], ["Department", "Finance"]]
    assert rows["newbie"][2:] == [[], []]
    assert [row[0] for row in result["rows"]] == sorted(row[0] for row in result["rows"])  # default order: id


def test_integer_column_types_and_entity_alias(qrs: Qrs) -> None:
    body = {
        "entity": "User",
        "columns": [
            {"name": "dir", "columnType": 1, "definition": "userDirectory"},
            {
                "name": "t",
                "columnType": 3,
                "definition": "tags",
                "list": [{"name": "n", "columnType": 1, "definition": "name"}],
            },
        ],
    }
    result = table(qrs, "user/table", body, filter="userId eq 'jdoe'")
    assert result["rows"] == [["DOMAIN", [["VIP-User"]]]]


def test_dotted_property_on_allocations(qrs: Qrs) -> None:
    body = {
        "type": "LicenseProfessionalAccessType",
        "columns": [
            {"name": "dir", "columnType": "Property", "definition": "user.userDirectory"},
            {"name": "who", "columnType": "Property", "definition": "user.userId"},
            {"name": "quarantined", "columnType": "Property", "definition": "quarantined"},
        ],
    }
    result = table(qrs, "license/professionalaccesstype/table", body, sortcolumn="who")
    assert result["rows"] == [["DOMAIN", "jdoe", False], ["DOMAIN", "never", False], ["DOMAIN", "quar", True]]


def test_skip_take_and_sort(qrs: Qrs) -> None:
    body = {"type": "User", "columns": [{"name": "userId", "columnType": "Property", "definition": "userId"}]}
    everything = [row[0] for row in table(qrs, "user/table", body, sortcolumn="userId")["rows"]]
    assert everything == sorted(everything)
    assert len(everything) == 9
    assert len(table(qrs, "user/table", body, take=0)["rows"]) == 9
    page = table(qrs, "user/table", body, sortcolumn="userId", skip=2, take=3)["rows"]
    assert [row[0] for row in page] == everything[2:5]
    backwards = table(qrs, "user/table", body, sortcolumn="userId", orderascending="false")["rows"]
    assert [row[0] for row in backwards] == everything[::-1]
    assert table(qrs, "user/table", body, skip=20)["rows"] == []


def test_paging_by_id_is_stable_and_complete(qrs: Qrs) -> None:
    body = {"type": "User", "columns": [{"name": "id", "columnType": "Property", "definition": "id"}]}
    pages = [table(qrs, "user/table", body, skip=skip, take=4)["rows"] for skip in (0, 4, 8)]
    ids = [row[0] for page in pages for row in page]
    assert ids == sorted(ids) and len(set(ids)) == 9


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ({"type": "User", "columns": [{"name": "x", "columnType": "Property", "definition": "nosuch"}]}, {}),
        (
            {
                "type": "User",
                "columns": [
                    {
                        "name": "x",
                        "columnType": "List",
                        "definition": "nosuch",
                        "list": [{"name": "n", "columnType": 1, "definition": "name"}],
                    }
                ],
            },
            {},
        ),
        ({"type": "User", "columns": [{"name": "x", "columnType": "Bogus", "definition": "id"}]}, {}),
        ({"type": "User"}, {}),
        ({"type": "User", "columns": [{"name": "x", "columnType": 1, "definition": "id"}]}, {"sortcolumn": "y"}),
        ({"type": "User", "columns": [{"name": "x", "columnType": 1, "definition": "id"}]}, {"take": "many"}),
        ({"type": "User", "columns": [{"name": "x", "columnType": 1, "definition": "id"}]}, {"filter": "x eq"}),
    ],
)
def test_bad_tables_are_400(qrs: Qrs, body: dict[str, Any], params: dict[str, Any]) -> None:
    response = qrs.request("POST", "user/table", params, json=body)
    assert response.status_code == 400
    assert response.text


def test_body_must_be_json(qrs: Qrs) -> None:
    response = qrs.request("POST", "user/table", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
