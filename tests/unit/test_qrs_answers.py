"""Answers checked against the shape asked for: anything that could silently unprotect a user, or read one bad
record as a whole bad list, is either ``QrsBadAnswer`` in one line or a record with ``problem`` set."""

from __future__ import annotations

import json
from typing import Any

import pytest

from butler.qrs import answers
from butler.qrs.errors import QrsBadAnswer
from butler.qrs.models import AccessTypeOverview

CALL = "POST /qrs/user/table"
U1, U2 = "4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e", "f0e1d2c3-b4a5-4697-8a8b-9c0d1e2f3a4b"
A1, A2, A3 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
              "33333333-3333-4333-8333-333333333333")


def row(**cells: Any) -> list[Any]:
    values = {"id": U1, "userId": "jdoe", "userDirectory": "CORP", "name": "Jane", "inactive": False,
              "blacklisted": False, "removedExternally": False, "tags": [["VIP-User"]],
              "customProperties": [["Department", "IT"]], **cells}
    return [values[name] for name in answers.UserTable().names]


def table(rows: list[list[Any]], names: list[str] | None = None) -> dict[str, Any]:
    return {"schemaPath": "Table", "columnNames": answers.UserTable().names if names is None else names,
            "rows": rows, "id": None}


def bad(call: Any) -> str:
    with pytest.raises(QrsBadAnswer) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and len(message) < 260, message
    return message


def read_users(payload: Any) -> list[Any]:
    spec = answers.UserTable()
    return [spec.user(r, CALL) for r in spec.rows(payload, 100, CALL)]


def test_a_sound_table_reads() -> None:
    users = read_users(table([row(), row(id=U2, userId="bob", tags=[], customProperties=[])]))
    assert [u.userId for u in users] == ["jdoe", "bob"]
    assert [t.name for t in users[0].tags] == ["VIP-User"]


@pytest.mark.parametrize(("cells", "named"), [
    ({"tags": ["VIP-User"]}, "tags"),  # once read as the tag "V"
    ({"tags": None}, "tags"),  # null is not "no tags": it would unprotect every VIP
    ({"customProperties": None}, "customProperties"),
    ({"customProperties": [["Department"]]}, "customProperties"),
    ({"customProperties": [["Department", None]]}, "customProperties"),
    ({"tags": [[]]}, "tags"),
    ({"tags": [[None]]}, "tags"),
    ({"tags": "VIP-User"}, "tags"),
    ({"inactive": None}, "inactive"),
    ({"blacklisted": "false"}, "blacklisted"),
    ({"removedExternally": 0}, "removedExternally"),
    ({"userId": None}, "userId"),
    ({"userDirectory": ""}, "userDirectory"),
    ({"name": 5}, "name"),
])
def test_a_cell_of_the_wrong_shape_is_a_bad_answer(cells: dict[str, Any], named: str) -> None:
    message = bad(lambda: read_users(table([row(**cells)])))
    assert message.startswith(f"{CALL}: unexpected answer: user {U1}: {named} ")


@pytest.mark.parametrize("wrong", [
    answers.UserTable().names[:-1],  # a missing tag or custom-property column must not read as "no protection"
    [*answers.UserTable().names, "extra"],
    list(reversed(answers.UserTable().names)),
    [name.lower() for name in answers.UserTable().names],
    None,
    "id",
])
def test_columns_must_be_exactly_those_asked_for(wrong: Any) -> None:
    width = len(wrong) if isinstance(wrong, list) else len(answers.UserTable().names)
    payload = {"columnNames": wrong, "rows": [row()[:width]]}
    assert "are not the columns asked for" in bad(lambda: read_users(payload))


@pytest.mark.parametrize(("payload", "says"), [
    ([], "not a JSON object"),
    ({"columnNames": answers.UserTable().names}, "rows is not a list"),
    (table(None), "rows is not a list"),  # type: ignore[arg-type]
    (table([row()[:-1]]), "row 0 is not a list of 9 cells"),
    (table([{"id": U1}]), "row 0 is not a list"),  # type: ignore[list-item]
    (table([row(id="u1")]), "row 0: id is not a GUID"),
    (table([row(id=None)]), "row 0: id is not a GUID"),
])
def test_a_table_of_the_wrong_shape_is_a_bad_answer(payload: Any, says: str) -> None:
    assert says in bad(lambda: read_users(payload))


