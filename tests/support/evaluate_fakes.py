"""In-memory stand-ins for the evaluation's unit tests: a QRS with the client's method names, an audit sink, a
notifier and an InfluxDB writer, each recording what it was asked to do."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from butler.licenses.model import iso
from butler.qrs import QrsNotFound, QrsUnreachable
from butler.qrs.models import ACCESS_TYPE_PATH, Allocation, LicenseType, User
from butler.sinks.audit import latest
from butler.sinks.influx import line

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def qrs_date(moment: datetime) -> str:
    """A date as QRS writes it (the product's own ``iso``)."""
    return str(iso(moment))


def guid(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def make_user(user_id: str, directory: str = "CORP", **fields: Any) -> User:
    return User.model_validate({"id": guid(f"user/{directory}/{user_id}"), "userId": user_id,
                                "userDirectory": directory, "name": user_id.title(), **fields})


def make_allocation(user: User, now: datetime, idle_days: float, kind: LicenseType = "professional",
                    **fields: Any) -> Allocation:
    data = {"id": guid(f"{kind}/{user.userDirectory}/{user.userId}"),
            "createdDate": qrs_date(now - timedelta(days=400)), "lastUsed": qrs_date(now - timedelta(days=idle_days)),
            "user": {"id": user.id, "userId": user.userId, "userDirectory": user.userDirectory, "name": user.name},
            **fields}
    return Allocation.model_validate(data).model_copy(update={"licenseType": kind})


class FakeQrs:
    """The QrsClient methods the evaluation uses, over a dict of allocations; thread-safe; counts calls."""

    def __init__(self, allocations: list[Allocation], users: list[User], *, delay: float = 0.0) -> None:
        self.store = {a.id: a for a in allocations}
        self.user_list = users
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.read_errors: dict[str, Exception] = {}
        self.delete_errors: dict[str, Exception] = {}
        self.refreshed: dict[str, Allocation] = {}  # what a re-read returns instead (a user came back)
        self.refreshed_users: dict[str, User] = {}  # what a re-read of a user returns instead (tagged meanwhile)
        self.lost_deletes: set[str] = set()  # DELETEs carried out whose answer is lost (QrsUnreachable)
        self.user_filters: list[str | None] = []
        self._lock = threading.Lock()
        self.active = self.max_active = 0

    def _call(self, method: str, path: str) -> None:
        with self._lock:
            self.calls.append((method, path))

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]:
        self._call("GET", f"{ACCESS_TYPE_PATH[license_type]}/full")
        return [a for a in self.store.values() if a.licenseType == license_type]

    def allocation(self, license_type: LicenseType, allocation_id: str) -> Allocation:
        self._call("GET", f"{ACCESS_TYPE_PATH[license_type]}/{allocation_id}")
        if allocation_id in self.read_errors:
            raise self.read_errors[allocation_id]
        found = self.refreshed.get(allocation_id) or self.store.get(allocation_id)
        if found is None:
            raise QrsNotFound("GET", f"/qrs/{ACCESS_TYPE_PATH[license_type]}/{allocation_id}", 404, "Not found")
        return found

    def allocations_by_id(self, license_type: LicenseType, ids: Any) -> list[Allocation]:
        self._call("GET", f"{ACCESS_TYPE_PATH[license_type]}/full?ids")
        wanted = list(ids)
        for allocation_id in wanted:
            if allocation_id in self.read_errors:
                raise self.read_errors[allocation_id]
        found = [self.refreshed.get(i) or self.store.get(i) for i in wanted]
        return [a for a in found if a is not None and a.licenseType == license_type]

    def users_by_id(self, ids: Any, *, with_email: bool = False) -> list[User]:
        wanted = set(ids)
        self._call("POST", "user/table")
        self.user_filters.append(" or ".join(f"id eq {i}" for i in sorted(wanted)))
        return [self.refreshed_users.get(u.id, u) for u in self.user_list if u.id in wanted]

    def delete_allocation(self, license_type: LicenseType, allocation_id: str) -> None:
        self._call("DELETE", f"{ACCESS_TYPE_PATH[license_type]}/{allocation_id}")
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            if allocation_id in self.delete_errors:
                raise self.delete_errors[allocation_id]
            with self._lock:
                if self.store.pop(allocation_id, None) is None:
                    raise QrsNotFound("DELETE", f"/qrs/{ACCESS_TYPE_PATH[license_type]}/{allocation_id}", 404, "")
                self.refreshed.pop(allocation_id, None)
            if allocation_id in self.lost_deletes:
                raise QrsUnreachable(f"DELETE /qrs/{ACCESS_TYPE_PATH[license_type]}/{allocation_id}: connection "
                                     "dropped without an answer")
        finally:
            with self._lock:
                self.active -= 1

    def users(self, qrs_filter: str | None = None, *, only_ids: set[str] | None = None,
              with_email: bool = False) -> list[User]:
        self._call("POST", "user/table")
        self.user_filters.append(qrs_filter)
        if qrs_filter is None:
            return [u for u in self.user_list if only_ids is None or u.id in only_ids]
        wanted = set(_GUID.findall(qrs_filter))
        return [u for u in self.user_list if u.id in wanted]

    def deletes(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path in self.calls if method == "DELETE"]


class MemoryAudit:
    def __init__(self, fail_kinds: tuple[str, ...] = ()) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail_kinds = fail_kinds
        self.events: list[tuple[str, str]] = []  # (kind, allocationId), shared with FakeQrs order checks
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if record["kind"] in self.fail_kinds:
            raise OSError("audit store unavailable")
        with self._lock:
            self.records.append(record)

    def write_many(self, records: Any) -> None:
        for record in records:
            self.write(record)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == kind]

    def latest(self) -> list[dict[str, Any]]:
        return latest(self.records)

    def open_intents(self) -> list[dict[str, Any]]:
        return [r for r in self.latest() if r["kind"] == "release-intent" and r.get("open")]

    def open_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.latest() if r["kind"] == "run" and r.get("status") == "running"]

    def warnings(self) -> list[dict[str, Any]]:
        return [r for r in self.latest() if r["kind"] == "warning"]

    def holds(self) -> list[dict[str, Any]]:
        return [r for r in self.latest() if r["kind"] == "hold" and r.get("active")]

    def releases_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        low, high = qrs_date(start), qrs_date(end)
        return [r for r in self.latest() if r["kind"] == "release-outcome" and r["action"] == "release"
                and low <= r["at"] <= high]


class MemoryNotifier:
    """Records each run digest as (run id, actor, released allocation ids, failed allocation ids)."""

    def __init__(self, fail: bool = False) -> None:
        self.digests: list[tuple[str, str, list[str], list[str]]] = []
        self.fail = fail

    def run_digest(self, run_id: str, decisions: Any, *, actor: str, dry_run: bool, note: str | None = None) -> None:
        if self.fail:
            raise RuntimeError("SNS is down")
        self.digests.append((run_id, actor, [d.allocation.id for d in decisions if d.action == "release"],
                             [d.allocation.id for d in decisions if d.action == "failed"]))


class MemoryInflux:
    def __init__(self, fail: bool = False) -> None:
        self.lines: list[str] = []
        self.fail = fail

    def write(self, points: Any) -> int:
        if self.fail:
            raise ConnectionError("influx down")
        self.lines += [line(p) for p in points]
        return len(points)
