"""Dotted property paths (`user.userDirectory`, `tags.name`) resolved against the entity schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .schema import ENTITIES

Getter = Callable[[dict[str, Any]], Any]
_LOWER: dict[str, dict[str, str]] = {entity: {key.lower(): key for key in props} for entity, props in ENTITIES.items()}


class PathError(ValueError):
    """A property path that names no property of the entity."""


@dataclass(frozen=True)
class PropertyPath:
    text: str
    keys: tuple[str, ...]
    lists: tuple[bool, ...]  # whether the value at each step is a collection
    leaf: str  # scalar type of the last step ("str", "date", ...) or "@Entity" for an object

    @property
    def multi(self) -> bool:
        """True when the path crosses a collection, so it yields a list of values."""
        return any(self.lists)

    def getter(self) -> Getter:
        """A function from a JSON object to the value (or, when `multi`, the list of values) at this path."""
        if self.multi:
            return _multi_getter(self.keys, self.lists)
        if len(self.keys) == 1:
            key = self.keys[0]
            return lambda obj: obj.get(key)
        return _nested_getter(self.keys)


def resolve(entity: str, text: str) -> PropertyPath:
    """Resolve `text` (case-insensitive, dotted) against `entity`; raises PathError if any step is unknown."""
    keys: list[str] = []
    lists: list[bool] = []
    current = entity
    leaf = ""
    for part in text.split("."):
        if not current:
            raise PathError(f"Property '{text}' goes through '{keys[-1]}', which has no properties")
        key = _LOWER.get(current, {}).get(part.lower())
        if key is None:
            raise PathError(f"Unknown property '{text}' for {entity}")
        kind = ENTITIES[current][key]
        keys.append(key)
        lists.append(kind.endswith("[]"))
        leaf = kind.removesuffix("[]")
        current = leaf[1:] if leaf.startswith("@") else ""
    return PropertyPath(text, tuple(keys), tuple(lists), leaf)


def _nested_getter(keys: tuple[str, ...]) -> Getter:
    def get(obj: dict[str, Any]) -> Any:
        value: Any = obj
        for key in keys:
            if value is None:
                return None
            value = value.get(key)
        return value

    return get


def _multi_getter(keys: tuple[str, ...], lists: tuple[bool, ...]) -> Getter:
    if lists[0] and not any(lists[1:]):  # the common `tags.name` / `customProperties.definition.name`
        first = keys[0]
        rest = _nested_getter(keys[1:])
        return lambda obj: [rest(item) for item in obj.get(first) or ()]
    steps = tuple(zip(keys, lists, strict=True))

    def get(obj: dict[str, Any]) -> list[Any]:
        values: list[Any] = [obj]
        for key, is_list in steps:
            found: list[Any] = []
            for value in values:
                if value is None:
                    continue
                item = value.get(key)
                if is_list:
                    found.extend(item or ())
                else:
                    found.append(item)
            values = found
        return values

    return get
