"""Warnings, the notice period and holds, decided: pure functions over the policy's decision and the run's facts.

``policy.decide`` says what the rules say; ``finish`` then applies what people were told and asked for:

1. A hold (``butler hold``) that has not expired turns a ``release`` into ``protected`` with the reason
   ``hold: until DATE by CALLER (REASON)``. A hold ends on its date: from that day (UTC) it protects no more.
2. With ``notifications.warnDaysBefore`` N > 0, an allocation within N days of its threshold, not protected, whose
   owner has not been warned for this period of inactivity gets ``warn``. A period of inactivity is named by its
   start (``lastUsed``, else ``createdDate``): a user who uses Qlik Sense after a warning starts a new one, which
   needs a new warning.
3. With ``requireWarning``, a ``release`` needs a warning of the same period sent at least N days earlier: before
   that it is ``notice-pending`` (the reason holds the release date); never warned, it is warned now (``warn``),
   so switching warnings on releases nobody on the first run. Without ``requireWarning`` the warning is a courtesy:
   a release goes ahead at the threshold.

A warning's state (``Warned``) comes from the audit store: ``sending`` (written just before the mail went; the run
stopped before it knew the outcome), ``sent`` (to the user, or to the administrators when the user has no usable
address), ``failed`` (reached nobody). Only ``sent`` counts; ``failed`` is tried again, and ``sending`` is never sent
to the user again (it may have arrived): it goes to the administrators.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from butler.config import Notifications
from butler.licenses import policy
from butler.licenses.model import Decision, Record, iso
from butler.licenses.policy import Rules
from butler.qrs.models import LicenseType

WarningKey = tuple[str, str, str, str]  # directory, user id (both case-folded), license type, period start


@dataclass(frozen=True)
class NoticeRules:
    warn_days: int = 0
    require: bool = False

    @classmethod
    def from_config(cls, notifications: Notifications) -> NoticeRules:
        return cls(notifications.warnDaysBefore, notifications.requireWarning)

    @property
    def warns(self) -> bool:
        return self.warn_days > 0


@dataclass(frozen=True)
class Warned:
    at: datetime
    status: str  # sending | sent | failed
    to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hold:
    user_directory: str
    user_id: str
    until: date
    by: str
    reason: str | None = None
    at: str | None = None

    def active(self, now: datetime) -> bool:
        """Protects before its day (UTC); from that day on, no more."""
        return now.astimezone(UTC).date() < self.until

    def describe(self) -> str:
        return f"hold: until {self.until.isoformat()} by {self.by}" + (f" ({self.reason})" if self.reason else "")

    @classmethod
    def from_record(cls, record: Record) -> Hold:
        return cls(record["userDirectory"], record["userId"], date.fromisoformat(str(record["until"])),
                   str(record.get("by") or record.get("actor") or "unknown"), record.get("reason") or None,
                   record.get("at"))


def user_key(directory: str, user_id: str) -> tuple[str, str]:
    return directory.casefold(), user_id.casefold()


def period_of(decision: Decision) -> str | None:
    """The start of the allocation's period of inactivity, as stored: ``lastUsed``, else ``createdDate``."""
    return iso(decision.allocation.last_activity)


def warning_key(decision: Decision) -> WarningKey | None:
    period = period_of(decision)
    if period is None or not decision.user_id:
        return None
    return (*user_key(decision.user_directory, decision.user_id), decision.license_type, period)


