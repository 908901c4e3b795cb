"""mailer_from_config: the sender the configuration names, the SMTP password from its secret; and the checks a
mailer makes before it connects anywhere."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from butler.config import Email
from butler.sinks.email import MailError, SesMailer, SmtpMailer, mailer_from_config, warning_mail

SMTP = {"host": "mail.corp.example", "port": 587, "starttls": True, "username": "butler",
        "passwordSecretId": "butler/smtp", "timeoutSeconds": 3}


def _email(**settings: Any) -> Email:
    return Email.model_validate({"enable": True, "from": "qlik@corp.example", **settings})


def _secrets(value: str) -> Any:
    asked: list[str] = []

    def get_secret(secret_id: str) -> str:
        asked.append(secret_id)
        return value

    get_secret.asked = asked  # type: ignore[attr-defined]
    return get_secret


def test_disabled_is_none() -> None:
    assert mailer_from_config(Email.model_validate({"enable": False}), _secrets("x")) is None


@pytest.mark.parametrize("secret", ["pä{ss", '{"password": "pä{ss", "username": "ignored"}'])
def test_smtp_with_the_password_from_its_secret(secret: str) -> None:
    get_secret = _secrets(secret)
    mailer = mailer_from_config(_email(smtp=SMTP), get_secret)
    assert isinstance(mailer, SmtpMailer)
    assert (mailer.host, mailer.port, mailer.sender, mailer.starttls, mailer.username, mailer.timeout) == (
        "mail.corp.example", 587, "qlik@corp.example", True, "butler", 3.0)
    assert mailer._password == "pä{ss" and get_secret.asked == ["butler/smtp"]
    assert "pä{ss" not in repr(mailer)


def test_smtp_without_a_secret_reads_none() -> None:
    get_secret = _secrets("unused")
    mailer = mailer_from_config(_email(smtp={"host": "relay"}), get_secret)
    assert isinstance(mailer, SmtpMailer) and mailer._password is None and get_secret.asked == []


def test_json_without_a_password_key() -> None:
    with pytest.raises(MailError, match=r"^SMTP password: secret butler/smtp is JSON without a text 'password'"):
        mailer_from_config(_email(smtp=SMTP), _secrets('{"pass": "x"}'))


def test_an_unreadable_secret_is_a_mail_error() -> None:
    def get_secret(secret_id: str) -> str:
        raise RuntimeError(f"secret {secret_id}: access denied (AccessDeniedException)")

    with pytest.raises(MailError, match=r"^SMTP password: secret butler/smtp: access denied"):
        mailer_from_config(_email(smtp=SMTP), get_secret)


def test_ses_with_its_region() -> None:
    mailer = mailer_from_config(_email(via="ses", ses={"region": "eu-central-1"}), _secrets("unused"))
    assert isinstance(mailer, SesMailer) and (mailer.sender, mailer.region) == ("qlik@corp.example", "eu-central-1")


def _mail(to: str = "j@corp.example") -> Any:
    return warning_mail(to, "J", "CORP\\j", "analyzer", None, dt.date(2026, 11, 15), None)


@pytest.mark.parametrize("address", ["a@corp.example, b@corp.example", "a@corp.example\r\nBcc: x@y.z", "nobody"])
def test_a_malformed_address_is_refused_before_connecting(address: str) -> None:
    mailer = SmtpMailer("192.0.2.1", 25, "qlik@corp.example", starttls=False, timeout=0.1)  # TEST-NET: unroutable
    with pytest.raises(MailError, match="not a single e-mail address"):
        mailer.send(_mail(address))


def test_a_login_is_never_sent_in_clear() -> None:
    mailer = SmtpMailer("192.0.2.1", 25, "qlik@corp.example", starttls=False, username="u", password="pw",
                        timeout=0.1)
    with pytest.raises(MailError, match=r"needs starttls: true") as caught:
        mailer.send(_mail())
    assert "pw" not in str(caught.value)
