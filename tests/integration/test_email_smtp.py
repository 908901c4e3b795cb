"""SmtpMailer against real SMTP servers (aiosmtpd on loopback): plain, STARTTLS with a self-signed CA and AUTH,
refused recipients, unreachable and silent servers. The mails are parsed back with the ``email`` package."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from butler.sinks.email import MailError, SmtpMailer, release_mail, warning_mail

SENDER = "qlik-licenses@corp.example"
HUB = "https://qlik.corp.example/hub"
USER, PASSWORD = "butler", "s3cr3t-Pässword!"
REFUSED = "gone@corp.example"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


@dataclass
class Recorder:
    """An aiosmtpd handler: keeps what it receives, refuses ``REFUSED``."""

    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address == REFUSED:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.decode() if session.authenticated else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, login))
        return "250 2.0.0 Ok: queued"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(**smtp_kwargs: Any) -> Iterator[tuple[int, Recorder]]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=_free_port(), ready_timeout=5, **smtp_kwargs)
    controller.start()
    try:
        yield controller.port, recorder
    finally:
        controller.stop()


@dataclass(frozen=True)
class Pki:
    ca_pem: str
    server_ctx: ssl.SSLContext


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(_name("butler test CA")).issuer_name(_name("butler test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder: Path = tmp_path_factory.mktemp("smtp-pki")
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server_key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(folder / "server.pem", folder / "server_key.pem")
    return Pki(ca.public_bytes(serialization.Encoding.PEM).decode(), server_ctx)


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[tuple[int, Recorder]]:
    """STARTTLS required before anything else; AUTH required, offered over TLS only."""
    with _server(tls_context=pki.server_ctx, require_starttls=True, authenticator=_authenticate,
                 auth_required=True, auth_require_tls=True) as server:
        yield server


def _warning(to: str = "jorg@corp.example") -> Any:
    return warning_mail(to, "Jörg Müller-Ångström", "CORP\\jmuller", "professional",
                        dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC), dt.date(2026, 11, 15), HUB)


def _parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]  # text first: clients show the last part they can render
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    return str(text.get_content()), str(html.get_content())


def test_plain_server_receives_the_warning_with_both_parts_and_utf8_names() -> None:
    with _server() as (port, recorder):
        SmtpMailer("127.0.0.1", port, SENDER, starttls=False, timeout=5).send(_warning())
    [got] = recorder.received
    assert got.mail_from == SENDER and got.rcpt_tos == ["jorg@corp.example"]
    message = got.message
    assert message["From"] == SENDER and message["To"] == "jorg@corp.example"
    assert message["Subject"] == "Qlik Sense: your Professional license will be released on 2026-11-15"
    assert message["Auto-Submitted"] == "auto-generated" and message["Message-ID"] and message["Date"]
    text, html = _parts(message)
    for body in (text, html):
        assert "Jörg Müller-Ångström" in body
        assert "2026-11-15" in body and "2026-10-01" in body
        assert "CORP\\jmuller" in body
    assert f"Qlik Sense hub: {HUB}" in text
    assert f'href="{HUB}"' in html


def test_plain_server_receives_the_release_mail() -> None:
    mail = release_mail("ana@corp.example", "Ana Ñúñez", "CORP\\anunez", "analyzer", 45.3,
                        "inactive 45.3 days >= release.analyzer.inactivityDays 40", HUB)
    with _server() as (port, recorder):
        SmtpMailer("127.0.0.1", port, SENDER, starttls=False, timeout=5).send(mail)
    [got] = recorder.received
    assert got.rcpt_tos == ["ana@corp.example"]
    assert got.message["Subject"] == "Qlik Sense: your Analyzer license was released"
    text, html = _parts(got.message)
    assert "Ana Ñúñez" in text and "Ana Ñúñez" in html
    assert "release.analyzer.inactivityDays 40" in text
    assert "administrators" in text and f'href="{HUB}"' in html


def test_starttls_with_the_ca_and_auth_delivers(pki: Pki, tls_server: tuple[int, Recorder]) -> None:
    port, recorder = tls_server
    mailer = SmtpMailer("127.0.0.1", port, SENDER, starttls=True, username=USER, password=PASSWORD, timeout=5,
                        ssl_context=ssl.create_default_context(cadata=pki.ca_pem))
    mailer.send(_warning())
    [got] = recorder.received
    assert got.login == USER
    assert "Jörg Müller-Ångström" in _parts(got.message)[0]
    assert PASSWORD not in repr(mailer)


def test_an_untrusted_certificate_is_refused(tls_server: tuple[int, Recorder]) -> None:
    port, recorder = tls_server
    mailer = SmtpMailer("127.0.0.1", port, SENDER, starttls=True, username=USER, password=PASSWORD, timeout=5)
    with pytest.raises(MailError, match=r"certificate not trusted") as caught:
        mailer.send(_warning())  # the default context does not know the test CA
    assert PASSWORD not in str(caught.value) and not recorder.received


def test_a_wrong_password_names_the_user_never_the_password(pki: Pki, tls_server: tuple[int, Recorder]) -> None:
    port, _ = tls_server
    wrong = "wr0ng-secret"
    mailer = SmtpMailer("127.0.0.1", port, SENDER, starttls=True, username=USER, password=wrong, timeout=5,
                        ssl_context=ssl.create_default_context(cadata=pki.ca_pem))
    with pytest.raises(MailError, match=rf"^SMTP 127\.0\.0\.1:{port}: not sent to jorg@corp\.example: "
                                        rf"login as {USER} refused: 535") as caught:
        mailer.send(_warning())
    assert wrong not in str(caught.value)


def test_a_refused_recipient_is_named_and_the_password_is_not(pki: Pki, tls_server: tuple[int, Recorder]) -> None:
    port, recorder = tls_server
    mailer = SmtpMailer("127.0.0.1", port, SENDER, starttls=True, username=USER, password=PASSWORD, timeout=5,
                        ssl_context=ssl.create_default_context(cadata=pki.ca_pem))
    with pytest.raises(MailError) as caught:
        mailer.send(_warning(REFUSED))
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and f"{REFUSED} 550" in message and "\n" not in message
    assert PASSWORD not in message and not recorder.received


def test_one_refused_recipient_of_two_is_reported() -> None:
    mail = _warning()
    mail = type(mail)(("jorg@corp.example", REFUSED), mail.subject, mail.text, mail.html, mail.template)
    with _server() as (port, recorder), pytest.raises(MailError, match=r"\(sent to the others\).*gone@corp"):
        SmtpMailer("127.0.0.1", port, SENDER, starttls=False, timeout=5).send(mail)
    assert [r.rcpt_tos for r in recorder.received] == [["jorg@corp.example"]]


def test_starttls_not_offered_is_an_error_not_a_downgrade() -> None:
    with _server() as (port, recorder), pytest.raises(MailError, match=r"STARTTLS"):
        SmtpMailer("127.0.0.1", port, SENDER, starttls=True, timeout=5).send(_warning())
    assert not recorder.received


def test_an_unreachable_port_is_one_line() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(MailError) as caught:
        SmtpMailer("127.0.0.1", port, SENDER, starttls=False, timeout=2).send(_warning())
    assert str(caught.value) == f"SMTP 127.0.0.1:{port}: not sent to jorg@corp.example: connection refused"


def test_a_silent_server_times_out_after_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) and never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(MailError, match=r"timed out after 0\.3 s$"):
            SmtpMailer("127.0.0.1", port, SENDER, starttls=False, timeout=0.3).send(_warning())
