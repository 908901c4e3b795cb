"""Responses validate against the QRS Swagger definitions (every property nullable, as QRS sends null for unset
ones; no properties beyond the spec's; dates in QRS's exact format; GUIDs parse)."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator, FormatChecker

from qrs_simulator import Simulator

from .conftest import Qrs

HERE = Path(__file__).parent
QRS_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
FORMATS = FormatChecker(formats=())


def _is_qrs_date(value: object) -> bool:
    if not isinstance(value, str) or not QRS_DATE.match(value):
        return False
    datetime.fromisoformat(value)  # raises on an impossible date
    return True


def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


FORMATS.checks("date-time", raises=ValueError)(_is_qrs_date)
FORMATS.checks("uuid", raises=ValueError)(_is_uuid)


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return {"anyOf": [{"$ref": prop["$ref"]}, {"type": "null"}]}
    prop = dict(prop)
    if prop.get("type") == "object" and "properties" not in prop:
        prop.pop("type")  # Swagger's bare "object" is .NET's System.Object: any value (e.g. table cells)
    elif "type" in prop:
        prop["type"] = [prop["type"], "null"]
    if "enum" in prop:
        prop["enum"] = [*prop["enum"], None]
    if "items" in prop:
        prop["items"] = _nullable_items(prop["items"])
    return prop


def _nullable_items(items: dict[str, Any]) -> dict[str, Any]:
    if items.get("type") == "array" and "items" in items:
        return {**items, "items": _nullable_items(items["items"])}
    if items.get("type") == "object" and "properties" not in items:
        return {}
    return items


@cache
def definitions() -> dict[str, Any]:
    spec = json.loads((HERE / "qrs-spec-license-user-subset.json").read_text())
    result: dict[str, Any] = {}
    for name, definition in spec["definitions"].items():
        strict = copy.deepcopy(definition)
        strict["properties"] = {key: _nullable(prop) for key, prop in strict.get("properties", {}).items()}
        strict["additionalProperties"] = False
        result[name] = strict
    return result


def validate(instance: Any, name: str, many: bool = False) -> None:
    ref = {"$ref": f"#/definitions/{name}"}
    schema = {"definitions": definitions(), **({"type": "array", "items": ref} if many else ref)}
    errors = sorted(Draft4Validator(schema, format_checker=FORMATS).iter_errors(instance), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


TABLE = {
    "type": "User",
    "columns": [
        {"name": "id", "columnType": "Property", "definition": "id"},
        {"name": "userDirectory", "columnType": 1, "definition": "userDirectory"},
        {
            "name": "tags",
            "columnType": "List",
            "definition": "tag",
            "list": [{"name": "name", "columnType": "Property", "definition": "name"}],
        },
        {
            "name": "customProperties",
            "columnType": 3,
            "definition": "customProperties",
            "list": [
                {"name": "definition.name", "columnType": 1, "definition": "definition.name"},
                {"name": "value", "columnType": 1, "definition": "value"},
            ],
        },
    ],
}

SINGLE = [("about", "About"), ("license", "License"), ("license/accesstypeoverview", "AccessTypeOverview")]
LISTS = [
    ("license/professionalaccesstype", "LicenseProfessionalAccessTypeCondensed"),
    ("license/professionalaccesstype/full", "LicenseProfessionalAccessType"),
    ("license/analyzeraccesstype", "LicenseAnalyzerAccessTypeCondensed"),
    ("license/analyzeraccesstype/full", "LicenseAnalyzerAccessType"),
    ("license/analyzertimeaccesstype", "LicenseAnalyzerTimeAccessTypeCondensed"),
    ("license/analyzertimeaccesstype/full", "LicenseAnalyzerTimeAccessType"),
    ("license/analyzertimeaccessusage/full", "LicenseAnalyzerTimeAccessUsage"),
    ("license/useraccesstype/full", "LicenseUserAccessType"),
    ("license/loginaccesstype/full", "LicenseLoginAccessType"),
    ("user", "UserCondensed"),
    ("user/full", "User"),
    ("tag", "TagCondensed"),
    ("tag/full", "Tag"),
    ("custompropertydefinition", "CustomPropertyDefinitionCondensed"),
    ("custompropertydefinition/full", "CustomPropertyDefinition"),
]


@pytest.fixture(params=["scenario", "synthetic", "extras"])
def any_qrs(request: pytest.FixtureRequest) -> Qrs:
    sim: Simulator = request.getfixturevalue(f"{request.param}_sim")
    return Qrs(sim)


@pytest.mark.parametrize(("path", "name"), SINGLE)
def test_single_objects(any_qrs: Qrs, path: str, name: str) -> None:
    validate(any_qrs.get(path), name)


@pytest.mark.parametrize(("path", "name"), LISTS)
def test_lists(any_qrs: Qrs, path: str, name: str) -> None:
    items = any_qrs.get(path)
    validate(items, name, many=True)
    assert all(item["privileges"] is None for item in items)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("user", "User"),
        ("license/professionalaccesstype", "LicenseProfessionalAccessType"),
        ("license/analyzeraccesstype", "LicenseAnalyzerAccessType"),
    ],
)
def test_one_by_id(any_qrs: Qrs, path: str, name: str) -> None:
    first = any_qrs.get(path)[0]
    one = any_qrs.get(f"{path}/{first['id']}")
    validate(one, name)
    assert one["id"] == first["id"]


def test_schema_paths_and_sentinel(qrs: Qrs) -> None:
    allocations = qrs.get("license/professionalaccesstype/full")
    assert {a["schemaPath"] for a in allocations} == {"LicenseProfessionalAccessType"}
    never = next(a for a in allocations if a["user"]["userId"] == "never")
    assert never["lastUsed"] == "1753-01-01T00:00:00.000Z"
    assert never["quarantineEnd"] == "1753-01-01T00:00:00.000Z"
    user = qrs.get("user/full", filter="userId eq 'jdoe'")[0]
    assert user["schemaPath"] == "User"
    assert user["customProperties"][0]["schemaPath"] == "CustomPropertyValue"
    assert user["customProperties"][0]["definition"]["name"] == "Department"
    assert user["tags"] == [{"id": user["tags"][0]["id"], "name": "VIP-User", "privileges": None}]


def test_privileges_when_asked(any_qrs: Qrs) -> None:
    items = any_qrs.get("license/analyzeraccesstype/full", privileges="true")
    validate(items, "LicenseAnalyzerAccessType", many=True)
    assert all(isinstance(item["privileges"], list) and item["privileges"] for item in items)


def test_table(any_qrs: Qrs) -> None:
    response = any_qrs.request("POST", "user/table", {"take": 50}, json=TABLE)
    assert response.status_code == 201
    validate(response.json(), "Table")


def test_overview_matches_documented_shape(any_qrs: Qrs) -> None:
    documented = json.loads((HERE / "accesstypeoverview.docs-example.json").read_text())
    overview = any_qrs.get("license/accesstypeoverview")
    assert set(overview) == set(documented) | {"analyzerTimeAccess"}
    for key, value in documented.items():
        if isinstance(value, dict):
            assert overview[key]["schemaPath"] == value["schemaPath"]
            assert set(value) <= set(overview[key])
    assert overview["schemaPath"] == "AccessTypeOverview"
    assert overview["analyzerTimeAccess"]["schemaPath"] == "AccessTypeOverview.AnalyzerTimeAccessDetails"


def test_untouched_overview_equals_docs_example_when_empty(certs_dir: Path) -> None:
    documented = json.loads((HERE / "accesstypeoverview.docs-example.json").read_text())
    with Simulator({"users": []}, certs_dir=certs_dir) as sim:
        overview = Qrs(sim).get("license/accesstypeoverview")
    overview.pop("analyzerTimeAccess")
    for block in ("professionalAccess", "analyzerAccess"):
        assert overview[block].pop("excess") == 0  # in the spec's Details, absent from the docs example
    assert overview == documented


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "t", "createdDate": "2020-01-01T00:00:00Z"},  # no milliseconds
        {"name": "t", "createdDate": "2020-02-30T00:00:00.000Z"},  # no such day
        {"name": "t", "id": "not-a-guid"},
        {"name": "t", "colour": "red"},  # not in the spec
        {"name": 5},
    ],
)
def test_the_checks_bite(bad: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        validate(bad, "Tag")
