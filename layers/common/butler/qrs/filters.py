"""Building QRS filter expressions with values escaped as QRS expects.

Strings are single-quoted with a backslash before a quote or backslash; GUIDs, booleans and numbers are bare.
Comparisons on strings are case-insensitive on the QRS side. An id goes in bare only once it is a GUID, so no text
can ever reach a filter unquoted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from butler.qrs.models import is_guid


def literal(value: str | bool | int | float | uuid.UUID | datetime) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        value = value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def compare(prop: str, op: str, value: str | bool | int | float | uuid.UUID | datetime) -> str:
    if op not in {"eq", "ne", "gt", "ge", "lt", "le", "sw", "ew", "so"}:
        raise ValueError(f"unknown QRS filter operator {op!r}")
    return f"{prop} {op} {literal(value)}"


def eq(prop: str, value: str | bool | int | float | uuid.UUID | datetime) -> str:
    return compare(prop, "eq", value)


def all_of(*parts: str) -> str:
    return " and ".join(f"({p})" if " or " in p else p for p in parts if p)


def any_of(*parts: str) -> str:
    return " or ".join(f"({p})" for p in parts if p) if len(parts) > 1 else (parts[0] if parts else "")


def guid(value: str) -> str:
    """A GUID as a bare filter literal; anything else is a ValueError (never quoted or sent in its place)."""
    if not is_guid(value):
        raise ValueError(f"not a GUID: {str(value)[:60]!r}")
    return value.lower()


def ids_equal(prop: str, ids: Iterable[str]) -> str:
    """``prop eq G1 or prop eq G2 ...`` for GUIDs (a ValueError for anything else)."""
    return " or ".join(f"{prop} eq {guid(value)}" for value in ids)
