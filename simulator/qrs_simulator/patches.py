"""User patches (`PATCH /__sim/users`, scenario `triggers`): parsed and checked before anything is applied.

A patch names a user by `userDirectory` and `userId` (case-insensitive, as QRS matches them) and carries any of
the keys in `PATCH_KEYS`; the state applies it (SimState.patch_users).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import clock
from .model import JSON

FLAGS = ("inactive", "blacklisted", "removedExternally")
PATCH_KEYS = ("tags", "customProperties", *FLAGS, "email", "lastUsed", "quarantined", "release")
ACCESS_KINDS = ("professional", "analyzer")
TRIGGER_METHODS = ("GET", "POST", "PUT", "DELETE")


class PatchError(ValueError):
    """A patch or trigger of the wrong shape (a 400 for PATCH /__sim/users, a ScenarioError in a scenario)."""


@dataclass(frozen=True)
class UserPatch:
    directory: str
    user_id: str
    changes: dict[str, Any]  # normalized: tags list[str], customProperties dict[str, list[str]], lastUsed datetime|None

    @property
    def key(self) -> str:
        return f"{self.directory.lower()}\\{self.user_id.lower()}"

    @property
    def label(self) -> str:
        return f"{self.directory}\\{self.user_id}"


@dataclass
class Trigger:
    """Apply `patches` right after the `count`-th /qrs request of `method` (counted from when it was armed)."""

    method: str
    count: int
    patches: list[UserPatch]
    raw: JSON = field(default_factory=dict)
    seen: int = 0


def parse_patches(raw: Any) -> list[UserPatch]:
    if not isinstance(raw, list):
        raise PatchError("the patches must be a JSON list of objects")
    patches: list[UserPatch] = []
    for index, entry in enumerate(raw):
        try:
            patches.append(parse_patch(entry))
        except PatchError as err:
            raise PatchError(f"[{index}]: {err}") from None
    return patches


def parse_patch(entry: Any) -> UserPatch:
    if not isinstance(entry, dict):
        raise PatchError("a patch must be an object")
    unknown = sorted(set(entry) - {"userDirectory", "userId", *PATCH_KEYS})
    if unknown:
        raise PatchError(f"unknown key(s) {', '.join(unknown)}; a patch may carry {', '.join(PATCH_KEYS)}")
    directory, user_id = entry.get("userDirectory"), entry.get("userId")
    if not isinstance(directory, str) or not directory or not isinstance(user_id, str) or not user_id:
        raise PatchError("'userDirectory' and 'userId' must be non-empty strings")
    changes: dict[str, Any] = {}
    for key in PATCH_KEYS:
        if key in entry:
            changes[key] = _CHECKS[key](key, entry[key])
    return UserPatch(directory, user_id, changes)


def _tags(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise PatchError(f"'{key}' must be a list of tag names")
    unique: dict[str, str] = {}
    for name in value:
        unique.setdefault(name.lower(), name)
    return list(unique.values())


def _custom_properties(key: str, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise PatchError(f"'{key}' must map a property name to a list of values")
    result: dict[str, list[str]] = {}
    for name, values in value.items():
        items = values if isinstance(values, list) else [values]
        if not name or not all(isinstance(item, str) and item for item in items):
            raise PatchError(f"'{key}.{name}' must be a list of non-empty strings")
        result[name] = list(dict.fromkeys(items))
    return result


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PatchError(f"'{key}' must be true or false")
    return value


def _email(key: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise PatchError(f"'{key}' must be a non-empty string or null")
    return value


def _last_used(key: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PatchError(f"'{key}' must be an ISO datetime string or null")
    try:
        return clock.parse(value)
    except ValueError:
        raise PatchError(f"'{key}' is not an ISO datetime: {value!r}") from None


def _release(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(kind in ACCESS_KINDS for kind in value):
        raise PatchError(f"'{key}' must be a list of access types ({', '.join(ACCESS_KINDS)})")
    return list(dict.fromkeys(value))


_CHECKS: dict[str, Any] = {
    "tags": _tags,
    "customProperties": _custom_properties,
    **dict.fromkeys(FLAGS, _flag),
    "email": _email,
    "lastUsed": _last_used,
    "quarantined": _flag,
    "release": _release,
}


def parse_triggers(raw: Any) -> list[Trigger]:
    if not isinstance(raw, list):
        raise PatchError("'triggers' must be a list")
    triggers: list[Trigger] = []
    for index, entry in enumerate(raw):
        try:
            triggers.append(_trigger(entry))
        except PatchError as err:
            raise PatchError(f"triggers[{index}]: {err}") from None
    return triggers


def _trigger(entry: Any) -> Trigger:
    if not isinstance(entry, dict) or set(entry) != {"afterRequests", "patchUsers"}:
        raise PatchError('a trigger is {"afterRequests": {"method": ..., "count": N}, "patchUsers": [...]}')
    after = entry["afterRequests"]
    if not isinstance(after, dict) or set(after) != {"method", "count"}:
        raise PatchError("'afterRequests' must be an object with 'method' and 'count'")
    method, count = after["method"], after["count"]
    if not isinstance(method, str) or method.upper() not in TRIGGER_METHODS:
        raise PatchError(f"'afterRequests.method' must be one of {', '.join(TRIGGER_METHODS)}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise PatchError("'afterRequests.count' must be a whole number >= 1")
    try:
        patches = parse_patches(entry["patchUsers"])
    except PatchError as err:
        raise PatchError(f"patchUsers{err}" if str(err).startswith("[") else f"patchUsers: {err}") from None
    return Trigger(method.upper(), count, patches, raw=entry)