def _parse_time(text: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class NoticeState:
    """The run's facts, read once: each warning's state and the holds set."""

    warnings: dict[WarningKey, Warned] = field(default_factory=dict)
    holds: dict[tuple[str, str], Hold] = field(default_factory=dict)

    @classmethod
    def from_records(cls, warnings: Iterable[Record], holds: Iterable[Record]) -> NoticeState:
        found: dict[WarningKey, Warned] = {}
        for record in warnings:
            at = _parse_time(record.get("at"))
            if at is None or not record.get("userId"):
                continue  # unreadable: never counts as a warning sent
            key = (*user_key(record["userDirectory"], record["userId"]), record["licenseType"], str(record["period"]))
            found[key] = Warned(at, str(record.get("status")), tuple(record.get("to") or ()))
        held = {}
        for record in holds:
            hold = Hold.from_record(record)
            held[user_key(hold.user_directory, hold.user_id)] = hold
        return cls(found, held)

    def hold_of(self, directory: str, user_id: str) -> Hold | None:
        return self.holds.get(user_key(directory, user_id))


@dataclass(frozen=True)
class Notices:
    """``finish`` with the run's rules and facts bound: the evaluation's and the executor's re-check alike."""

    rules: Rules
    notice: NoticeRules
    state: NoticeState

    def finish(self, decision: Decision, now: datetime) -> Decision:
        decision = self.apply_hold(decision, now)
        return self.apply_notice(decision, now) if self.notice.warns else decision

    def apply_hold(self, decision: Decision, now: datetime) -> Decision:
        if decision.action != "release":
            return decision
        hold = self.state.hold_of(decision.user_directory, decision.user_id)
        return decision.with_outcome("protected", hold.describe()) if hold and hold.active(now) else decision

    def apply_notice(self, decision: Decision, now: datetime) -> Decision:
        key = warning_key(decision)
        if key is None:
            return decision
        warned = self.state.warnings.get(key)
        if decision.action == "keep":
            return self._before_threshold(decision, warned, now)
        if decision.action == "release":
            return self._past_threshold(decision, warned, now)
        return decision

    def release_on(self, decision: Decision, now: datetime) -> datetime:
        """When a warning sent now lets the allocation go: its threshold, and with ``requireWarning`` not before the
        notice period has run."""
        due = policy.releasable_at(decision.allocation, self.rules) if decision.action == "keep" else None
        due = max(due or now, now)
        return max(due, now + timedelta(days=self.notice.warn_days)) if self.notice.require else due

    def _before_threshold(self, decision: Decision, warned: Warned | None, now: datetime) -> Decision:
        license_type = decision.license_type
        threshold = self.rules.inactivity_days[license_type]
        days = decision.days_inactive
        if days is None or days < threshold - self.notice.warn_days or not self._warnable(decision, now):
            return decision
        if warned is not None and warned.status in ("sent", "sending"):
            return decision.with_outcome("keep", f"{decision.reason}; warned {_day(warned.at)}")
        when = self.release_on(decision, now)
        return decision.with_outcome("warn", f"{_window(self.notice, license_type, threshold)}: {days:.1f} days "
                                             f"inactive; release on {_day(when)} unless used before")

    def _past_threshold(self, decision: Decision, warned: Warned | None, now: datetime) -> Decision:
        if warned is not None and warned.status == "sent":
            due = warned.at + timedelta(days=self.notice.warn_days)
            if not self.notice.require or now >= due:
                return decision.with_outcome("release", f"{decision.reason}; warned {_day(warned.at)}")
            return decision.with_outcome(
                "notice-pending", f"notifications.requireWarning: warned {iso(warned.at)}; notice period "
                                  f"notifications.warnDaysBefore {self.notice.warn_days} runs until {iso(due)}: "
                                  f"release on {_day(due)}")
        if not self.notice.require:
            return decision
        when = self.release_on(decision, now)
        return decision.with_outcome("warn", f"notifications.requireWarning: {decision.reason}, not warned for this "
                                             f"inactivity period yet; release on {_day(when)} unless used before")

    def _warnable(self, decision: Decision, now: datetime) -> bool:
        """Only an owner whose record was read and whom no rule or hold protects is warned."""
        allocation, user = decision.allocation, decision.user
        if allocation.user is None or policy.owner_record_problem(allocation, user):
            return False
        if policy.protections(allocation, user, self.rules, now):
            return False
        hold = self.state.hold_of(decision.user_directory, decision.user_id)
        return hold is None or not hold.active(now)


def _window(notice: NoticeRules, license_type: LicenseType, threshold: float) -> str:
    return (f"notifications.warnDaysBefore {notice.warn_days} of release.{license_type}.inactivityDays "
            f"{threshold:g}")


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()
