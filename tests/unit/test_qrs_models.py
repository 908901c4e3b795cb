"""QRS JSON -> models: tolerant of nulls, the 1753 'never' sentinel and extra fields; filter escaping."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from butler.qrs import filters
from butler.qrs.client import _count, _user_row
from butler.qrs.models import AccessTypeOverview, Allocation, User

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
    columns = ["id", "userId", "userDirectory", "name", "inactive", "blacklisted", "removedExternally", "tags",
               "customProperties"]
    row = ["u1", "jdoe", "DOMAIN", "Jane", False, True, False, [["VIP-User"]],
           [["Department", "IT"], ["Department", "Sales"]]]
    user = User.model_validate(_user_row(columns, row))
    assert [t.name for t in user.tags] == ["VIP-User"]
    assert [(p.definition.name, p.value) for p in user.customProperties] == [("Department", "IT"),
                                                                             ("Department", "Sales")]
    assert user.blacklisted is True


@pytest.mark.parametrize(("payload", "expected"), [({"value": 7}, 7), (7, 7)])
def test_count_accepts_both_shapes(payload: object, expected: int) -> None:
    assert _count(payload) == expected


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
