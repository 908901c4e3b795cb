"""State from a scenario (CONTRACT section 2): explicit licenses and users, deterministic ids via uuid5.

Beyond the contract, a user's `license.type` may also be "analyzerTime" (an analyzer-capacity user: no allocation,
one usage record ending at `lastUsed`), and a user may carry `createdDate`. A quarantined allocation gets
quarantineEnd = lastUsed + 7 days (now + 7 days if never used); quarantine never expires by itself here.
Test aids: `orphanAllocations` (allocations whose user was deleted: `user` null) and `triggers` (see __init__).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from . import clock, model
from .builder import StateBuilder, gc_paused
from .model import JSON
from .patches import PatchError, parse_triggers
from .state import Licenses, Refused, ServerLicense, SimState, orphan_allocation

_NAMESPACE = uuid.UUID("5b1d0f7e-93a4-4c8e-bf0e-6a1c2d3e4f50")
_FLAGS = ("inactive", "blacklisted", "removedExternally")
LICENSE_TYPES = (*model.ACCESS_TYPES, "analyzerTime")


class ScenarioError(ValueError):
    """The scenario does not follow CONTRACT section 2."""


def load_scenario(path: str | Path) -> JSON:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ScenarioError(f"cannot read scenario {path}: {err}") from None
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a JSON object with 'licenses' and 'users'")
    return data


def build_from_scenario(scenario: JSON, now: datetime | None = None) -> SimState:
    moment = now or clock.now()
    builder = StateBuilder(parse_licenses(scenario.get("licenses") or {}), moment, _stable_id)
    users = scenario.get("users", [])
    if not isinstance(users, list):
        raise ScenarioError("'users' must be a list")
    seen: set[str] = set()
    with gc_paused():
        for index, entry in enumerate(users):
            try:
                _add_user(builder, entry, seen)
            except (KeyError, TypeError, ValueError) as err:
                raise ScenarioError(f"users[{index}]: {err}") from None
        _add_orphans(builder, scenario.get("orphanAllocations") or [])
        state = builder.finish()
    state.server_license = parse_server_license(scenario.get("serverLicense"), moment)
    try:
        state.set_triggers(parse_triggers(scenario.get("triggers") or []))
    except PatchError as err:
        raise ScenarioError(str(err)) from None
    except Refused as err:
        raise ScenarioError(f"triggers: {err}") from None
    return state


def parse_server_license(block: Any, moment: datetime) -> ServerLicense | None:
    """`serverLicense`: {"validTo": "YYYY-MM-DD" | null, "validFrom"?, "isExpired"?, "isInvalid"?, "isBlacklisted"?}.

    `isExpired` defaults to whether validTo lies before today."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ScenarioError("serverLicense must be an object")
    unknown = sorted(set(block) - {"validTo", "validFrom", "isExpired", "isInvalid", "isBlacklisted"})
    if unknown:
        raise ScenarioError(f"serverLicense: unknown key(s) {', '.join(unknown)}")
    try:
        valid_to = _day(block, "validTo")
        valid_from = _day(block, "validFrom")
        flags = {key: block.get(key) for key in ("isExpired", "isInvalid", "isBlacklisted")}
        for key, value in flags.items():
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"'{key}' must be true or false")
    except ValueError as err:
        raise ScenarioError(f"serverLicense: {err}") from None
    expired = flags["isExpired"]
    if expired is None:
        expired = valid_to is not None and valid_to < moment.date()
    return ServerLicense(
        valid_to=valid_to,
        valid_from=valid_from,
        is_expired=expired,
        is_invalid=bool(flags["isInvalid"]),
        is_blacklisted=bool(flags["isBlacklisted"]),
    )


def _day(block: JSON, key: str) -> date | None:
    value = block.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a date YYYY-MM-DD or null")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(f"'{key}' is not a date YYYY-MM-DD: {value!r}") from None


def _add_orphans(builder: StateBuilder, entries: Any) -> None:
    """`orphanAllocations`: [{"type", "createdDate"?, "lastUsed"?, "quarantined"?, "deletedUserDirectory"?,
    "deletedUserId"?}]: allocations whose user no longer exists (`user` null), a test aid."""
    if not isinstance(entries, list):
        raise ScenarioError("'orphanAllocations' must be a list")
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise TypeError("each orphan allocation must be an object")
            kind = entry.get("type")
            if kind not in model.ACCESS_TYPES:
                raise ValueError(f"type must be one of {', '.join(model.ACCESS_TYPES)}, not {kind!r}")
            deleted = {key: entry.get(key) for key in ("deletedUserDirectory", "deletedUserId")}
            if not all(value is None or isinstance(value, str) for value in deleted.values()):
                raise ValueError("deletedUserDirectory and deletedUserId must be strings or null")
            last_used = _date(entry, "lastUsed")
            created = _date(entry, "createdDate") or _default_created(builder.now, last_used)
            guid = builder.new_id(f"orphan:{kind}:{index}")
            data = orphan_allocation(
                kind,
                guid,
                created,
                last_used,
                bool(entry.get("quarantined")),
                deleted["deletedUserDirectory"],
                deleted["deletedUserId"],
            )
            builder.state.add_allocation(kind, data)
        except (TypeError, ValueError) as err:
            raise ScenarioError(f"orphanAllocations[{index}]: {err}") from None


