"""Factories for QRS JSON objects, key order as in the spec; unset properties are null."""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any, ClassVar

from . import clock

JSON = dict[str, Any]
SYSTEM_USER = "INTERNAL\\sa_repository"
PRIVILEGES = ["create", "read", "update", "delete"]
ACCESS_TYPES = {"professional": "LicenseProfessionalAccessType", "analyzer": "LicenseAnalyzerAccessType"}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class GuidStream:
    """Version-4 GUIDs drawn from a seeded generator in bulk: deterministic, and far cheaper than uuid5 per id."""

    _VARIANT: ClassVar[dict[str, str]] = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._hex = ""
        self._pos = 0

    def __call__(self, _key: str = "") -> str:
        if self._pos >= len(self._hex):
            self._hex, self._pos = self.rng.randbytes(16 * 4096).hex(), 0
        h, pos = self._hex, self._pos
        self._pos = pos + 32
        return (
            f"{h[pos : pos + 8]}-{h[pos + 8 : pos + 12]}-4{h[pos + 13 : pos + 16]}-"
            f"{self._VARIANT[h[pos + 16]]}{h[pos + 17 : pos + 20]}-{h[pos + 20 : pos + 32]}"
        )


def with_privileges(obj: Any) -> Any:
    """A deep copy with every `privileges` property filled, as for `?privileges=true`."""
    if isinstance(obj, list):
        return [with_privileges(item) for item in obj]
    if isinstance(obj, dict):
        return {key: list(PRIVILEGES) if key == "privileges" else with_privileges(value) for key, value in obj.items()}
    return obj


def entity_header(guid: str, created: str, modified: str, schema_path: str, by: str = SYSTEM_USER) -> JSON:
    return {
        "id": guid,
        "createdDate": created,
        "modifiedDate": modified,
        "modifiedByUserName": by,
        "schemaPath": schema_path,
        "privileges": None,
    }


def tag_condensed(guid: str, name: str) -> JSON:
    return {"id": guid, "privileges": None, "name": name}


def tag(condensed: JSON, created: str) -> JSON:
    return {**entity_header(condensed["id"], created, created, "Tag"), "name": condensed["name"]}


def custom_property_condensed(guid: str, name: str, choices: list[str]) -> JSON:
    return {"id": guid, "privileges": None, "name": name, "valueType": "Text", "choiceValues": choices}


def custom_property_definition(condensed: JSON, created: str) -> JSON:
    return {
        **entity_header(condensed["id"], created, created, "CustomPropertyDefinition"),
        "name": condensed["name"],
        "valueType": condensed["valueType"],
        "choiceValues": condensed["choiceValues"],
        "objectTypes": ["User"],
        "description": "",
    }


def custom_property_value(guid: str, created: str, definition: JSON, value: str) -> JSON:
    # Literal dicts (not entity_header merges) in the per-user factories: they run ~10^5 times per site.
    return {
        "id": guid,
        "createdDate": created,
        "modifiedDate": created,
        "modifiedByUserName": SYSTEM_USER,
        "schemaPath": "CustomPropertyValue",  # no privileges property in the spec
        "value": value,
        "definition": definition,
    }


def user_attribute(guid: str, created: str, kind: str, value: str) -> JSON:
    return {
        "id": guid,
        "createdDate": created,
        "modifiedDate": created,
        "modifiedByUserName": SYSTEM_USER,
        "schemaPath": "UserAttribute",  # no privileges property in the spec
        "attributeType": kind,
        "attributeValue": value,
        "externalId": value,
    }


def user(
    guid: str,
    created: datetime,
    directory: str,
    user_id: str,
    name: str | None,
    flags: dict[str, bool],
    custom_properties: list[JSON],
    tags: list[JSON],
    roles: list[str] | None = None,
    attributes: list[JSON] | None = None,
) -> JSON:
    stamp = clock.fmt(created)
    return {
        "id": guid,
        "createdDate": stamp,
        "modifiedDate": stamp,
        "modifiedByUserName": SYSTEM_USER,
        "schemaPath": "User",
        "privileges": None,
        "customProperties": custom_properties,
        "userId": user_id,
        "userDirectory": directory,
        "userDirectoryConnectorName": directory,
        "name": name if name is not None else user_id,
        "roles": roles or [],
        "attributes": attributes or [],
        "inactive": flags.get("inactive", False),
        "removedExternally": flags.get("removedExternally", False),
        "blacklisted": flags.get("blacklisted", False),
        "deleteProhibited": False,
        "tags": tags,
        "favorites": [],
    }


def user_condensed(full: JSON) -> JSON:
    return {
        "id": full["id"],
        "privileges": None,
        "userId": full["userId"],
        "userDirectory": full["userDirectory"],
        "userDirectoryConnectorName": full["userDirectoryConnectorName"],
        "name": full["name"],
    }


def allocation(
    kind: str,
    guid: str,
    user_condensed_json: JSON | None,
    created: datetime,
    last_used: datetime | None,
    quarantine_end: datetime | None = None,
    by: str = SYSTEM_USER,
) -> JSON:
    """A LicenseProfessionalAccessType / LicenseAnalyzerAccessType; quarantined iff quarantine_end is given.

    `user_condensed_json` None makes an ownerless allocation (its user was deleted from the repository)."""
    modified = last_used if last_used is not None and last_used > created else created
    return {
        "id": guid,
        "createdDate": clock.fmt(created),
        "modifiedDate": clock.fmt(modified),
        "modifiedByUserName": by,
        "schemaPath": ACCESS_TYPES[kind],
        "privileges": None,
        "user": user_condensed_json,
        "lastUsed": clock.fmt(last_used),
        "excess": False,
        "quarantined": quarantine_end is not None,
        "quarantineEnd": clock.fmt(quarantine_end),
        "deletedUserId": None,
        "deletedUserDirectory": None,
    }


def analyzer_time_type(guid: str, created: str, minutes: dict[str, int]) -> JSON:
    allocated, used = minutes["allocatedMinutes"], minutes["usedMinutes"]
    return {
        **entity_header(guid, created, created, "LicenseAnalyzerTimeAccessType"),
        "name": "Analyzer capacity",
        "usedMinutes": used,
        "remainingMinutes": allocated - used - minutes["unavailableMinutes"],
        "assignedMinutes": allocated,
        "assignedUnits": allocated // 6,  # capacity is consumed in 6-minute units
    }


def analyzer_time_usage(
    guid: str, user_condensed_json: JSON, time_type: JSON, start: datetime, stop: datetime, sessions: list[JSON]
) -> JSON:
    created, stopped = clock.fmt(start), clock.fmt(stop)
    return {
        **entity_header(guid, created, stopped, "LicenseAnalyzerTimeAccessUsage"),
        "useStartTime": created,
        "latestActivity": stopped,
        "hostName": "qliksense-node1.corp.example.com",
        "serverNodeConfigurationId": NODE_ID,
        "user": user_condensed_json,
        "useStopTime": stopped,
        "sessions": sessions,
        "analyzerTimeAccessType": {"id": time_type["id"], "privileges": None, "name": time_type["name"]},
    }


def analyzer_time_session(guid: str, session_id: str, start: datetime, latest: datetime) -> JSON:
    head = entity_header(guid, clock.fmt(start), clock.fmt(latest), "LicenseAnalyzerTimeAccessUsageSession")
    del head["privileges"]  # sessions have no privileges property
    return {**head, "sessionID": session_id, "latestActivity": clock.fmt(latest), "serverNodeConfigurationId": NODE_ID}


NODE_ID = "a4ad1f2b-3e0c-4f2a-9d55-1b0d6c3c8e11"
