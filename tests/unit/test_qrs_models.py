"""QRS JSON -> models: tolerant of nulls, the 1753 'never' sentinel and extra fields, strict about types; GUIDs;
e-mail from user attributes; filter escaping."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from butler.qrs import filters
from butler.qrs.answers import UserTable, count
from butler.qrs.models import AccessTypeOverview, Allocation, User, is_guid

ALLOCATION = {
    "id": "4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "createdDate": "2026-01-05T08:00:00.000Z",
    "modifiedDate": "2026-01-05T08:00:00.000Z", "modifiedByUserName": "INTERNAL\\sa_repository",
    "schemaPath": "LicenseProfessionalAccessType", "privileges": None,
    "user": {"id": "f0e1d2c3-b4a5-4697-8a8b-9c0d1e2f3a4b", "userId": "jdoe", "userDirectory": "DOMAIN",
             "userDirectoryConnectorName": "DOMAIN", "name": "Jane Doe", "privileges": None},
    "lastUsed": "1753-01-01T00:00:00.000Z", "excess": False, "quarantined": False,
    "quarantineEnd": "1753-01-01T00:00:00.000Z", "deletedUserId": None, "deletedUserDirectory": None,
    "someFutureField": {"x": 1},
}


def test_sentinel_dates_become_none_and_last_activity_falls_back_to_created() -> None:
    allocation = Allocation.model_validate(ALLOCATION)
    assert allocation.lastUsed is None and allocation.quarantineEnd is None
    assert allocation.last_activity == datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert allocation.user is not None and allocation.user.qualified_id == "DOMAIN\\jdoe"


def test_nulls_everywhere_are_tolerated() -> None:
    allocation = Allocation.model_validate({**ALLOCATION, "lastUsed": None, "createdDate": None, "excess": None,
                                            "quarantined": None, "user": None})
    assert allocation.last_activity is None and allocation.quarantined is False
    user = User.model_validate({"id": "x", "userId": "a", "userDirectory": "D", "tags": None,
                                "customProperties": None, "inactive": None, "blacklisted": False,
                                "removedExternally": False})
    assert user.tags == [] and user.customProperties == [] and user.inactive is False


def test_overview_docs_example_parses() -> None:
    example = {"totalTokens": 0, "availableTokens": 0, "tokensEnabled": False,
               "userAccess": {"enabled": False, "tokenCost": 1.0, "allocatedTokens": 0, "usedTokens": 0,
                              "quarantinedTokens": 0, "schemaPath": "AccessTypeOverview.UserAccessDetails"},
               "professionalAccess": {"enabled": True, "total": 100, "allocated": 85, "used": 80,
                                      "quarantined": 2, "available": 13, "schemaPath": "AccessTypeOverview.Details"},
               "analyzerAccess": None, "schemaPath": "AccessTypeOverview"}
    overview = AccessTypeOverview.model_validate_json(json.dumps(example))
    assert overview.details("professional").allocated == 85
    assert overview.details("analyzer").total == 0
    assert overview.analyzerTimeAccess.allocatedMinutes == 0


def test_table_rows_become_users() -> None:
    table = UserTable()
    row = ["4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "jdoe", "DOMAIN", "Jane", False, True, False, [["VIP-User"]],
           [["Department", "IT"], ["Department", "Sales"]]]
    user = table.user(row, "POST /qrs/user/table")
    assert [t.name for t in user.tags] == ["VIP-User"]
    assert [(p.definition.name, p.value) for p in user.customProperties] == [("Department", "IT"),
                                                                             ("Department", "Sales")]
    assert user.blacklisted is True and user.email is None


@pytest.mark.parametrize(("payload", "expected"), [({"value": 7}, 7), (7, 7)])
def test_count_accepts_both_shapes(payload: object, expected: int) -> None:
    assert count(payload, "GET /qrs/user/count") == expected


@pytest.mark.parametrize("value", ["4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "4B8A1D4E-7C1B-4F7E-9A0E-0C3F4B5A6D7E"])
def test_is_guid_accepts_the_written_form(value: str) -> None:
    assert is_guid(value)


@pytest.mark.parametrize("value", [
    None, 42, "", "x", "{4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e}", "4b8a1d4e7c1b4f7e9a0e0c3f4b5a6d7e",
    "urn:uuid:4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e\n",
    " 4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e/../user",
    "4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7g", uuid.UUID("4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e"),
])
def test_is_guid_refuses_everything_else(value: object) -> None:
    assert not is_guid(value)


@pytest.mark.parametrize("value", [0, 1_700_000_000, 1.5, True, [], {}])
def test_a_date_must_be_text(value: object) -> None:
    """A number would read as seconds since 1970: an allocation 'last used in 1970' is a release candidate."""
    with pytest.raises(ValidationError):
        Allocation.model_validate({**ALLOCATION, "lastUsed": value})


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "yes"])
def test_a_flag_must_be_a_boolean(value: object) -> None:
    with pytest.raises(ValidationError):
        User.model_validate({"id": "x", "userId": "a", "userDirectory": "D", "inactive": value})


def test_email_is_the_attribute_of_type_email_whatever_its_case() -> None:
    attributes = [{"attributeType": "department", "attributeValue": "IT"},
                  {"attributeType": "EMail", "attributeValue": "jane.doe@corp.example"}]
    user = User.model_validate({"id": "x", "userId": "a", "userDirectory": "D", "attributes": attributes})
    assert user.email == "jane.doe@corp.example"
    assert User.model_validate({"id": "x", "userId": "a", "userDirectory": "D", "attributes": []}).email is None
    assert User.model_validate({"id": "x", "userId": "a", "userDirectory": "D"}).email is None
    with pytest.raises(ValidationError):
        User.model_validate({"id": "x", "userId": "a", "userDirectory": "D", "attributes": ["email"]})


def test_table_email_from_the_attributes_column() -> None:
    table = UserTable(with_email=True)
    assert table.names[-1] == "attributes"
    row = ["4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "jdoe", "DOMAIN", None, False, False, False, [], [],
           [["title", None], ["email", "jdoe@corp.example"]]]
    assert table.user(row, "POST /qrs/user/table").email == "jdoe@corp.example"
    assert "attributes" not in {c["name"] for c in UserTable().body()["columns"]}


def test_ids_go_into_filters_only_as_guids() -> None:
    first, second = "4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "F0E1D2C3-B4A5-4697-8A8B-9C0D1E2F3A4B"
    assert filters.ids_equal("id", [first, second]) == f"id eq {first} or id eq {second.lower()}"
    for bad in ("x' or userId sw '", "1 or id ne 0", ""):
        with pytest.raises(ValueError, match="not a GUID"):
            filters.ids_equal("id", [first, bad])


def test_filter_literals_are_escaped() -> None:
    assert filters.eq("userId", "O'Brien") == "userId eq 'O\\'Brien'"
    assert filters.eq("name", "back\\slash") == "name eq 'back\\\\slash'"
    assert filters.eq("inactive", False) == "inactive eq false"
    guid = uuid.UUID("4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e")
    assert filters.eq("user.id", guid) == "user.id eq 4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e"
    moment = datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert filters.compare("lastUsed", "lt", moment) == "lastUsed lt '2026-01-05T08:00:00.000Z'"
    combined = filters.all_of(filters.eq("userDirectory", "D"), filters.any_of("a eq 1", "b eq 2"))
    assert combined == "userDirectory eq 'D' and ((a eq 1) or (b eq 2))"
    with pytest.raises(ValueError, match="operator"):
        filters.compare("x", "like", "y")