def parse_licenses(block: JSON) -> Licenses:
    try:
        time = block.get("analyzerTime") or {}
        minutes = {key: int(time.get(key, 0)) for key in ("allocatedMinutes", "usedMinutes", "unavailableMinutes")}
        tokens = block.get("tokens")
        return Licenses(
            professional=int((block.get("professional") or {}).get("total", 0)),
            analyzer=int((block.get("analyzer") or {}).get("total", 0)),
            analyzer_time=minutes,
            tokens=dict(tokens) if tokens is not None else None,
        )
    except (AttributeError, TypeError, ValueError) as err:
        raise ScenarioError(f"licenses: {err}") from None


def _stable_id(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


def _add_user(builder: StateBuilder, entry: Any, seen: set[str]) -> None:
    if not isinstance(entry, dict):
        raise TypeError("each user must be an object")
    directory, user_id = _text(entry, "userDirectory"), _text(entry, "userId")
    key = f"{directory.lower()}\\{user_id.lower()}"
    if key in seen:
        raise ValueError(f"duplicate user {directory}\\{user_id}")
    seen.add(key)
    license_ = entry.get("license")
    licenses = license_ if isinstance(license_, list) else [] if license_ is None else [license_]
    if not all(isinstance(item, dict) for item in licenses):
        raise TypeError("'license' must be an object or a list of objects")
    created = _user_created(builder.now, entry, licenses)
    stamp = clock.fmt(created)
    email = entry.get("email")
    if email is not None and (not isinstance(email, str) or not email):
        raise ValueError("'email' must be a non-empty string")
    user = model.user(
        guid=builder.new_id(f"user:{key}"),
        created=created,
        directory=directory,
        user_id=user_id,
        name=entry.get("name"),
        flags={flag: bool(entry.get(flag, False)) for flag in _FLAGS},
        custom_properties=builder.property_values(key, _properties(entry.get("customProperties") or {}), stamp),
        tags=[builder.tag(str(name)) for name in entry.get("tags") or []],
        attributes=[model.user_attribute(builder.new_id(f"email:{key}"), stamp, "email", email)] if email else None,
    )
    builder.add_user(user)
    for index, item in enumerate(licenses):
        _add_license(builder, user, item, index)


def _add_license(builder: StateBuilder, user: JSON, license_: JSON, index: int) -> None:
    kind = license_.get("type")
    if kind not in LICENSE_TYPES:
        raise ValueError(f"license.type must be one of {', '.join(LICENSE_TYPES)}, not {kind!r}")
    last_used = _date(license_, "lastUsed")
    if kind == "analyzerTime":
        end = last_used or builder.now
        builder.add_usage(user, index, end - timedelta(minutes=12), 12)
        return
    created = _date(license_, "createdDate") or _default_created(builder.now, last_used)
    quarantine_end = None
    if license_.get("quarantined"):
        quarantine_end = (last_used or builder.now) + clock.QUARANTINE
    builder.add_allocation(kind, user, created, last_used, quarantine_end)


def _user_created(moment: datetime, entry: JSON, licenses: list[JSON]) -> datetime:
    explicit = _date(entry, "createdDate")
    if explicit is not None:
        return explicit
    earliest = moment - timedelta(days=180)
    for license_ in licenses:
        for field in ("createdDate", "lastUsed"):
            value = _date(license_, field)
            if value is not None and value < earliest:
                earliest = value - timedelta(days=1)
    return earliest


def _default_created(moment: datetime, last_used: datetime | None) -> datetime:
    default = moment - timedelta(days=90)
    return min(default, last_used) if last_used is not None else default


def _text(entry: JSON, key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{key}' must be a non-empty string")
    return value


def _date(entry: JSON, key: str) -> datetime | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be an ISO datetime string or null")
    try:
        return clock.parse(value)
    except ValueError:
        raise ValueError(f"'{key}' is not an ISO datetime: {value!r}") from None


def _properties(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise TypeError("'customProperties' must map a property name to a list of values")
    return {
        str(name): [str(v) for v in (values if isinstance(values, list) else [values])] for name, values in raw.items()
    }
