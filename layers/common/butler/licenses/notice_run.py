"""The evaluation's part in telling users: read the warnings and holds once, finish each decision
(``notices.Notices``), then send the warnings and the release notices and audit every send.

A warning is written to the audit store as ``sending`` before its mail goes, and rewritten ``sent`` (to whom) or
``failed`` after: a repeated or crashed run never sends it twice. A user without an address, or whose address the
mail server refused, is warned through the administrators: the ``adminAddresses`` mail and the note of the SNS run
digest; ``requireWarning`` counts that as sent (to the administrators). One bad address never stops the run. After
a release, the user gets a release notice (``mail`` record: to whom, which template, the outcome).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from butler.config import LicenseManagement
from butler.licenses.model import AuditTrail, Decision, Notice, Record, RunContext, UserNotices, iso
from butler.licenses.notices import NoticeRules, Notices, NoticeState, warning_key
from butler.licenses.policy import Rules
from butler.licenses.release import Recheck, describe
from butler.observability import logger
from butler.qrs.models import Allocation, User

SNS_DIGEST = "sns-digest"
NOTE_LISTED = 50


@dataclass
class NoticeRun:
    notices: Notices
    with_email: bool
    emails: dict[str, str] = field(default_factory=dict)  # allocation id -> owner's address, from the inventory

    @classmethod
    def start(cls, management: LicenseManagement, rules: Rules, audit: AuditTrail) -> NoticeRun:
        """The holds (one query) and, when users are warned, the warnings' state (one query)."""
        notice = NoticeRules.from_config(management.notifications)
        state = NoticeState.from_records(audit.warnings() if notice.warns else [], audit.holds())
        return cls(Notices(rules, notice, state), with_email=management.notifications.email.enable)

    def finish(self, decision: Decision, now: datetime) -> Decision:
        user = decision.user
        if user is not None and user.email:
            self.emails[decision.allocation.id] = user.email
        return self.notices.finish(decision, now)

    def recheck(self, inner: Recheck, clock: Callable[[], datetime]) -> Recheck:
        """The executor's fresh decision, finished the same way: a notice still pending, or a hold set, holds."""

        def again(fresh: Allocation, owner: User | None) -> Decision:
            return self.notices.finish(inner(fresh, owner), clock())

        return again

    def send(self, decisions: list[Decision], *, mail: UserNotices | None, audit: AuditTrail, run: RunContext,
             digest: bool) -> tuple[list[Decision], str | None]:
        """Send the warnings (``would-warn`` in a dry run) and the release notices; returns the decisions and the
        note for the administrators' digest."""
        if run.mode.dry_run:
            return [d.with_outcome("would-warn") if d.action == "warn" else d for d in decisions], None
        sender = _Sender(self, mail, audit, run, digest)
        result = sender.warn(decisions)
        sender.release_notices(result)
        return result, sender.note


@dataclass
class _Pending:
    index: int
    decision: Decision
    notice: Notice
    record: Record


