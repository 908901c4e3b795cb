"""Reading QRS answers against the shape asked for. Anything else is ``QrsBadAnswer``: one line naming the call and
the problem, never a body dump.

Fail closed: a protection rule reads tags, custom properties and user flags, so a table whose columns are not the
ones requested, a ``null`` where a list belongs, or a list cell that is not a list of lists would silently unprotect
users; such an answer stops the caller instead. An allocation list is read record by record: one unreadable record
becomes an ``Allocation`` with ``problem`` set (never released), the others are unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from butler.qrs.errors import QrsBadAnswer, one_line
from butler.qrs.models import Allocation, AllocationRecord, LicenseType, User, email_of, is_guid

T = TypeVar("T")
_ALLOCATIONS = TypeAdapter(list[AllocationRecord])
_USERS = TypeAdapter(list[User])
_DATES = {"createdDate", "modifiedDate", "lastUsed", "quarantineEnd"}


def show(value: Any, limit: int = 40) -> str:
    """A value as a message may quote it: its repr on one line, cut short."""
    return one_line(repr(value), limit)


# --- JSON --------------------------------------------------------------------------------------------------------


def parse_json(content: bytes, content_type: str, call: str) -> Any:
    if not content.strip():
        raise QrsBadAnswer(call, "an empty body where JSON was expected")
    try:
        return json.loads(content)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise QrsBadAnswer(call, _not_json(content, content_type, exc)) from None


def _not_json(content: bytes, content_type: str, exc: ValueError) -> str:
    kind = content_type.split(";", 1)[0].strip() or "no Content-Type"
    snippet = one_line(content[:400].decode("utf-8", "replace"), 60)
    if content.lstrip()[:1] == b"<":
        return f"an HTML page ({kind}) where JSON was expected: {snippet!r}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at byte {exc.pos} of {len(content)}; cut off?): {snippet!r}"
    return f"not valid JSON ({kind}): {snippet!r}"


def validated(adapter: Callable[[Any], T], payload: Any, call: str) -> T:
    """``adapter(payload)`` (a pydantic validation), a ValidationError as one line."""
    try:
        return adapter(payload)
    except ValidationError as exc:
        raise QrsBadAnswer(call, validation_problem(exc)) from None


def validation_problem(exc: ValidationError) -> str:
    found = exc.errors()
    first = found[0]
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    if first["type"] == "missing":
        return f"{where}: missing{more}"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}: {show(first.get('input'))}{more}"


def count(payload: Any, call: str) -> int:
    # A real QRS answers {"value": N}; the spec says a bare integer. Accept both, and nothing else.
    value = payload.get("value") if isinstance(payload, dict) else payload
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QrsBadAnswer(call, f"not a count: {show(payload)}")
    return value


def json_object(payload: Any, call: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise QrsBadAnswer(call, f"not a JSON object: {show(payload)}")
    return payload


def json_list(payload: Any, call: str) -> list[Any]:
    if not isinstance(payload, list):
        raise QrsBadAnswer(call, f"not a JSON list: {show(payload)}")
    return payload


# --- allocations -------------------------------------------------------------------------------------------------


def allocations_fast(content: bytes, license_type: LicenseType) -> list[Allocation] | None:
    """The whole list in pydantic's one pass when every record reads; None otherwise (then record by record)."""
    try:
        parsed = _ALLOCATIONS.validate_json(content)
    except ValidationError:
        return None
    return [a.model_copy(update={"licenseType": license_type, "problem": None}) for a in parsed]


def allocations(payload: Any, license_type: LicenseType, call: str) -> list[Allocation]:
    records = json_list(payload, call)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise QrsBadAnswer(call, f"record {index} is not a JSON object: {show(record)}")
    return [allocation(record, license_type) for record in records]


def allocation(record: dict[str, Any], license_type: LicenseType) -> Allocation:
    """One record; what cannot be read is dropped and named in ``problem`` (``id`` "" when it is unreadable)."""
    fields = {k: v for k, v in record.items() if k in Allocation.model_fields and k not in ("licenseType", "problem")}
    try:
        return AllocationRecord.model_validate({**fields, "licenseType": license_type})
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        problem = "; ".join(_field_problem(error) for error in exc.errors()[:3])
    readable = {k: v for k, v in fields.items() if k not in bad}
    readable["id"] = readable.get("id", "")
    try:
        return Allocation.model_validate({**readable, "licenseType": license_type, "problem": problem})
    except ValidationError:  # a field that read alone fails together with another: keep just the id
        return Allocation(id=readable["id"], licenseType=license_type, problem=problem)


def _field_problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"{where}: missing"
    kind = "date" if error["loc"][0] in _DATES else "value"
    return f"{where}: unreadable {kind} {show(error.get('input'))}"


def only_asked(found: Sequence[Any], asked: set[str], what: str, call: str) -> None:
    """A filtered read must answer only ids it asked for (a filter QRS ignored would answer everything)."""
    missing = next((item for item in found if not item.id), None)
    if missing is not None:
        raise QrsBadAnswer(call, f"a record without a readable id ({getattr(missing, 'problem', None)})")
    extra = [item.id for item in found if item.id.lower() not in asked]
    if extra:
        raise QrsBadAnswer(call, f"{len(extra)} {what} not asked for (first {show(extra[0])}): the filter was ignored")


