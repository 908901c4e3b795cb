"""E-mail to users and administrators: the texts (pure functions) and two senders, SMTP and Amazon SES.

Every text is a ``Mail``: plain text plus simple inline-styled HTML (mail clients drop ``<style>`` blocks and
block remote resources), everything from QRS escaped. Subjects stay ASCII and short (some relays and SES mangle
encoded words); names and other non-ASCII text live in the UTF-8 bodies. A failed send is a ``MailError`` in one
line naming the server or service and the recipient, never the password.
"""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html import escape
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from butler.config import Email

Template = Literal["warning", "release", "admin-digest", "admin-warnings"]
SUBJECT_MAX = 100  # SES and many clients cut longer subjects

_TYPE_NAMES = {"professional": "Professional", "analyzer": "Analyzer"}
_FOOTER = ("This message was sent automatically by the Qlik Sense license butler. "
           "For questions, contact your Qlik Sense administrators.")


@dataclass(frozen=True)
class Mail:
    """One message as sent (and audited): recipients, subject, both bodies and the template it came from."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    template: Template


@dataclass(frozen=True)
class WarningEntry:
    """A warned user who has no e-mail address: the administrators get the list and tell them."""

    qualified_id: str  # DIRECTORY\userid
    user_name: str | None
    license_type: str
    release_on: date
    last_used: datetime | None = None


class MailError(Exception):
    """A mail that was not sent; the message is one line naming the server or service and the recipient."""


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


# --- texts ------------------------------------------------------------------------------------------------------


def warning_mail(to: str | Iterable[str], user_name: str | None, qualified_id: str, license_type: str,
                 last_used: datetime | None, release_on: date, hub_url: str | None) -> Mail:
    """Tell a user that their unused license goes on ``release_on`` unless they use it before."""
    kind = _license_name(license_type)
    when = release_on.isoformat()
    used = f"last used on {_day(last_used)}" if last_used else "never used"
    greeting = f"Hello {_name(user_name, qualified_id)},"
    facts = [("User", qualified_id), ("License", kind), ("Last use", _day(last_used) if last_used else "never used"),
             ("Release on", when)]
    intro = (f"your Qlik Sense {kind} license ({qualified_id}) has not been used for some time ({used}). "
             f"To return it to the pool for your colleagues, it will be released on {when}.")
    keep = f"To keep it, open any app in Qlik Sense before {when}: using the license is all it takes."
    text = [greeting, "", intro, "", keep]
    if _link(hub_url):
        text.append(f"Qlik Sense hub: {hub_url}")
    text += ["", "If you no longer need Qlik Sense, there is nothing to do.", "", _FOOTER]
    body = [_p(greeting), _p(intro), _facts(facts), _p(keep), *_hub_button(hub_url, "Open Qlik Sense"),
            _p("If you no longer need Qlik Sense, there is nothing to do."), _footer()]
    return _mail(to, f"Qlik Sense: your {kind} license will be released on {when}", text, body, "warning")


def release_mail(to: str | Iterable[str], user_name: str | None, qualified_id: str, license_type: str,
                 days_inactive: float | None, reason: str, hub_url: str | None) -> Mail:
    """Tell a user that their license was released, why, and how to get access again."""
    kind = _license_name(license_type)
    greeting = f"Hello {_name(user_name, qualified_id)},"
    idle = f" after {days_inactive:.0f} days without use" if days_inactive is not None else ""
    intro = f"your Qlik Sense {kind} license ({qualified_id}) was released{idle}."
    facts = [("User", qualified_id), ("License", kind), ("Reason", reason)]
    again = ("To get access again, ask your Qlik Sense administrators. If the site's license rules allow it, "
             "a license is assigned to you again the next time you open Qlik Sense.")
    text = [greeting, "", intro, f"Reason: {reason}", "", again]
    if _link(hub_url):
        text.append(f"Qlik Sense hub: {hub_url}")
    text += ["", _FOOTER]
    body = [_p(greeting), _p(intro), _facts(facts), _p(again), *_hub_button(hub_url, "Open Qlik Sense"), _footer()]
    return _mail(to, f"Qlik Sense: your {kind} license was released", text, body, "release")


def admin_warnings_mail(to: str | Iterable[str], entries: Sequence[WarningEntry]) -> Mail:
    """The warnings that reached nobody (users without an e-mail address), for the administrators to pass on."""
    rows = sorted(entries, key=lambda e: (e.release_on, e.qualified_id.casefold(), e.license_type))
    intro = (f"{len(rows)} user(s) have no e-mail address in Qlik Sense, so they were not warned that their unused "
             "license will be released. Please tell them: opening any app in Qlik Sense before the date keeps it.")
    text = [intro, ""]
    text += [f"- {e.qualified_id}{f' ({e.user_name})' if e.user_name else ''}: {_license_name(e.license_type)}, "
             f"last used {_day(e.last_used) if e.last_used else 'never'}, release on {e.release_on.isoformat()}"
             for e in rows]
    text += ["", _FOOTER]
    header = "".join(f'<th style="{_CELL}text-align:left;background:#f0f0f0">{h}</th>'
                     for h in ("User", "Name", "License", "Last use", "Release on"))
    cells = [(e.qualified_id, e.user_name or "", _license_name(e.license_type),
              _day(e.last_used) if e.last_used else "never", e.release_on.isoformat()) for e in rows]
    table = (f'<table style="border-collapse:collapse;margin:12px 0"><tr>{header}</tr>'
             + "".join("<tr>" + "".join(f'<td style="{_CELL}">{escape(c)}</td>' for c in row) + "</tr>"
                       for row in cells)
             + "</table>")
    return _mail(to, f"Qlik Sense: {len(rows)} user(s) to warn of a license release", text,
                 [_p(intro), table, _footer()], "admin-warnings")


def admin_digest_mail(to: str | Iterable[str], subject: str, text: str) -> Mail:
    """A run's digest (``notify.digest_text``) by e-mail: the same text, preformatted in the HTML part."""
    html = f'<pre style="font-family:Consolas,Menlo,monospace;font-size:13px;white-space:pre-wrap">{escape(text)}</pre>'
    return Mail(_recipients(to), _subject(subject), text, _page([html]), "admin-digest")