class _Sender:
    def __init__(self, owner: NoticeRun, mail: UserNotices | None, audit: AuditTrail, run: RunContext,
                 digest: bool) -> None:
        self.owner, self.mail, self.audit, self.run, self.digest = owner, mail, audit, run, digest
        self.note: str | None = None

    # --- warnings --------------------------------------------------------------------------------------------

    def warn(self, decisions: list[Decision]) -> list[Decision]:
        result = list(decisions)
        to_admins: list[_Pending] = []
        for index, decision in enumerate(decisions):
            if decision.action != "warn":
                continue
            pending = self._intent(index, decision)
            if pending is None:
                result[index] = decision.with_outcome("warn", f"{decision.reason}; warning NOT sent: its audit "
                                                              "record could not be written")
                continue
            sent = self._to_user(pending)
            if sent is None:
                to_admins.append(pending)
            else:
                result[index] = sent
        for pending, outcome in zip(to_admins, self._to_admins(to_admins), strict=True):
            result[pending.index] = outcome
        return result

    def _intent(self, index: int, decision: Decision) -> _Pending | None:
        key = warning_key(decision)
        notices = self.owner.notices
        now = self.run.clock()
        release_on = notices.release_on(decision, now)
        user = decision.user
        notice = Notice(decision.qualified_user, user.name if user else None, decision.license_type,
                        decision.allocation.last_activity, release_on.date())
        previous = notices.state.warnings.get(key) if key else None
        record: Record = {
            "kind": "warning", "runId": self.run.run_id, "at": iso(now), "actor": self.run.actor, "dryRun": False,
            "userDirectory": decision.user_directory, "userId": decision.user_id,
            "userName": notice.user_name, "licenseType": decision.license_type,
            "allocationId": decision.allocation.id, "period": key[3] if key else None,
            "lastUsed": iso(decision.allocation.lastUsed), "releaseOn": release_on.date().isoformat(),
            "template": "warning", "status": "sending", "to": [], "error": None,
            "unconfirmedBefore": previous is not None and previous.status == "sending",
        }
        try:
            self.audit.write(record)
        except Exception as exc:  # no warning without its record: it could be sent twice
            logger.error("warning not sent: audit failed", extra={"user": decision.qualified_user,
                                                                  "error": describe(exc)})
            return None
        return _Pending(index, decision, notice, record)

    def _to_user(self, pending: _Pending) -> Decision | None:
        """The decision once mailed to the user; None when it must go to the administrators."""
        address = self.owner.emails.get(pending.decision.allocation.id)
        if pending.record["unconfirmedBefore"]:  # it may have arrived: never twice to the user
            pending.record["error"] = "an earlier run stopped while sending this warning"
            return None
        if self.mail is None or not address:
            pending.record["error"] = ("no e-mail address in QRS" if self.mail is not None
                                       else "notifications.email.enable: false")
            return None
        try:
            to = self.mail.warning(address, pending.notice)
        except Exception as exc:  # one bad address never stops the run
            pending.record["error"] = describe(exc)
            return None
        self._close(pending, "sent", to, via="user")
        return pending.decision.with_outcome("warn", f"{pending.decision.reason}; warned {', '.join(to)}")

    def _to_admins(self, pending: Sequence[_Pending]) -> list[Decision]:
        if not pending:
            return []
        to: list[str] = []
        error = None
        if self.mail is not None:
            try:
                to = self.mail.admins([p.notice for p in pending])
            except Exception as exc:
                error = describe(exc)
            self._mail_record("admin-warnings", None, to, error, users=len(pending))
        if self.digest:
            to.append(SNS_DIGEST)
            self.note = _note([p.notice for p in pending])
        outcomes = []
        for p in pending:
            why = p.record["error"]
            if to:
                self._close(p, "sent", to, via="admins")
                outcomes.append(p.decision.with_outcome("warn", f"{p.decision.reason}; warned through the "
                                                                f"administrators ({why})"))
            else:
                p.record["error"] = f"{why}; no administrators' route either (notifications.email.adminAddresses" \
                                    f"{f': {error}' if error else ''}; SNS topic)"
                self._close(p, "failed", [], via=None)
                outcomes.append(p.decision.with_outcome("warn", f"{p.decision.reason}; warning NOT delivered: "
                                                                f"{p.record['error']}"))
        return outcomes

    def _close(self, pending: _Pending, status: str, to: list[str], *, via: str | None) -> None:
        record = {**pending.record, "status": status, "to": to, "via": via, "sentAt": iso(self.run.clock())}
        if status == "sent":  # the notice period runs from when it was sent
            record["at"] = record["sentAt"]
        try:
            self.audit.write(record)
        except Exception as exc:  # left "sending": the next run tells the administrators, never the user again
            logger.error("warning outcome not audited", extra={"user": pending.notice.qualified_id,
                                                               "error": describe(exc)})

    # --- release notices -------------------------------------------------------------------------------------

    def release_notices(self, decisions: Sequence[Decision]) -> None:
        if self.mail is None:
            return
        for decision in decisions:
            address = self.owner.emails.get(decision.allocation.id)
            if decision.action != "release" or not address:
                continue
            user = decision.user or None
            notice = Notice(decision.qualified_user, user.name if user else None, decision.license_type,
                            decision.allocation.last_activity, days_inactive=decision.days_inactive,
                            reason=decision.reason)
            to, error = [], None
            try:
                to = self.mail.released(address, notice)
            except Exception as exc:  # the release is done; a lost notice is audited, the run goes on
                error = describe(exc)
            self._mail_record("release", decision, to or [address], error)

    def _mail_record(self, template: str, decision: Decision | None, to: list[str], error: str | None,
                     **extra: Any) -> None:
        record: Record = {"kind": "mail", "runId": self.run.run_id, "at": iso(self.run.clock()),
                          "actor": self.run.actor, "template": template, "to": to,
                          "outcome": "failed" if error else "sent", "error": error, **extra}
        if decision is not None:
            record |= {"userDirectory": decision.user_directory, "userId": decision.user_id,
                       "licenseType": decision.license_type, "allocationId": decision.allocation.id}
        try:
            self.audit.write(record)
        except Exception as exc:
            logger.error("mail not audited", extra={"template": template, "error": describe(exc)})


def _note(notices: Sequence[Notice]) -> str:
    lines = [f"{n.qualified_id} {n.license_type}: release on {n.release_on}" for n in notices[:NOTE_LISTED]]
    more = f" ... and {len(notices) - NOTE_LISTED} more" if len(notices) > NOTE_LISTED else ""
    return (f"{len(notices)} user(s) could not be warned by e-mail (no or refused address); please tell them "
            f"(opening any app in Qlik Sense before the date keeps the license): " + "; ".join(lines) + more)