# --- users from /user/full ---------------------------------------------------------------------------------------


def full_users(payload: Any, call: str) -> list[User]:
    records = json_list(payload, call)
    for index, record in enumerate(records):
        problem = _full_user_problem(record)
        if problem:
            raise QrsBadAnswer(call, f"user {index}: {problem}")
    return validated(_USERS.validate_python, records, call)


def _full_user_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"not a JSON object: {show(record)}"
    if not is_guid(record.get("id")):
        return f"id is not a GUID: {show(record.get('id'))}"
    for key in ("tags", "customProperties"):  # missing or null would read as "no protection"
        if not isinstance(record.get(key), list):
            return f"{key} is not a list: {show(record.get(key))}"
    return None


# --- users from /user/table --------------------------------------------------------------------------------------

_PROPERTIES = ("id", "userId", "userDirectory", "name", "inactive", "blacklisted", "removedExternally")
# list column -> (QRS's list definition, its sub-columns)
_LISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tags": ("tag", ("name",)),
    "customProperties": ("customProperties", ("definition.name", "value")),
    "attributes": ("attributes", ("attributeType", "attributeValue")),
}
_FLAGS = ("inactive", "blacklisted", "removedExternally")


class UserTable:
    """The ``/user/table`` definition of the columns the protection rules read (and, when asked, the e-mail
    attributes), and the checks of an answer against it."""

    def __init__(self, *, with_email: bool = False) -> None:
        self.lists = ("tags", "customProperties", *(("attributes",) if with_email else ()))
        self.names = [*_PROPERTIES, *self.lists]
        self.id_at = 0

    def body(self) -> dict[str, Any]:
        columns: list[dict[str, Any]] = [{"name": n, "columnType": "Property", "definition": n} for n in _PROPERTIES]
        for name in self.lists:
            definition, parts = _LISTS[name]
            columns.append({"name": name, "columnType": "List", "definition": definition,
                            "list": [{"name": p, "columnType": "Property", "definition": p} for p in parts]})
        # The spec names the entity `type`; the QMC sends `entity`. QRS ignores unknown properties: send both.
        return {"type": "User", "entity": "User", "columns": columns}

    def rows(self, payload: Any, take: int, call: str) -> list[list[Any]]:
        """The page's rows, each a list as long as the columns with a GUID id; the columns exactly as asked."""
        table = json_object(payload, call)
        names = table.get("columnNames")
        if names != self.names:
            raise QrsBadAnswer(call, f"columnNames {show(names, 80)} are not the columns asked for")
        rows = table.get("rows")
        if not isinstance(rows, list):
            raise QrsBadAnswer(call, f"rows is not a list: {show(rows)}")
        if len(rows) > take:
            raise QrsBadAnswer(call, f"{len(rows)} rows for take={take}")
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(self.names):
                raise QrsBadAnswer(call, f"row {index} is not a list of {len(self.names)} cells: {show(row)}")
            if not is_guid(row[self.id_at]):
                raise QrsBadAnswer(call, f"row {index}: id is not a GUID: {show(row[self.id_at])}")
        return rows

    def user(self, row: list[Any], call: str) -> User:
        record = dict(zip(self.names, row, strict=True))
        problem = _cells_problem(record, self.lists)
        if problem:
            raise QrsBadAnswer(call, f"user {record['id']}: {problem}")
        record["tags"] = [{"name": name} for (name,) in record["tags"]]
        record["customProperties"] = [{"definition": {"name": n}, "value": v} for n, v in record["customProperties"]]
        if "attributes" in record:
            pairs = record.pop("attributes")
            record["email"] = email_of([{"attributeType": t, "attributeValue": v} for t, v in pairs])
        return validated(User.model_validate, record, call)


def _cells_problem(record: dict[str, Any], lists: Sequence[str]) -> str | None:
    for key in ("userId", "userDirectory"):
        if not isinstance(record[key], str) or not record[key]:
            return f"{key} is not a name: {show(record[key])}"
    if record["name"] is not None and not isinstance(record["name"], str):
        return f"name is not text: {show(record['name'])}"
    for key in _FLAGS:
        if not isinstance(record[key], bool):
            return f"{key} is not true or false: {show(record[key])}"
    for key in lists:
        if not _list_of_lists(record[key], len(_LISTS[key][1]), nullable=key == "attributes"):
            return f"{key} is not a list of {list(_LISTS[key][1])} lists: {show(record[key])}"
    return None


def _list_of_lists(cell: Any, width: int, *, nullable: bool) -> bool:
    """``[[...], ...]`` with ``width`` text cells each (an attribute's value may be null: it only feeds e-mail)."""
    if not isinstance(cell, list):
        return False
    return all(isinstance(inner, list) and len(inner) == width
               and all(isinstance(v, str) or (nullable and v is None) for v in inner) for inner in cell)
