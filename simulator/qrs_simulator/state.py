"""The simulated repository: collections of immutable records, license totals, and the few mutations QRS allows.

Records are never changed in place: a mutation puts a new Record under the same id (dicts keep their position),
so readers can take a snapshot under the lock and then filter and serialize without it. Each record caches its
serialized JSON, which is what makes `/full` over tens of thousands of objects cheap.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any

from . import clock, model
from .model import JSON
from .patches import FLAGS, Trigger, UserPatch
from .schema import CONDENSED


class Record:
    """One QRS object (its full JSON, privileges null) with lazily cached serializations."""

    __slots__ = ("_condensed", "_raw", "data")

    def __init__(self, data: JSON) -> None:
        self.data = data
        self._raw: bytes | None = None
        self._condensed: bytes | None = None

    def raw(self) -> bytes:
        raw = self._raw
        if raw is None:
            raw = self._raw = model.dumps(self.data)
        return raw

    def condensed_raw(self, keys: tuple[str, ...]) -> bytes:
        raw = self._condensed
        if raw is None:
            raw = self._condensed = model.dumps(condense(self.data, keys))
        return raw


def condense(data: JSON, keys: tuple[str, ...]) -> JSON:
    return {key: data.get(key) for key in keys}


class Collection:
    """The objects behind one QRS resource path, e.g. `license/professionalaccesstype` (schema `entity`)."""

    def __init__(self, path: str, entity: str, lock: threading.RLock) -> None:
        self.path = path
        self.lock = lock
        self.entity = entity
        self.condensed_keys = CONDENSED[entity]
        self.records: dict[str, Record] = {}
        self.version = 0  # bumped on every change; keys the id-ordered cache
        self._by_id: tuple[int, list[Record]] = (-1, [])

    def put(self, data: JSON) -> None:
        self.records[data["id"]] = Record(data)
        self.version += 1

    def remove(self, guid: str) -> None:
        del self.records[guid]
        self.version += 1

    def sorted_by_id(self) -> list[Record]:
        """A snapshot in id order (the table endpoint's default order), cached until the next change."""
        with self.lock:
            version, ordered = self._by_id
            if version != self.version:
                ordered = sorted(self.records.values(), key=lambda record: record.data["id"])
                self._by_id = (self.version, ordered)
            return ordered

    def get(self, guid: str) -> Record | None:
        return self.records.get(guid)

    def __len__(self) -> int:
        return len(self.records)

    def snapshot(self) -> list[Record]:
        with self.lock:
            return list(self.records.values())

    def __iter__(self) -> Iterator[Record]:
        return iter(self.snapshot())


@dataclass
class Licenses:
    professional: int = 0
    analyzer: int = 0
    analyzer_time: dict[str, int] = field(
        default_factory=lambda: {"allocatedMinutes": 0, "usedMinutes": 0, "unavailableMinutes": 0}
    )
    tokens: dict[str, Any] | None = None

    def total(self, kind: str) -> int:
        return self.professional if kind == "professional" else self.analyzer


@dataclass
class ServerLicense:
    """What `GET /qrs/license` reports (scenario `serverLicense`); `valid_to` None is a license without end."""

    valid_to: date | None
    valid_from: date | None = None
    is_expired: bool = False
    is_invalid: bool = False
    is_blacklisted: bool = False


class Refused(Exception):
    """A request QRS would refuse; `status` is the HTTP code and the message the plain-text body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SimState:
    def __init__(self, licenses: Licenses, created: datetime) -> None:
        self.lock = threading.RLock()
        self.licenses = licenses
        self.created = created
        self.server_license: ServerLicense | None = None  # None: valid, ending far in the future
        # Pending triggers; while any is pending the server handles /qrs requests one at a time under trigger_lock.
        self.triggers: list[Trigger] = []
        self.trigger_lock = threading.Lock()
        self._names: dict[str, str] | None = None  # "directory\userid" lower-cased -> user id, built on first use
        self.users = Collection("user", "User", self.lock)
        self.allocations = {
            "professional": Collection("license/professionalaccesstype", "LicenseProfessionalAccessType", self.lock),
            "analyzer": Collection("license/analyzeraccesstype", "LicenseAnalyzerAccessType", self.lock),
        }
        self.tags = Collection("tag", "Tag", self.lock)
        self.custom_properties = Collection("custompropertydefinition", "CustomPropertyDefinition", self.lock)
        self.time_types = Collection("license/analyzertimeaccesstype", "LicenseAnalyzerTimeAccessType", self.lock)
        self.time_usages = Collection("license/analyzertimeaccessusage", "LicenseAnalyzerTimeAccessUsage", self.lock)
        # Token licensing is not simulated per user: these stay empty but answer like a real server.
        self.user_access = Collection("license/useraccesstype", "LicenseUserAccessType", self.lock)
        self.login_access = Collection("license/loginaccesstype", "LicenseLoginAccessType", self.lock)
        self._by_user: dict[str, dict[str, str]] = {kind: {} for kind in model.ACCESS_TYPES}
        self._excess: dict[str, set[str]] = {kind: set() for kind in model.ACCESS_TYPES}
        # Overview counts kept up to date on every change, so the overview costs nothing however large the site.
        self._counts: dict[str, Counter[str]] = {kind: Counter() for kind in model.ACCESS_TYPES}

    def collections(self) -> list[Collection]:
        return [
            self.users,
            *self.allocations.values(),
            self.tags,
            self.custom_properties,
            self.time_types,
            self.time_usages,
            self.user_access,
            self.login_access,
        ]

    # -- building -------------------------------------------------------------------------------------------

    def add_allocation(self, kind: str, data: JSON) -> None:
        """Add an allocation; one whose `user` is null (an ownerless one) is allowed, any number of them."""
        user = data["user"]
        if user is not None:
            if user["id"] in self._by_user[kind]:
                raise ValueError(f"user {user['userDirectory']}\\{user['userId']} already has {kind}")
            self._by_user[kind][user["id"]] = data["id"]
        self.allocations[kind].put(data)
        self._tally(kind, data, 1)

    def add_orphan_allocation(
        self,
        kind: str,
        created: datetime,
        last_used: datetime | None = None,
        quarantined: bool = False,
        deleted_user_directory: str | None = None,
        deleted_user_id: str | None = None,
    ) -> JSON:
        """A test aid: an allocation whose user no longer exists (`user: null`), added while running."""
        with self.lock:
            data = orphan_allocation(
                kind, str(uuid.uuid4()), created, last_used, quarantined, deleted_user_directory, deleted_user_id
            )
            self.add_allocation(kind, data)
            self._refresh_excess(kind)
            return self.allocations[kind].records[data["id"]].data

    def _replace(self, kind: str, old: JSON, new: JSON) -> None:
        self.allocations[kind].put(new)
        self._tally(kind, old, -1)
        self._tally(kind, new, 1)

    def _tally(self, kind: str, data: JSON, sign: int) -> None:
        counts = self._counts[kind]
        if data["quarantined"]:
            counts["quarantined"] += sign
        else:
            counts["allocated"] += sign
            counts["used"] += sign if data["lastUsed"] != clock.SENTINEL else 0

    def finish(self) -> SimState:
        """Order allocations by creation (newest last, which decides `excess`) and flag the excess ones."""
        for kind, coll in self.allocations.items():
            ordered = sorted(coll.records.values(), key=lambda rec: (rec.data["createdDate"], rec.data["id"]))
            coll.records = {rec.data["id"]: rec for rec in ordered}
            coll.version += 1
            self._refresh_excess(kind)
        return self

    # -- mutations ------------------------------------------------------------------------------------------

    def allocate(self, kind: str, user_id: str, by: str) -> JSON:
        """POST an allocation: a new one, or the reinstated quarantined one of that user (Qlik allows that).

        Refused (409, nothing changed) when the user holds one already, or when no license of the type is left
        (allocated + quarantined >= total: a quarantined allocation still occupies its license)."""
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                raise Refused(400, f"The user with id {user_id} does not exist")
            coll = self.allocations[kind]
            existing = self._by_user[kind].get(user_id)
            if existing is not None:
                return self._reinstate(kind, coll.records[existing].data, by)
            total = self.licenses.total(kind)
            if len(coll.records) >= total:
                raise Refused(
                    409,
                    f"No {kind} access is available: all {total} are allocated or quarantined "
                    f"({len(coll.records)} held)",
                )
            moment = clock.now()
            data = model.allocation(kind, str(uuid.uuid4()), model.user_condensed(user.data), moment, None, by=by)
            self.add_allocation(kind, data)
            self._refresh_excess(kind)
            return self.allocations[kind].records[data["id"]].data

    def _reinstate(self, kind: str, data: JSON, by: str) -> JSON:
        if not data["quarantined"]:
            user = data["user"]
            raise Refused(409, f"The user {user['userDirectory']}\\{user['userId']} already has {kind} access")
        stamp = clock.fmt(clock.now())
        updated = {
            **data,
            "quarantined": False,
            "quarantineEnd": clock.SENTINEL,
            "modifiedDate": stamp,
            "modifiedByUserName": by,
        }
        self._replace(kind, data, updated)
        return updated

    def release(self, kind: str, guid: str, by: str) -> bool:
        """DELETE an allocation with Qlik's quarantine rule; False if there is no such allocation."""
        with self.lock:
            coll = self.allocations[kind]
            record = coll.get(guid)
            if record is None:
                return False
            data = record.data
            if data["quarantined"]:
                return True
            moment = clock.now()
            last_used = clock.parse_qrs(data["lastUsed"])
            if last_used is not None and moment - last_used < clock.QUARANTINE:
                quarantined = {
                    **data,
                    "quarantined": True,
                    "quarantineEnd": clock.fmt(last_used + clock.QUARANTINE),
                    "modifiedDate": clock.fmt(moment),
                    "modifiedByUserName": by,
                }
                self._replace(kind, data, quarantined)
            else:
                coll.remove(guid)
                if data["user"] is not None:
                    self._by_user[kind].pop(data["user"]["id"], None)
                self._tally(kind, data, -1)
            self._refresh_excess(kind)
            return True

    # -- patches and triggers (test aids: PATCH /__sim/users, scenario `triggers`) ---------------------------

    def user_named(self, directory: str, user_id: str) -> str | None:
        """The id of the user `directory\\user_id` (case-insensitive), or None."""
        with self.lock:
            names = self._names
            if names is None or len(names) != len(self.users):
                names = self._names = {
                    f"{r.data['userDirectory'].lower()}\\{r.data['userId'].lower()}": guid
                    for guid, r in self.users.records.items()
                }
            return names.get(f"{directory.lower()}\\{user_id.lower()}")

    def check_patches(self, patches: list[UserPatch]) -> list[str]:
        """The user ids the patches name, in order; Refused(404) naming the first unknown user."""
        found: list[str] = []
        for patch in patches:
            guid = self.user_named(patch.directory, patch.user_id)
            if guid is None:
                raise Refused(404, f"No user {patch.label}: nothing was changed")
            found.append(guid)
        return found

    def patch_users(self, patches: list[UserPatch], by: str = model.SYSTEM_USER) -> int:
        """Apply the patches, all or none (every user is looked up first); the number of users changed."""
        with self.lock:
            targets = self.check_patches(patches)
            stamp = clock.fmt(clock.now())
            changed: set[str] = set()
            for patch, guid in zip(patches, targets, strict=True):
                if self._patch_user(guid, patch.changes, stamp, by):
                    changed.add(guid)
                for kind in model.ACCESS_TYPES:
                    if self._patch_allocation(kind, guid, patch.changes, stamp, by):
                        changed.add(guid)
                for kind in patch.changes.get("release", ()):  # as an administrator's release in the QMC
                    held = self._by_user[kind].get(guid)
                    if held is not None and self.release(kind, held, by):
                        changed.add(guid)
            return len(changed)

    def set_triggers(self, triggers: list[Trigger]) -> None:
        """Replace the pending triggers; their request counts start now. Refused(404) for an unknown user."""
        for trigger in triggers:
            self.check_patches(trigger.patches)
        with self.trigger_lock:
            self.triggers = list(triggers)

    def after_request(self, method: str) -> None:
        """Count one handled /qrs request and apply the triggers it completes (caller holds trigger_lock)."""
        fired: list[Trigger] = []
        for trigger in self.triggers:
            if trigger.method == method:
                trigger.seen += 1
                if trigger.seen >= trigger.count:
                    fired.append(trigger)
        for trigger in fired:
            self.triggers.remove(trigger)
            try:
                self.patch_users(trigger.patches)
            except Refused as err:  # checked when armed; users are never deleted, so this is a simulator bug
                print(f"qrs_simulator: trigger not applied: {err}", file=sys.stderr)

    def _patch_user(self, guid: str, changes: dict[str, Any], stamp: str, by: str) -> bool:
        data = self.users.records[guid].data
        new = dict(data)
        if "tags" in changes:
            new["tags"] = [self._tag(name, stamp, by) for name in changes["tags"]]
        if "customProperties" in changes:
            new["customProperties"] = self._property_values(data, changes["customProperties"], stamp, by)
        for flag in FLAGS:
            if flag in changes:
                new[flag] = changes[flag]
        if "email" in changes:
            new["attributes"] = _with_email(data["attributes"], changes["email"], stamp, by)
        if new == data:
            return False
        new["modifiedDate"], new["modifiedByUserName"] = stamp, by
        self.users.put(new)
        return True

    def _tag(self, name: str, stamp: str, by: str) -> JSON:
        """The TagCondensed named `name` (case-insensitive), defining the tag if it is new."""
        for record in self.tags.records.values():  # a site has a handful of tags
            if record.data["name"].lower() == name.lower():
                return model.tag_condensed(record.data["id"], record.data["name"])
        condensed = model.tag_condensed(str(uuid.uuid4()), name)
        self.tags.put({**model.tag(condensed, stamp), "modifiedByUserName": by})
        return condensed

    def _property_values(self, user: JSON, values: dict[str, list[str]], stamp: str, by: str) -> list[JSON]:
        """CustomPropertyValues for `values`, reusing the user's own where they match (so equal means unchanged)."""
        own = {(v["definition"]["name"].lower(), v["value"]): v for v in user["customProperties"]}
        out: list[JSON] = []
        for name, items in values.items():
            for value in items:
                existing = own.get((name.lower(), value))
                if existing is not None:
                    out.append(existing)
                    continue
                definition = self._property_definition(name, value, stamp, by)
                condensed = {key: definition[key] for key in CONDENSED["CustomPropertyDefinition"]}
                out.append(model.custom_property_value(str(uuid.uuid4()), stamp, condensed, value))
        return out

    def _property_definition(self, name: str, value: str, stamp: str, by: str) -> JSON:
        """The CustomPropertyDefinition `name`, defined if new; `value` is added to its choices if missing."""
        for record in self.custom_properties.records.values():  # a site has a handful of properties
            data = record.data
            if data["name"].lower() == name.lower():
                if value not in data["choiceValues"]:
                    data = {
                        **data,
                        "choiceValues": [*data["choiceValues"], value],
                        "modifiedDate": stamp,
                        "modifiedByUserName": by,
                    }
                    self.custom_properties.put(data)
                return data
        condensed = model.custom_property_condensed(str(uuid.uuid4()), name, [value])
        data = {**model.custom_property_definition(condensed, stamp), "modifiedByUserName": by}
        self.custom_properties.put(data)
        return data

    def _patch_allocation(self, kind: str, user_guid: str, changes: dict[str, Any], stamp: str, by: str) -> bool:
        guid = self._by_user[kind].get(user_guid)
        if guid is None or ("lastUsed" not in changes and "quarantined" not in changes):
            return False
        data = self.allocations[kind].records[guid].data
        new = dict(data)
        if "lastUsed" in changes:
            new["lastUsed"] = clock.fmt(changes["lastUsed"])
        if changes.get("quarantined") is True and not data["quarantined"]:
            start = clock.parse_qrs(new["lastUsed"]) or clock.now()
            new["quarantined"], new["quarantineEnd"] = True, clock.fmt(start + clock.QUARANTINE)
        elif changes.get("quarantined") is False and data["quarantined"]:
            new["quarantined"], new["quarantineEnd"] = False, clock.SENTINEL
        if new == data:
            return False
        new["modifiedDate"], new["modifiedByUserName"] = stamp, by
        self._replace(kind, data, new)
        return True

    def _refresh_excess(self, kind: str) -> None:
        """Flag the newest allocations beyond the license total as `excess` (O(excess), not O(allocations))."""
        coll = self.allocations[kind]
        count = max(0, len(coll.records) - self.licenses.total(kind))
        flagged = self._excess[kind]
        if count == 0 and not flagged:
            return
        wanted = set(islice(reversed(coll.records), count))
        for guid in flagged ^ wanted:
            record = coll.records.get(guid)
            if record is not None:  # a flagged allocation may just have been removed
                coll.put({**record.data, "excess": guid in wanted})
        self._excess[kind] = wanted

    # -- computed views -------------------------------------------------------------------------------------

    def overview(self) -> JSON:
        """GET /qrs/license/accesstypeoverview, computed from the allocations."""
        tokens = self.licenses.tokens
        user_access = {
            "allocatedTokens": 0,
            "usedTokens": 0,
            "quarantinedTokens": 0,
            **(tokens or {}).get("userAccess", {}),
        }
        login_access = {
            "allocatedTokens": 0,
            "usedTokens": 0,
            "unavailableTokens": 0,
            **(tokens or {}).get("loginAccess", {}),
        }
        total_tokens = int((tokens or {}).get("total", 0))
        available = max(0, total_tokens - user_access["allocatedTokens"] - login_access["allocatedTokens"])
        minutes = self.licenses.analyzer_time
        return {
            "totalTokens": total_tokens,
            "availableTokens": available,
            "tokensEnabled": tokens is not None,
            "userAccess": {
                "enabled": tokens is not None,
                "tokenCost": 1.0,
                **user_access,
                "schemaPath": "AccessTypeOverview.UserAccessDetails",
            },
            "loginAccess": {
                "enabled": tokens is not None,
                "tokenCost": 0.1,
                **login_access,
                "schemaPath": "AccessTypeOverview.LoginAccessDetails",
            },
            "professionalAccess": self._details("professional"),
            "analyzerAccess": self._details("analyzer"),
            "analyzerTimeAccess": {
                "enabled": minutes["allocatedMinutes"] > 0,
                **minutes,
                "schemaPath": "AccessTypeOverview.AnalyzerTimeAccessDetails",
            },
            "schemaPath": "AccessTypeOverview",
        }

    def _details(self, kind: str) -> JSON:
        total = self.licenses.total(kind)
        with self.lock:
            counts = self._counts[kind]
            allocated, quarantined, used = counts["allocated"], counts["quarantined"], counts["used"]
        return {
            "enabled": total > 0,
            "total": total,
            "allocated": allocated,
            "used": used,
            "quarantined": quarantined,
            "excess": max(0, allocated + quarantined - total),
            "available": max(0, total - allocated - quarantined),
            "schemaPath": "AccessTypeOverview.Details",
        }

    def dump_json(self) -> bytes:
        """dump() serialized, built from the records' cached JSON (fast even for 100,000 users)."""
        users = [record.raw() for record in self.users]
        allocations = [
            record.raw()[:-1] + b',"type":"' + kind.encode() + b'"}'
            for kind, coll in self.allocations.items()
            for record in coll
        ]
        return b"".join([b'{"users":[', b",".join(users), b'],"allocations":[', b",".join(allocations), b"]}"])

    def dump(self) -> JSON:
        """GET /__sim/state: users and allocations in QRS's shapes, allocations tagged with their type."""
        allocations = [{**record.data, "type": kind} for kind, coll in self.allocations.items() for record in coll]
        return {"users": [record.data for record in self.users], "allocations": allocations}


def orphan_allocation(
    kind: str,
    guid: str,
    created: datetime,
    last_used: datetime | None,
    quarantined: bool,
    deleted_user_directory: str | None,
    deleted_user_id: str | None,
) -> JSON:
    """An allocation whose user was deleted: `user` null, `deletedUserDirectory`/`deletedUserId` as given."""
    quarantine_end = (last_used or clock.now()) + clock.QUARANTINE if quarantined else None
    data = model.allocation(kind, guid, None, created, last_used, quarantine_end)
    data["deletedUserDirectory"], data["deletedUserId"] = deleted_user_directory, deleted_user_id
    return data


def _with_email(attributes: list[JSON], email: str | None, stamp: str, by: str) -> list[JSON]:
    """The user's attributes with the `email` one replaced (kept as is when its value is unchanged)."""
    emails = [a for a in attributes if str(a.get("attributeType") or "").lower() == "email"]
    if email is not None and len(emails) == 1 and emails[0].get("attributeValue") == email:
        return attributes
    others = [a for a in attributes if a not in emails]
    if email is None:
        return others
    attribute = {**model.user_attribute(str(uuid.uuid4()), stamp, "email", email), "modifiedByUserName": by}
    return [*others, attribute]