def test_more_rows_than_asked_for_is_a_bad_answer() -> None:
    spec = answers.UserTable()
    assert "3 rows for take=2" in bad(lambda: spec.rows(table([row(), row(), row()]), 2, CALL))


def test_attributes_only_feed_email_and_may_hold_nulls() -> None:
    spec = answers.UserTable(with_email=True)
    sound = [*row(), [["email", None], ["EMAIL", "jane@corp.example"]]]
    assert spec.user(sound, CALL).email == "jane@corp.example"
    assert "attributes" in bad(lambda: spec.user([*row(), None], CALL))
    assert "attributes" in bad(lambda: spec.user([*row(), ["email"]], CALL))


# --- JSON --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "content_type", "says"), [
    (b"", "application/json", "an empty body where JSON was expected"),
    (b"  \r\n", "application/json", "an empty body"),
    (b"<html><head><title>502 Bad Gateway</title></head>\n<body>" + b"x" * 5000 + b"</body></html>",
     "text/html", "an HTML page (text/html) where JSON was expected: '502 Bad Gateway"),
    (b'[{"id": "' + A1.encode() + b'", "lastUsed": "2026-0', "application/json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "application/octet-stream", "not valid JSON"),
])
def test_a_body_that_is_not_json_is_one_short_line(body: bytes, content_type: str, says: str) -> None:
    message = bad(lambda: answers.parse_json(body, content_type, "GET /qrs/license/accesstypeoverview"))
    assert message.startswith("GET /qrs/license/accesstypeoverview: unexpected answer: ")
    assert says in message
    assert "x" * 80 not in message


@pytest.mark.parametrize("payload", [{"value": "7"}, {"value": None}, {"count": 7}, True, -1, "7", [7], 7.5])
def test_a_count_is_an_integer_or_a_bad_answer(payload: Any) -> None:
    assert "not a count" in bad(lambda: answers.count(payload, "GET /qrs/user/count"))


def test_a_malformed_overview_is_a_bad_answer_not_a_traceback() -> None:
    adapter = AccessTypeOverview.model_validate
    message = bad(lambda: answers.validated(adapter, {"professionalAccess": {"total": "many"}}, "GET /qrs/x"))
    assert message.startswith("GET /qrs/x: unexpected answer: professionalAccess.total: ")
    assert "'many'" in message


# --- allocations -------------------------------------------------------------------------------------------------


def allocation(**fields: Any) -> dict[str, Any]:
    return {"id": A1, "createdDate": "2026-01-05T08:00:00.000Z", "lastUsed": "2026-03-01T08:00:00.000Z",
            "user": {"id": U1, "userId": "jdoe", "userDirectory": "CORP"}, "quarantined": False, **fields}


def test_one_unreadable_record_does_not_spoil_the_list() -> None:
    records = [allocation(), allocation(id=A2, lastUsed="2026-13-45"), allocation(id=A3)]
    assert answers.allocations_fast(json.dumps(records).encode(), "analyzer") is None
    found = answers.allocations(records, "analyzer", "GET /qrs/x")
    assert [a.id for a in found] == [A1, A2, A3]
    assert [a.problem for a in found] == [None, "lastUsed: unreadable date '2026-13-45'", None]
    broken = found[1]
    assert broken.licenseType == "analyzer" and broken.user is not None and broken.user.userId == "jdoe"
    assert broken.lastUsed is None


@pytest.mark.parametrize(("fields", "problem", "user_kept"), [
    ({"lastUsed": 1_700_000_000}, "lastUsed: unreadable date 1700000000", True),
    ({"quarantined": "no"}, "quarantined: unreadable value 'no'", True),
    ({"user": {"id": U1, "userDirectory": "CORP"}}, "user.userId: missing", False),
    ({"user": "CORP\\jdoe"}, "user: unreadable value 'CORP\\\\jdoe'", False),
])
def test_the_problem_names_the_field_and_keeps_what_could_be_read(fields: dict[str, Any], problem: str,
                                                                   user_kept: bool) -> None:
    (found,) = answers.allocations([allocation(**fields)], "professional", "GET /qrs/x")
    assert (found.id, found.problem, found.user is not None) == (A1, problem, user_kept)


