"""The simulated repository: collections of immutable records, license totals, and the few mutations QRS allows.

Records are never changed in place: a mutation puts a new Record under the same id (dicts keep their position),
so readers can take a snapshot under the lock and then filter and serialize without it. Each record caches its
serialized JSON, which is what makes `/full` over tens of thousands of objects cheap.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from . import clock, model
from .model import JSON
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
        user_id = data["user"]["id"]
        if user_id in self._by_user[kind]:
            raise ValueError(f"user {data['user']['userDirectory']}\\{data['user']['userId']} already has {kind}")
        self.allocations[kind].put(data)
        self._by_user[kind][user_id] = data["id"]
        self._tally(kind, data, 1)

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
        """POST an allocation: a new one, or the reinstated quarantined one of that user (Qlik allows that)."""
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                raise Refused(400, f"The user with id {user_id} does not exist")
            coll = self.allocations[kind]
            existing = self._by_user[kind].get(user_id)
            if existing is not None:
                return self._reinstate(kind, coll.records[existing].data, by)
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
                self._by_user[kind].pop(data["user"]["id"], None)
                self._tally(kind, data, -1)
            self._refresh_excess(kind)
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
