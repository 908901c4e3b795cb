"""Holds and reinstatement: the administrator's use cases behind ``butler hold|holds|reinstate`` and the API's
``PUT|DELETE /v4/licenses/user/{userId}/hold`` and ``POST .../reinstate``.

A hold (leave of absence, a project on pause) keeps the evaluation from releasing the user's allocations before its
date (``notices.Hold``). It is one ``hold`` record per user in the audit store, rewritten on each change; each change
is also a ``hold-change`` record naming its caller. The evaluation reads the holds once per run.

Reinstatement allocates again, through QRS, the license type this tool released from the user (the latest release
not yet reinstated, from the audit store), or the type named. It is refused, nothing allocated, when the user holds
one already, QRS has none left (QRS's own reason), or there is no release of ours to undo. It is an explicit act of
an administrator: ``dryRun`` (which is about releases) does not apply. Every attempt is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from butler.config import LICENSE_TYPES, LicenseManagement
from butler.licenses.answers import HoldInfo, ReinstateResult, UserLicenses
from butler.licenses.model import (
    AuditTrail,
    LicenseSource,
    Record,
    ReinstateRefused,
    UserNotFound,
    iso,
)
from butler.licenses.notices import Hold
from butler.licenses.on_request import OnRequest
from butler.qrs.errors import QrsHttpError
from butler.qrs.models import LicenseType, User

REASON_MAX = 500


def parse_until(text: str, today: date) -> date:
    """The hold's date: YYYY-MM-DD, after today (a hold ending today or before would protect nothing)."""
    try:
        until = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"until {text[:40]!r}: not a date (YYYY-MM-DD)") from None
    if until <= today:
        raise ValueError(f"until {until.isoformat()}: must be after today ({today.isoformat()}); a hold protects "
                         "until that day")
    return until


def clean_reason(reason: str | None) -> str | None:
    text = " ".join((reason or "").split())
    if len(text) > REASON_MAX:
        raise ValueError(f"reason: at most {REASON_MAX} characters")
    return text or None


def hold_info(hold: Hold, now: datetime) -> HoldInfo:
    return HoldInfo(userDirectory=hold.user_directory, userId=hold.user_id, until=hold.until.isoformat(),
                    reason=hold.reason, by=hold.by, at=hold.at, active=hold.active(now))


