"""State from a scenario (CONTRACT section 2): explicit licenses and users, deterministic ids via uuid5.

Beyond the contract, a user's `license.type` may also be "analyzerTime" (an analyzer-capacity user: no allocation,
one usage record ending at `lastUsed`), and a user may carry `createdDate`. A quarantined allocation gets
quarantineEnd = lastUsed + 7 days (now + 7 days if never used); quarantine never expires by itself here.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import clock, model
from .builder import StateBuilder, gc_paused
from .model import JSON
from .state import Licenses, SimState

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
        return builder.finish()


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
    if license_ is not None and not isinstance(license_, dict):
        raise TypeError("'license' must be an object")
    created = _user_created(builder.now, entry, license_)
    stamp = clock.fmt(created)
    user = model.user(
        guid=builder.new_id(f"user:{key}"),
        created=created,
        directory=directory,
        user_id=user_id,
        name=entry.get("name"),
        flags={flag: bool(entry.get(flag, False)) for flag in _FLAGS},
        custom_properties=builder.property_values(key, _properties(entry.get("customProperties") or {}), stamp),
        tags=[builder.tag(str(name)) for name in entry.get("tags") or []],
    )
    builder.add_user(user)
    if license_ is not None:
        _add_license(builder, user, license_)


def _add_license(builder: StateBuilder, user: JSON, license_: JSON) -> None:
    kind = license_.get("type")
    if kind not in LICENSE_TYPES:
        raise ValueError(f"license.type must be one of {', '.join(LICENSE_TYPES)}, not {kind!r}")
    last_used = _date(license_, "lastUsed")
    if kind == "analyzerTime":
        end = last_used or builder.now
        builder.add_usage(user, 0, end - timedelta(minutes=12), 12)
        return
    created = _date(license_, "createdDate") or _default_created(builder.now, last_used)
    quarantine_end = None
    if license_.get("quarantined"):
        quarantine_end = (last_used or builder.now) + clock.QUARANTINE
    builder.add_allocation(kind, user, created, last_used, quarantine_end)


def _user_created(moment: datetime, entry: JSON, license_: JSON | None) -> datetime:
    explicit = _date(entry, "createdDate")
    if explicit is not None:
        return explicit
    earliest = moment - timedelta(days=180)
    if license_ is not None:
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
