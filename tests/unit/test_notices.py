"""Warnings, the notice period and holds: the pure decisions (``licenses/notices.py``) and the evaluation's sends
(``licenses/notice_run.py``) over an in-memory QRS, audit store and mailer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from butler.config import parse
from butler.licenses.evaluate import run_evaluation
from butler.licenses.model import Decision, Notice
from butler.licenses.notices import Hold, NoticeRules, Notices, NoticeState, Warned, warning_key
from butler.licenses.policy import Rules, decide
from butler.qrs.models import User
from tests.support.evaluate_fakes import FakeQrs, MemoryAudit, MemoryNotifier, make_allocation, make_user

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def management(require: bool = True, warn: int = 7, **mail: Any) -> dict[str, Any]:
    email = {"enable": True, "from": "butler@corp.example", **mail}
    return {"enable": True, "maxReleasePercent": 100, "abortAbovePercent": 100,
            "release": {"professional": {"inactivityDays": 30}, "analyzer": {"inactivityDays": 45}},
            "notifications": {"warnDaysBefore": warn, "requireWarning": require, "email": email}}


def rules(require: bool = True) -> Rules:
    return Rules.from_config(parse({"Butler": {"licenseManagement": management(require)}}).Butler.licenseManagement)


def decision(idle: float, user: User | None = None, now: datetime = NOW, require: bool = True) -> Decision:
    owner = user or make_user("jdoe", email="jdoe@corp.example")
    return decide(make_allocation(owner, NOW, idle), owner, rules(require), now)


def notices(state: NoticeState | None = None, require: bool = True) -> Notices:
    return Notices(rules(require), NoticeRules(7, require), state or NoticeState())


def warned(d: Decision, days_ago: float, status: str = "sent") -> NoticeState:
    key = warning_key(d)
    assert key is not None
    return NoticeState({key: Warned(NOW - timedelta(days=days_ago), status)})


# --- pure ------------------------------------------------------------------------------------------------------


def test_within_warn_days_of_the_threshold_a_warning_names_the_release_day() -> None:
    assert notices().finish(decision(22), NOW).action == "keep"
    d = notices().finish(decision(24), NOW)
    assert d.action == "warn" and "release on 2026-06-22" in d.reason  # threshold in 6 days, notice 7: the later


def test_once_warned_for_the_period_no_second_warning() -> None:
    d = decision(25)
    assert notices(warned(d, 1)).finish(d, NOW).action == "keep"
    assert notices(warned(d, 1, "sending")).finish(d, NOW).action == "keep"  # it may have arrived
    assert notices(warned(d, 1, "failed")).finish(d, NOW).action == "warn"  # it reached nobody


def test_require_warning_holds_a_release_until_the_notice_has_run() -> None:
    d = decision(31)
    assert d.action == "release"
    first = notices().finish(d, NOW)
    assert first.action == "warn" and "not warned for this inactivity period" in first.reason
    pending = notices(warned(d, 3)).finish(d, NOW)
    assert pending.action == "notice-pending" and "release on 2026-06-19" in pending.reason
    assert notices(warned(d, 7)).finish(d, NOW).action == "release"
    assert notices(require=False).finish(decision(31, require=False), NOW).action == "release"


def test_a_new_period_of_inactivity_needs_a_new_warning() -> None:
    old = decision(31)
    state = warned(old, 10)
    fresh = decision(31.5)  # other lastUsed: another period
    assert notices(state).finish(old, NOW).action == "release"
    assert notices(state).finish(fresh, NOW).action == "warn"


def test_protected_users_are_not_warned() -> None:
    vip = make_user("vip", email="v@corp.example", tags=[{"name": "VIP-User"}])
    r = Rules.from_config(parse({"Butler": {"licenseManagement": {
        **management(), "exclusions": {"tags": ["VIP-User"]}}}}).Butler.licenseManagement)
    d = decide(make_allocation(vip, NOW, 25), vip, r, NOW)
    assert Notices(r, NoticeRules(7, True), NoticeState()).finish(d, NOW).action == "keep"


def test_a_hold_protects_until_its_day_and_not_after() -> None:
    d = decision(60, require=False)
    hold = Hold("corp", "JDOE", date(2026, 7, 1), "cli:admin@host", "leave")
    state = NoticeState(holds={("corp", "jdoe"): hold})
    held = notices(state, require=False).finish(d, NOW)
    assert held.action == "protected" and held.reason == "hold: until 2026-07-01 by cli:admin@host (leave)"
    assert notices(state, require=False).finish(d, datetime(2026, 6, 30, 23, 59, tzinfo=UTC)).action == "protected"
    assert notices(state, require=False).finish(d, datetime(2026, 7, 1, tzinfo=UTC)).action == "release"


# --- the evaluation's sends -------------------------------------------------------------------------------------


class FakeMail:
    def __init__(self, refused: Sequence[str] = (), admins: Sequence[str] = ("admins@corp.example",)) -> None:
        self.sent: list[tuple[str, str]] = []
        self.refused, self.admin_addresses = set(refused), list(admins)

    def _send(self, kind: str, to: str) -> list[str]:
        if to in self.refused:
            raise OSError(f"550 {to} unknown")
        self.sent.append((kind, to))
        return [to]

    def warning(self, to: str, notice: Notice) -> list[str]:
        assert notice.release_on is not None
        return self._send("warning", to)

    def released(self, to: str, notice: Notice) -> list[str]:
        return self._send("release", to)

    def admins(self, notices: Sequence[Notice]) -> list[str]:
        if not self.admin_addresses:
            raise OSError("no notifications.email.adminAddresses")
        self.sent += [("admins", n.qualified_id) for n in notices]
        return self.admin_addresses


def site(*users: tuple[str, float, str | None]) -> FakeQrs:
    people = [make_user(name, email=address) for name, _, address in users]
    return FakeQrs([make_allocation(u, NOW, idle) for u, (_, idle, _) in zip(people, users, strict=True)], people)


def evaluate(qrs: FakeQrs, audit: MemoryAudit, mail: FakeMail, *, dry_run: bool = False,
             notifier: MemoryNotifier | None = None, now: datetime = NOW) -> dict[str, Decision]:
    config = parse({"Butler": {"licenseManagement": management()}})
    report = run_evaluation(config, qrs, audit=audit, notifier=notifier, influx=None, dry_run=dry_run, now=now,
                            mail=mail)
    return {d.user_id: d for d in report.decisions}


def test_one_bad_address_goes_to_the_administrators_and_the_run_goes_on() -> None:
    qrs, audit = site(("good", 25, "good@corp.example"), ("bad", 25, "bad@corp.example"), ("none", 25, None)), \
        MemoryAudit()
    mail = FakeMail(refused=["bad@corp.example"])
    decisions = evaluate(qrs, audit, mail)
    assert {u: d.action for u, d in decisions.items()} == {"good": "warn", "bad": "warn", "none": "warn"}
    assert ("warning", "good@corp.example") in mail.sent
    assert {s for s in mail.sent if s[0] == "admins"} == {("admins", "CORP\\bad"), ("admins", "CORP\\none")}
    states = {r["userId"]: r for r in audit.warnings()}
    assert states["good"]["status"] == "sent" and states["good"]["via"] == "user"
    assert states["bad"]["via"] == "admins" and "550" in states["bad"]["error"]
    assert [r["template"] for r in audit.of_kind("mail")] == ["admin-warnings"]


def test_without_any_route_a_warning_fails_and_is_tried_again() -> None:
    qrs, audit = site(("none", 25, None)), MemoryAudit()
    first = evaluate(qrs, audit, FakeMail(admins=()))
    assert first["none"].action == "warn" and "NOT delivered" in first["none"].reason
    assert audit.warnings()[0]["status"] == "failed"
    mail = FakeMail()
    assert evaluate(qrs, audit, mail, now=NOW + timedelta(hours=1))["none"].action == "warn"
    assert mail.sent == [("admins", "CORP\\none")]


def test_the_sns_digest_is_a_route_to_the_administrators() -> None:
    qrs, audit, notifier = site(("none", 25, None)), MemoryAudit(), MemoryNotifier()
    evaluate(qrs, audit, FakeMail(admins=()), notifier=notifier)
    assert audit.warnings()[0]["status"] == "sent" and audit.warnings()[0]["to"] == ["sns-digest"]


def test_a_warning_left_sending_by_a_crash_never_goes_to_the_user_again() -> None:
    qrs, audit = site(("jdoe", 31, "jdoe@corp.example")), MemoryAudit()
    mail = FakeMail()
    evaluate(qrs, audit, mail)
    sending = {**audit.warnings()[0], "status": "sending"}
    audit.write(sending)  # as if the run had stopped right after the intent
    mail.sent.clear()
    assert evaluate(qrs, audit, mail, now=NOW + timedelta(days=1))["jdoe"].action == "warn"
    assert mail.sent == [("admins", "CORP\\jdoe")]


def test_a_dry_run_sends_nothing_and_writes_no_warning() -> None:
    qrs, audit, mail = site(("jdoe", 25, "jdoe@corp.example")), MemoryAudit(), FakeMail()
    assert evaluate(qrs, audit, mail, dry_run=True)["jdoe"].action == "would-warn"
    assert mail.sent == [] and audit.warnings() == []


def test_a_release_is_followed_by_its_notice() -> None:
    qrs, audit, mail = site(("jdoe", 31, "jdoe@corp.example")), MemoryAudit(), FakeMail()
    evaluate(qrs, audit, mail)
    assert evaluate(qrs, audit, mail, now=NOW + timedelta(days=7, minutes=1))["jdoe"].action == "release"
    assert mail.sent == [("warning", "jdoe@corp.example"), ("release", "jdoe@corp.example")]
    [record] = [r for r in audit.of_kind("mail") if r["template"] == "release"]
    assert record["outcome"] == "sent" and record["to"] == ["jdoe@corp.example"]


def test_holds_are_read_once_and_passed_to_the_policy() -> None:
    qrs, audit, mail = site(("away", 60, "a@corp.example")), MemoryAudit(), FakeMail()
    until = (NOW + timedelta(days=5)).date().isoformat()
    audit.write({"kind": "hold", "userDirectory": "CORP", "userId": "away", "until": until, "by": "cli:x@y",
                 "reason": None, "at": "2026-06-01T00:00:00.000Z", "runId": "hold-1", "active": True})
    assert evaluate(qrs, audit, mail)["away"].reason == f"hold: until {until} by cli:x@y"
    assert mail.sent == []  # a held user is not warned
