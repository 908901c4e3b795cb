"""`POST .../table`: a TableDefinition selects columns; the answer is a Table of rows.

A Property cell is the value at the column's (dotted) path. A List cell is an array with one inner array per
element of the named collection, holding that element's values in the list's column order, e.g. for tags
`[["VIP-User"], ["Executive"]]`. Rows are filtered, then sorted (by `sortcolumn`, else by id), then paged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import model
from .filters import Predicate, sort_key
from .model import JSON
from .paths import PathError, resolve
from .schema import ENTITIES

Cell = Callable[[JSON], Any]
COLUMN_TYPES = {"undefined": 0, "property": 1, "function": 2, "list": 3, "privileges": 4}
_LIST_ALIASES = {
    "tag": "tags",
    "customproperty": "customproperties",
    "custompropertyvalue": "customproperties",
    "attribute": "attributes",
    "userattribute": "attributes",
    "session": "sessions",
}


class TableError(ValueError):
    """A TableDefinition or paging parameter QRS would reject (400)."""


def build_table(
    entity: str, objects: list[JSON], definition: Any, predicate: Predicate | None, query: dict[str, str]
) -> JSON:
    """`objects` must already be in id order (the default order); cells are computed for the page only."""
    names, cells = _compile_columns(entity, definition)
    if predicate is not None:
        objects = [obj for obj in objects if predicate(obj)]
    objects = _sorted(objects, names, cells, query)
    skip, take = _int(query, "skip"), _int(query, "take")
    page = objects[skip : skip + take] if take > 0 else objects[skip:]
    rows = [[cell(obj) for cell in cells] for obj in page]
    return {"schemaPath": "Table", "columnNames": names, "rows": rows, "id": None}


def _compile_columns(entity: str, definition: Any) -> tuple[list[str], list[Cell]]:
    if not isinstance(definition, dict) or not isinstance(definition.get("columns"), list):
        raise TableError("The table definition must be an object with a 'columns' list")
    names: list[str] = []
    cells: list[Cell] = []
    for column in definition["columns"]:
        if not isinstance(column, dict):
            raise TableError("Each table column must be an object")
        name = str(column.get("name") or column.get("definition") or "")
        names.append(name)
        cells.append(_column(entity, column))
    return names, cells


def _column(entity: str, column: JSON) -> Cell:
    kind = _column_type(column.get("columnType", 1))
    text = str(column.get("definition") or "")
    if kind == COLUMN_TYPES["privileges"]:
        return lambda _obj: list(model.PRIVILEGES)
    if kind == COLUMN_TYPES["function"]:
        return lambda _obj: None  # functions (aggregates over other entities) are not simulated
    if kind == COLUMN_TYPES["list"]:
        return _list_column(entity, text, column.get("list"))
    return _property(entity, text)


def _column_type(value: Any) -> int:
    if isinstance(value, int) and value in COLUMN_TYPES.values():
        return value
    if isinstance(value, str) and value.lower() in COLUMN_TYPES:
        return COLUMN_TYPES[value.lower()]
    raise TableError(f"Unknown columnType {value!r}")


def _property(entity: str, text: str) -> Cell:
    try:
        return resolve(entity, text).getter()
    except PathError as err:
        raise TableError(str(err)) from None


def _list_column(entity: str, text: str, columns: Any) -> Cell:
    key, element = _collection(entity, text)
    if not isinstance(columns, list) or not columns:
        raise TableError(f"The list column '{text}' needs a non-empty 'list' of columns")
    subcells = [_column(element, column) if isinstance(column, dict) else _bad_column() for column in columns]
    return lambda obj: [[cell(item) for cell in subcells] for item in obj.get(key) or ()]


def _bad_column() -> Cell:
    raise TableError("Each list column must be an object")


def _collection(entity: str, text: str) -> tuple[str, str]:
    """The collection property a List column names (`tag`, `tags`, `customProperties`, ...) and its element type."""
    wanted = _LIST_ALIASES.get(text.lower(), text.lower())
    for key, kind in ENTITIES[entity].items():
        if kind.startswith("@") and kind.endswith("[]") and key.lower() in (wanted, wanted + "s"):
            return key, kind[1:-2]
    raise TableError(f"Unknown list '{text}' for {entity}")


def _sorted(objects: list[JSON], names: list[str], cells: list[Cell], query: dict[str, str]) -> list[JSON]:
    column = query.get("sortcolumn")
    if not column:
        return objects
    lowered = [name.lower() for name in names]
    if column.lower() not in lowered:
        raise TableError(f"Unknown sortcolumn '{column}'")
    cell = cells[lowered.index(column.lower())]
    descending = query.get("orderascending", "true").lower() == "false"
    return sorted(objects, key=lambda obj: sort_key(cell(obj)), reverse=descending)  # stable: ties keep id order


def _int(query: dict[str, str], name: str) -> int:
    text = query.get(name) or "0"
    try:
        value = int(text)
    except ValueError:
        raise TableError(f"'{name}' must be an integer") from None
    if value < 0:
        raise TableError(f"'{name}' must not be negative")
    return value