_CELL = "border:1px solid #ccc;padding:4px 8px;"


def _mail(to: str | Iterable[str], subject: str, text: list[str], body: list[str], template: Template) -> Mail:
    return Mail(_recipients(to), _subject(subject), "\n".join(text) + "\n", _page(body), template)


def _recipients(to: str | Iterable[str]) -> tuple[str, ...]:
    recipients = (to,) if isinstance(to, str) else tuple(to)
    if not recipients:
        raise ValueError("a mail needs at least one recipient")
    return recipients


def _subject(subject: str) -> str:
    # ASCII only: the subject may hold a license type or a date, never a user's name.
    ascii_only = subject.encode("ascii", "replace").decode()
    return " ".join(ascii_only.split())[:SUBJECT_MAX]


def _license_name(license_type: str) -> str:
    return _TYPE_NAMES.get(license_type, license_type)


def _name(user_name: str | None, qualified_id: str) -> str:
    return user_name.strip() if user_name and user_name.strip() else qualified_id


def _day(moment: datetime | None) -> str:
    if moment is None:
        return ""
    # QRS dates are UTC; a naive datetime is taken as UTC too.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date().isoformat()


def _link(url: str | None) -> bool:
    # Only web links: a javascript: or data: URL must never become a link in a mail.
    return bool(url) and str(url).lower().startswith(("https://", "http://"))


def _page(body: list[str]) -> str:
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
            '<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222;line-height:1.4">'
            + "".join(body) + "</body></html>")


def _p(text: str) -> str:
    return f'<p style="margin:0 0 12px">{escape(text)}</p>'


def _facts(rows: list[tuple[str, str]]) -> str:
    return ('<table style="border-collapse:collapse;margin:0 0 12px">'
            + "".join(f'<tr><td style="padding:2px 12px 2px 0;color:#666">{escape(k)}</td>'
                      f'<td style="padding:2px 0"><b>{escape(v)}</b></td></tr>' for k, v in rows)
            + "</table>")


def _hub_button(hub_url: str | None, label: str) -> list[str]:
    if not hub_url or not _link(hub_url):
        return []
    return [f'<p style="margin:0 0 12px"><a href="{escape(hub_url)}" style="display:inline-block;padding:8px 16px;'
            f'background:#009845;color:#fff;text-decoration:none;border-radius:4px">{escape(label)}</a> '
            f'<span style="color:#666">{escape(hub_url)}</span></p>']


def _footer() -> str:
    return f'<p style="margin:24px 0 0;font-size:12px;color:#888">{escape(_FOOTER)}</p>'


# --- senders ----------------------------------------------------------------------------------------------------


def _checked(recipients: tuple[str, ...], where: str) -> None:
    # A QRS e-mail attribute is free text: "a@x, b@y" or a line break must not add recipients or headers.
    if not recipients:
        raise MailError(f"{where}: no recipient")
    for address in recipients:
        try:
            Address(addr_spec=address)
        except (ValueError, IndexError):
            raise MailError(f"{where}: not sent to {address!r}: not a single e-mail address") from None


def _one_line(text: object) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())


