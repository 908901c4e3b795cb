"""The core's records and ports: what ``butler.licenses`` hands out, and what it needs from the outside world.

Records are Qlik's own (``Allocation``, ``User`` in ``butler.qrs.models``) plus the core's: ``Decision``,
``RunMode``, ``Measurement`` and the audit ``Record``. Ports are Protocols that adapters implement (QRS client,
audit store, notifier, InfluxDB writer) and that ``butler.wiring``, the one composition root, plugs in. Nothing
here does I/O, and nothing in ``butler.licenses`` imports an adapter: a test holds both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

from butler.licenses.forecast import Sample
from butler.licenses.server_license import ServerLicense
from butler.qrs.models import AccessTypeOverview, Allocation, LicenseType, User, qualified

Action = Literal["release", "would-release", "protected", "keep", "skip", "failed", "deferred", "warn", "would-warn",
                 "notice-pending"]
Record = dict[str, Any]  # one audit record (see butler.sinks.audit for its keys in DynamoDB)


def iso(moment: datetime | None) -> str | None:
    """QRS's own date form: ISO 8601, UTC, milliseconds, ``Z``."""
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Decision:
    """What the policy (then the executor) decided for one allocation, and why."""

    allocation: Allocation
    user: User | None
    action: Action
    reason: str
    days_inactive: float | None

    @property
    def license_type(self) -> LicenseType:
        return self.allocation.licenseType

    @property
    def user_directory(self) -> str:
        owner = self.allocation.user
        return owner.userDirectory if owner else self.allocation.deletedUserDirectory or ""

    @property
    def user_id(self) -> str:
        owner = self.allocation.user
        return owner.userId if owner else self.allocation.deletedUserId or ""

    @property
    def qualified_user(self) -> str:
        return qualified(self.user_directory, self.user_id)

    def with_outcome(self, action: Action, reason: str | None = None) -> Decision:
        return Decision(self.allocation, self.user, action, reason or self.reason, self.days_inactive)

    def to_report(self) -> dict[str, Any]:
        """One decision of the evaluation report (CONTRACT section 3)."""
        return {
            "userDirectory": self.user_directory,
            "userId": self.user_id,
            "licenseType": self.license_type,
            "allocationId": self.allocation.id,
            "lastUsed": iso(self.allocation.lastUsed),
            "daysInactive": None if self.days_inactive is None else round(self.days_inactive, 2),
            "action": self.action,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RunMode:
    """Live or dry run, decided once (``why`` says by what) and applied by the executor alone."""

    dry_run: bool
    why: str = "configuration"

    @classmethod
    def resolve(cls, *, enabled: bool, configured_dry_run: bool, forced_dry_run: bool | None) -> RunMode:
        """``licenseManagement.enable: false`` always makes a dry run (automatic release off, visibility on);
        otherwise the caller's choice (``--dry-run``; tests), else ``licenseManagement.dryRun``."""
        if not enabled:
            return cls(True, "licenseManagement.enable: false")
        if forced_dry_run is not None:
            return cls(forced_dry_run, "asked by the caller")
        return cls(configured_dry_run, "licenseManagement.dryRun")

    def apply(self, decision: Decision) -> Decision:
        """A release becomes ``would-release`` in a dry run: the one place that says so."""
        return decision.with_outcome("would-release") if self.dry_run and decision.action == "release" else decision


@dataclass(frozen=True, slots=True)
class Measurement:
    """One InfluxDB point, free of any client library: the writer adapter renders it."""

    name: str
    tags: Mapping[str, str]
    fields: Mapping[str, Any]
    at: datetime | None = None
    precision: str = "s"


def _always() -> bool:
    return True


@dataclass(frozen=True)
class RunContext:
    """Who runs, which run, in which mode, at what time, and whether the run lock is still ours."""

    run_id: str
    actor: str
    mode: RunMode
    clock: Callable[[], datetime]
    alive: Callable[[], bool] = _always


def decision_record(decision: Decision, kind: str, *, run_id: str, actor: str, at: datetime,
                    dry_run: bool) -> Record:
    """The audit record of one allocation's decision, release intent or release outcome."""
    user = decision.user or decision.allocation.user
    return {
        "kind": kind, "runId": run_id, "at": iso(at), "actor": actor, "dryRun": dry_run,
        "allocationId": decision.allocation.id, "licenseType": decision.license_type,
        "userDirectory": decision.user_directory, "userId": decision.user_id,
        "userName": user.name if user else None,
        "action": decision.action, "reason": decision.reason,
        "daysInactive": None if decision.days_inactive is None else round(decision.days_inactive, 2),
        "lastUsed": iso(decision.allocation.lastUsed),
    }


class Refusal(Exception):
    """A request the core does not carry out as asked: one line, plus ``details`` for the caller's answer."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


class UserNotFound(Refusal):
    """No such user, or the user holds no allocation of the type asked for."""


class AmbiguousUser(Refusal):
    """A bare user id found in several user directories."""


class ProtectedUser(Refusal):
    """A protection rule holds: nothing was released."""


class ReinstateRefused(Refusal):
    """Nothing was allocated: none available, the user holds one already, or no release of ours to undo."""


class ReleaseFailed(Refusal):
    """At least one release failed; ``details`` lists every allocation's outcome."""


class MeasurementsNotWritten(Exception):
    """A write that did not reach InfluxDB; ``written`` counts the measurements of earlier batches that did."""

    def __init__(self, message: str, *, written: int = 0) -> None:
        super().__init__(message)
        self.written = written


# --- ports -------------------------------------------------------------------------------------------------------


class LicenseSource(Protocol):
    """What the core reads from and asks of QRS (``butler.qrs.QrsClient``). Ids are GUIDs; an id that no longer
    exists is simply absent from a by-id answer."""

    def access_type_overview(self) -> AccessTypeOverview: ...

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]: ...

    def allocations_by_id(self, license_type: LicenseType, ids: Iterable[str]) -> list[Allocation]: ...

    def users(self, qrs_filter: str | None = None, *, only_ids: set[str] | None = None,
              with_email: bool = False) -> list[User]: ...

    def users_by_id(self, ids: Iterable[str], *, with_email: bool = False) -> list[User]: ...

    def users_named(self, user_id: str, directory: str | None = None) -> list[User]: ...

    def allocations_of_user(self, license_type: LicenseType, user_guid: str) -> list[Allocation]: ...

    def server_license(self) -> ServerLicense: ...

    def delete_allocation(self, license_type: LicenseType, allocation_id: str) -> None: ...

    def allocate(self, license_type: LicenseType, user_guid: str) -> Allocation: ...