@dataclass(frozen=True)
class Holds:
    qrs: Callable[[], LicenseSource]  # QRS, connected only when a use case needs it (not to list holds)
    audit: AuditTrail
    management: LicenseManagement
    clock: Callable[[], datetime]

    @property
    def source(self) -> LicenseSource:
        return self.qrs()

    def _find(self, user_id: str, directory: str | None) -> User:
        return OnRequest(self.source, self.management, self.clock).find_user(user_id, directory)

    # --- holds -------------------------------------------------------------------------------------------------

    def set(self, user_id: str, directory: str | None, until: str, reason: str | None, caller: str) -> HoldInfo:
        """Set (or replace) the user's hold; ValueError for a bad date or reason, UserNotFound for no such user."""
        now = self.clock()
        day, text = parse_until(until, now.astimezone(UTC).date()), clean_reason(reason)
        user = self._find(user_id, directory)
        hold = Hold(user.userDirectory, user.userId, day, caller, text, iso(now))
        self._write(hold, "set", active=True)
        return hold_info(hold, now)

    def remove(self, user_id: str, directory: str | None, caller: str) -> HoldInfo:
        """Lift the user's hold; UserNotFound when none is set."""
        now = self.clock()
        current = self.current(user_id, directory)
        if current is None:
            raise UserNotFound(f"no hold is set for {directory + chr(92) if directory else ''}{user_id}")
        self._write(current, "remove", active=False, caller=caller)
        return hold_info(current, now).model_copy(update={"active": False})

    def current(self, user_id: str, directory: str | None) -> Hold | None:
        """The hold set for the user (by directory and id, case-insensitive; a bare id in any directory)."""
        for record in self.audit.holds():
            same_dir = directory is None or str(record["userDirectory"]).casefold() == directory.casefold()
            if same_dir and str(record["userId"]).casefold() == user_id.casefold():
                return Hold.from_record(record)
        return None

    def all(self) -> list[HoldInfo]:
        now = self.clock()
        holds = [Hold.from_record(r) for r in self.audit.holds()]
        return [hold_info(h, now) for h in sorted(holds, key=lambda h: (h.until, h.user_directory, h.user_id))]

    def show(self, answer: UserLicenses) -> UserLicenses:
        """The user's picture with the hold: an active one protects, as the evaluation decides."""
        hold = self.current(answer.userId, answer.userDirectory)
        if hold is None:
            return answer
        now = self.clock()
        info = hold_info(hold, now)
        if not info.active:
            return answer.model_copy(update={"hold": info})
        reason = hold.describe()
        held_until = iso(datetime.combine(hold.until, datetime.min.time(), UTC)) or ""
        allocations = []
        for item in answer.allocations:
            update: dict[str, object] = {"protections": [*item.protections, reason]}
            if item.evaluation.action in ("release", "would-release", "warn", "notice-pending"):
                update["evaluation"] = item.evaluation.model_copy(update={"action": "protected", "reason": reason})
            if item.releasableAt is not None and item.releasableAt < held_until:
                update["releasableAt"] = held_until
            allocations.append(item.model_copy(update=update))
        return answer.model_copy(update={"hold": info, "protected": True, "allocations": allocations,
                                         "protections": [*answer.protections, reason]})

    def _write(self, hold: Hold, change: str, *, active: bool, caller: str | None = None) -> None:
        at = iso(self.clock())
        base: Record = {"userDirectory": hold.user_directory, "userId": hold.user_id, "until": hold.until.isoformat(),
                        "reason": hold.reason, "by": hold.by, "runId": f"hold-{uuid.uuid4().hex[:12]}"}
        self.audit.write_many([
            {"kind": "hold-change", **base, "at": at, "actor": caller or hold.by, "action": change},
            {"kind": "hold", **base, "at": hold.at if active else at, "actor": caller or hold.by, "active": active},
        ])

    # --- reinstatement -----------------------------------------------------------------------------------------

    def reinstate(self, user_id: str, directory: str | None, license_type: LicenseType | None, caller: str,
                  run_id: str | None = None) -> ReinstateResult:
        user = self._find(user_id, directory)
        run_id = run_id or f"reinstate-{uuid.uuid4().hex[:12]}"
        released = self._our_releases(user)
        chosen = license_type or (released[-1]["licenseType"] if released else None)
        undone = next((r for r in reversed(released) if r["licenseType"] == chosen), None)
        record: Record = {"kind": "reinstate", "runId": run_id, "at": iso(self.clock()), "actor": caller,
                          "userDirectory": user.userDirectory, "userId": user.userId, "licenseType": chosen,
                          "undoes": undone["at"] if undone else None}
        try:
            if chosen is None:
                for kind in LICENSE_TYPES:  # the likelier reason first: a reinstatement already done
                    self._not_held(user, kind)
                raise ReinstateRefused(f"no release of {user.qualified_id} by this tool to undo (give --license-type "
                                       "professional|analyzer, or ?licenseType=, to allocate anyway)")
            allocation_id = self._allocate(user, chosen)
        except ReinstateRefused as refused:
            self.audit.write({**record, "outcome": "refused", "reason": refused.message})
            raise
        self.audit.write({**record, "outcome": "reinstated", "allocationId": allocation_id})
        return ReinstateResult(userDirectory=user.userDirectory, userId=user.userId, licenseType=chosen,
                               allocationId=allocation_id, caller=caller, runId=run_id,
                               undoes=undone["at"] if undone else None)

    def _our_releases(self, user: User) -> list[Record]:
        """This tool's live releases from the user not reinstated since, oldest first."""
        history = sorted(self.audit.records_for_user(user.userDirectory, user.userId), key=lambda r: str(r["at"]))
        open_releases: dict[str, Record] = {}
        for record in history:
            kind = record.get("kind")
            if kind == "release-outcome" and record.get("action") == "release" and not record.get("dryRun"):
                open_releases[str(record["licenseType"])] = record
            elif kind == "reinstate" and record.get("outcome") == "reinstated":
                open_releases.pop(str(record["licenseType"]), None)
        return sorted(open_releases.values(), key=lambda r: str(r["at"]))

    def _not_held(self, user: User, license_type: LicenseType) -> None:
        held = [a for a in self.source.allocations_of_user(license_type, user.id) if not a.quarantined]
        if held:
            raise ReinstateRefused(f"{user.qualified_id} already holds a {license_type} allocation ({held[0].id})")

    def _allocate(self, user: User, license_type: LicenseType) -> str:
        self._not_held(user, license_type)
        try:
            allocation = self.source.allocate(license_type, user.id)
        except QrsHttpError as exc:
            if exc.status is not None and 400 <= exc.status < 500:  # none left, or held meanwhile: QRS's reason
                raise ReinstateRefused(f"QRS refused to allocate a {license_type} license to {user.qualified_id}: "
                                       f"{exc}") from None
            raise
        return allocation.id