class SmtpMailer:
    """SMTP, one connection per mail: nothing to close or to go stale between the few mails of a run (or in a
    warm Lambda container). STARTTLS verifies the server's certificate and host name (the default context, or
    ``ssl_context``); the login is sent only over TLS, never in clear."""

    def __init__(self, host: str, port: int, sender: str, *, starttls: bool, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                 local_hostname: str | None = None) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.timeout = starttls, username, timeout
        self._password = password
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname  # the EHLO name; None: this machine's FQDN

    def __repr__(self) -> str:  # never the password
        return f"SmtpMailer({self.host}:{self.port}, sender={self.sender!r}, starttls={self.starttls})"

    def send(self, mail: Mail) -> None:
        where = f"SMTP {self.host}:{self.port}"
        _checked(mail.to, where)
        if self.username is not None and not self.starttls:
            raise MailError(f"{where}: not sent to {', '.join(mail.to)}: a login needs starttls: true "
                            "(the password would cross the network in clear)")
        try:
            message = _message(mail, self.sender)
            with smtplib.SMTP(self.host, self.port, local_hostname=self._local_hostname,
                              timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                if self.username is not None:
                    _login(smtp, self.username, self._password or "")
                refused = smtp.send_message(message, from_addr=self.sender, to_addrs=list(mail.to))
            if refused:  # smtplib raises only when every recipient is refused
                raise smtplib.SMTPRecipientsRefused(refused)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            reason = self._reason(exc, mail.to)
            if self._password and len(self._password) >= 4:  # a server might echo it; shorter would mangle text
                reason = reason.replace(self._password, "***")
            raise MailError(f"{where}: not sent to {', '.join(mail.to)}: {reason}") from None

    def _reason(self, exc: BaseException, recipients: tuple[str, ...]) -> str:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            some = len(exc.recipients) < len(recipients)
            return ("recipient refused" + (" (sent to the others)" if some else "") + ": " + "; ".join(
                f"{rcpt} {code} {_one_line(text)}" for rcpt, (code, text) in exc.recipients.items()))
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return f"login as {self.username} refused: {exc.smtp_code} {_one_line(exc.smtp_error)}"
        if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data refused, any other answer
            return f"{type(exc).__name__} {exc.smtp_code} {_one_line(exc.smtp_error)}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {_one_line(exc.verify_message)}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed: {_one_line(exc.reason or exc)}"
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):  # smtplib wraps it
            return f"timed out after {self.timeout:g} s"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        return f"{type(exc).__name__}: {_one_line(exc) or 'no details'}"


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    if (username + password).isascii():
        smtp.login(username, password)
        return
    # smtplib encodes credentials as ASCII; AUTH PLAIN is UTF-8 by its RFC (4616), so send that one ourselves.
    smtp.ehlo_or_helo_if_needed()
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPException("the password is not ASCII and the server offers no AUTH PLAIN")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    code, answer = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, answer)


def _message(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to a robot
    message.set_content(mail.text, charset="utf-8")
    message.add_alternative(mail.html, subtype="html", charset="utf-8")
    return message


class SesMailer:
    """Amazon SES (``SendEmail``); the sender must be a verified identity. The client is made on first use, so
    a missing region or credentials is a ``MailError`` of that send."""

    def __init__(self, sender: str, *, region: str | None = None, client: Any = None) -> None:
        self.sender, self.region = sender, region
        self._client = client

    def send(self, mail: Mail) -> None:
        where = f"SES{f' {self.region}' if self.region else ''}"
        _checked(mail.to, where)
        try:
            if self._client is None:
                import boto3

                self._client = boto3.client("ses", region_name=self.region)
            self._client.send_email(
                Source=self.sender,
                Destination={"ToAddresses": list(mail.to)},
                Message={
                    "Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": mail.text, "Charset": "UTF-8"},
                             "Html": {"Data": mail.html, "Charset": "UTF-8"}},
                },
            )
        except Exception as exc:  # botocore's errors share no base class with the client's modelled ones
            raise MailError(f"{where}: not sent to {', '.join(mail.to)}: {_aws_reason(exc)}") from None


def _aws_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code') or type(exc).__name__}: {_one_line(error.get('Message') or '')}".rstrip(": ")
    return f"{type(exc).__name__}: {_one_line(exc)}"


# --- configuration ----------------------------------------------------------------------------------------------


def mailer_from_config(email_settings: Email, get_secret: Callable[[str], str]) -> Mailer | None:
    """The configured sender, or None when ``email.enable`` is false. The SMTP password is read now, from
    ``smtp.passwordSecretId``: a secret holding the bare password or JSON ``{"password": ...}``."""
    if not email_settings.enable:
        return None
    sender = email_settings.from_
    if sender is None:  # the config's own check makes this unreachable; mypy needs it
        raise MailError("email.from: required when enable is true")
    if email_settings.via == "ses":
        return SesMailer(sender, region=email_settings.ses.region)
    smtp = email_settings.smtp
    password = None
    if smtp.passwordSecretId is not None:
        try:
            password = _password(get_secret(smtp.passwordSecretId), smtp.passwordSecretId)
        except MailError:
            raise
        except Exception as exc:  # SecretError names the secret and the cause, never the value
            raise MailError(f"SMTP password: {_one_line(exc)}") from None
    return SmtpMailer(smtp.host, smtp.port, sender, starttls=smtp.starttls, username=smtp.username,
                      password=password, timeout=smtp.timeoutSeconds)


def _password(secret: str, secret_id: str) -> str:
    if secret.lstrip().startswith("{"):
        try:
            data = json.loads(secret)
        except ValueError:
            return secret  # a bare password may start with "{"
        if isinstance(data, dict) and isinstance(data.get("password"), str):
            return str(data["password"])
        raise MailError(f"SMTP password: secret {secret_id} is JSON without a text 'password' key")
    return secret