class AuditSink(Protocol):
    def write(self, record: Record) -> None: ...

    def write_many(self, records: Iterable[Record]) -> None: ...


class AuditTrail(AuditSink, Protocol):
    """An audit store that can be read back (DynamoDB, or the JSON Lines file)."""

    def records_for_run(self, run_id: str) -> list[Record]: ...

    def records_for_user(self, directory: str, user_id: str) -> list[Record]: ...

    def releases_between(self, start: datetime, end: datetime) -> list[Record]: ...

    def snapshots_between(self, start: date, end: date) -> list[Record]:
        """The daily ``snapshot`` records of the days ``start`` to ``end`` (inclusive)."""
        ...

    def open_intents(self) -> list[Record]: ...

    def open_runs(self) -> list[Record]: ...

    def warnings(self) -> list[Record]: ...

    def holds(self) -> list[Record]: ...


class Notifier(Protocol):
    """The administrators' notice of a run (SNS)."""

    def run_digest(self, run_id: str, decisions: Sequence[Decision], *, actor: str, dry_run: bool,
                   note: str | None = None) -> None: ...


class UsageHistory(Protocol):
    """InfluxDB's ``license_usage`` read back (capacity planning): the readings of those types in [start, end]."""

    def usage_samples(self, start: datetime, end: datetime, license_types: Sequence[str]) -> list[Sample]: ...


@dataclass(frozen=True)
class Notice:
    """What a mail to a user says (a warning, or the notice of a release), free of any mail library."""

    qualified_id: str  # DIRECTORY\userid
    user_name: str | None
    license_type: LicenseType
    last_used: datetime | None
    release_on: date | None = None  # a warning: the day of the release
    days_inactive: float | None = None  # a release notice
    reason: str = ""


class UserNotices(Protocol):
    """Mail to users and administrators (``butler.sinks.user_notices``); each method raises when the mail was not
    sent, and returns the addresses it went to."""

    def warning(self, to: str, notice: Notice) -> list[str]: ...

    def released(self, to: str, notice: Notice) -> list[str]: ...

    def admins(self, notices: Sequence[Notice]) -> list[str]: ...


class MeasurementWriter(Protocol):
    """InfluxDB: writes all the measurements or raises; returns how many were written."""

    def write(self, measurements: Sequence[Measurement]) -> int: ...

    def close(self) -> None: ...