@pytest.mark.parametrize("record_id", [None, 42, ""])
def test_a_record_without_a_readable_id_has_an_empty_id_and_a_problem(record_id: Any) -> None:
    fields = allocation(id=record_id)
    if record_id is None:
        del fields["id"]
    (found,) = answers.allocations([fields], "professional", "GET /qrs/x")
    assert found.id == "" and (found.problem or record_id == "")
    assert found.user is not None and found.user.id == U1


def test_fields_named_like_ours_in_the_answer_are_ignored() -> None:
    found = answers.allocations_fast(json.dumps([allocation(licenseType="analyzer", problem="x")]).encode(),
                                     "professional")
    assert found is not None and (found[0].licenseType, found[0].problem) == ("professional", None)
    (slow,) = answers.allocations([allocation(licenseType="analyzer", problem=None, lastUsed="x")], "professional",
                                  "GET /qrs/x")
    assert slow.licenseType == "professional" and slow.problem == "lastUsed: unreadable date 'x'"


@pytest.mark.parametrize(("payload", "says"), [
    ({"id": A1}, "not a JSON list"),
    (None, "not a JSON list"),
    ([allocation(), "x"], "record 1 is not a JSON object"),
    ([allocation(), [A2]], "record 1 is not a JSON object"),
])
def test_a_list_that_is_not_a_list_of_objects_is_a_bad_answer(payload: Any, says: str) -> None:
    assert says in bad(lambda: answers.allocations(payload, "professional", "GET /qrs/x"))


def test_a_filtered_read_must_answer_only_what_it_asked_for() -> None:
    found = answers.allocations([allocation(), allocation(id=A2)], "professional", "GET /qrs/x")
    answers.only_asked(found, {A1, A2}, "allocations", "GET /qrs/x")
    assert "1 allocations not asked for" in bad(lambda: answers.only_asked(found, {A1}, "allocations", "GET /qrs/x"))
    idless = answers.allocations([allocation(id=None)], "professional", "GET /qrs/x")
    assert "without a readable id" in bad(lambda: answers.only_asked(idless, {A1}, "allocations", "GET /qrs/x"))


# --- users from /user/full ---------------------------------------------------------------------------------------


def full_user(**fields: Any) -> dict[str, Any]:
    return {"id": U1, "userId": "jdoe", "userDirectory": "CORP", "name": "Jane", "inactive": False,
            "blacklisted": False, "removedExternally": False, "tags": [{"id": A1, "name": "VIP-User"}],
            "customProperties": [{"value": "IT", "definition": {"name": "Department"}}],
            "attributes": [{"attributeType": "Email", "attributeValue": "jane@corp.example"}], **fields}


def test_full_users_read_with_their_email() -> None:
    (user,) = answers.full_users([full_user()], "GET /qrs/user/full")
    assert user.email == "jane@corp.example" and [t.name for t in user.tags] == ["VIP-User"]


@pytest.mark.parametrize(("fields", "says"), [
    ({"tags": None}, "user 0: tags is not a list"),
    ({"tags": "VIP-User"}, "user 0: tags is not a list"),
    ({"customProperties": None}, "user 0: customProperties is not a list"),
    ({"id": "jdoe"}, "user 0: id is not a GUID"),
    ({"tags": [{"id": A1}]}, "0.tags.0.name: missing"),
    ({"customProperties": [{"value": None, "definition": {"name": "Department"}}]}, "0.customProperties.0.value"),
    ({"blacklisted": "no"}, "0.blacklisted"),
    ({"attributes": "jane@corp.example"}, "attributes"),
])
def test_a_malformed_full_user_is_a_bad_answer(fields: dict[str, Any], says: str) -> None:
    assert says in bad(lambda: answers.full_users([full_user(**fields)], "GET /qrs/user/full"))


def test_a_full_user_without_tags_is_a_bad_answer() -> None:
    record = full_user()
    del record["tags"]
    assert "tags is not a list" in bad(lambda: answers.full_users([record], "GET /qrs/user/full"))
    assert "not a JSON list" in bad(lambda: answers.full_users({"users": []}, "GET /qrs/user/full"))
