"""SesMailer against moto's SES: the message SES accepted, the request's UTF-8 parts, and its refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.ses.models import ses_backends

from butler.sinks.email import MailError, SesMailer, warning_mail

REGION = "eu-west-1"
SENDER = "qlik-licenses@corp.example"
HUB = "https://qlik.corp.example/hub"


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("ses", region_name=REGION)


def _sent() -> list[Any]:
    """What moto's SES accepted, in the account the fake credentials belong to."""
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    return list(ses_backends[account][REGION].sent_messages)


def _mail(to: str = "jorg@corp.example") -> Any:
    return warning_mail(to, "Jörg Müller", "CORP\\jmuller", "analyzer", None, dt.date(2026, 11, 15), HUB)


def test_a_verified_sender_sends_both_parts_in_utf8(ses: Any) -> None:
    ses.verify_email_identity(EmailAddress=SENDER)
    requests: list[dict[str, Any]] = []
    ses.meta.events.register("provide-client-params.ses.SendEmail", lambda params, **_: requests.append(params))

    SesMailer(SENDER, client=ses).send(_mail())

    [sent] = _sent()
    assert sent.source == SENDER
    assert sent.destinations["ToAddresses"] == ["jorg@corp.example"]
    assert sent.subject == "Qlik Sense: your Analyzer license will be released on 2026-11-15"
    assert "Jörg Müller" in sent.body and f'href="{HUB}"' in sent.body  # moto keeps the HTML part
    [message] = [r["Message"] for r in requests]
    assert message["Subject"]["Charset"] == "UTF-8"
    text, html = message["Body"]["Text"], message["Body"]["Html"]
    assert text["Charset"] == html["Charset"] == "UTF-8"
    assert "Jörg Müller" in text["Data"] and "never used" in text["Data"] and "2026-11-15" in text["Data"]
    assert ses.get_send_statistics()["SendDataPoints"][0]["DeliveryAttempts"] == 1


def test_the_client_is_made_for_the_configured_region(ses: Any) -> None:
    ses.verify_email_identity(EmailAddress=SENDER)
    SesMailer(SENDER, region=REGION).send(_mail())
    assert len(_sent()) == 1


def test_an_unverified_sender_names_the_recipient_and_the_aws_code(ses: Any) -> None:
    with pytest.raises(MailError) as caught:
        SesMailer(SENDER, client=ses).send(_mail())
    assert str(caught.value).startswith("SES: not sent to jorg@corp.example: MessageRejected: ")
    assert "\n" not in str(caught.value)
    assert not _sent()


def test_a_malformed_address_is_refused_before_calling_ses(ses: Any) -> None:
    ses.verify_email_identity(EmailAddress=SENDER)
    with pytest.raises(MailError, match=r"not sent to 'a@corp\.example, b@corp\.example': not a single"):
        SesMailer(SENDER, client=ses).send(_mail("a@corp.example, b@corp.example"))
    assert not _sent()
