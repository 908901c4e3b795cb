"""The mail texts: what each says, ASCII subjects, escaped HTML, the hub link only when it is a web link."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from butler.sinks.email import (
    Mail,
    WarningEntry,
    admin_digest_mail,
    admin_warnings_mail,
    release_mail,
    warning_mail,
)

HUB = "https://qlik.corp.example/hub"
LAST_USED = dt.datetime(2026, 10, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 2026-10-02 in UTC


def _warning(**changes: object) -> Mail:
    args: dict[str, object] = {"to": "j@corp.example", "user_name": "Jörg <Müller>", "qualified_id": "CORP\\jm",
                               "license_type": "professional", "last_used": LAST_USED,
                               "release_on": dt.date(2026, 11, 15), "hub_url": HUB}
    return warning_mail(**{**args, **changes})


def test_the_warning_says_which_license_when_and_how_to_keep_it() -> None:
    mail = _warning()
    assert mail.to == ("j@corp.example",) and mail.template == "warning"
    assert mail.subject == "Qlik Sense: your Professional license will be released on 2026-11-15"
    assert "Hello Jörg <Müller>," in mail.text
    assert "Professional license (CORP\\jm)" in mail.text
    assert "last used on 2026-10-02" in mail.text  # shown as a UTC day
    assert "open any app in Qlik Sense before 2026-11-15" in mail.text
    assert f"Qlik Sense hub: {HUB}" in mail.text
    assert f'<a href="{HUB}"' in mail.html and "Jörg &lt;Müller&gt;" in mail.html and "<Müller>" not in mail.html


def test_a_never_used_license_and_no_hub() -> None:
    mail = _warning(last_used=None, hub_url=None, user_name=None)
    assert "never used" in mail.text and "Hello CORP\\jm," in mail.text
    assert "hub" not in mail.text and "<a " not in mail.html


def test_only_web_links_become_links() -> None:
    mail = _warning(hub_url="javascript:alert(1)")
    assert "javascript" not in mail.html and "javascript" not in mail.text


def test_the_subject_stays_ascii_and_short() -> None:
    mail = _warning(license_type="prófessional\r\nBcc: x@y" + "x" * 200)
    assert mail.subject.isascii() and len(mail.subject) <= 100 and "\n" not in mail.subject


def test_the_release_mail_says_what_why_and_how_to_get_access_again() -> None:
    mail = release_mail(["a@corp.example"], "Ana Ñúñez", "CORP\\ana", "analyzer", 45.3,
                        "inactive 45.3 days >= release.analyzer.inactivityDays 40", HUB)
    assert mail.template == "release" and mail.subject == "Qlik Sense: your Analyzer license was released"
    assert "Hello Ana Ñúñez," in mail.text and "Analyzer license (CORP\\ana) was released after 45 days" in mail.text
    assert "Reason: inactive 45.3 days >= release.analyzer.inactivityDays 40" in mail.text
    assert "ask your Qlik Sense administrators" in mail.text and "license rules allow it" in mail.text
    assert "&gt;= release.analyzer" in mail.html and f'href="{HUB}"' in mail.html


def test_the_admin_list_of_users_without_an_address() -> None:
    entries = [WarningEntry("CORP\\zed", "Zé <b>", "analyzer", dt.date(2026, 11, 16)),
               WarningEntry("CORP\\amy", None, "professional", dt.date(2026, 11, 15), LAST_USED)]
    mail = admin_warnings_mail(("x@corp.example", "y@corp.example"), entries)
    assert mail.to == ("x@corp.example", "y@corp.example") and mail.template == "admin-warnings"
    assert mail.subject == "Qlik Sense: 2 user(s) to warn of a license release"
    lines = [line for line in mail.text.splitlines() if line.startswith("- ")]
    assert lines == ["- CORP\\amy: Professional, last used 2026-10-02, release on 2026-11-15",
                     "- CORP\\zed (Zé <b>): Analyzer, last used never, release on 2026-11-16"]
    assert "Zé &lt;b&gt;" in mail.html and "<b>" not in mail.html
    assert len(re.findall("<tr>", mail.html)) == 3  # header and two users


def test_the_digest_keeps_the_text() -> None:
    mail = admin_digest_mail(["x@corp.example"], "Qlik Sense licenses: 1 released, 0 failed", "Run r1\n- A <b>")
    assert mail.template == "admin-digest" and mail.text == "Run r1\n- A <b>"
    assert "A &lt;b&gt;" in mail.html


def test_a_mail_needs_a_recipient() -> None:
    with pytest.raises(ValueError, match="recipient"):
        _warning(to=[])
