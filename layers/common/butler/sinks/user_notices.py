"""The ``UserNotices`` port over the e-mail sender (``butler.sinks.email``): the core's notices become the mails
``warning_mail``, ``release_mail`` and ``admin_warnings_mail``, with the site's ``hubUrl``.

The sender is built on first use: an SMTP password secret that cannot be read fails each send (audited, the
warning goes to the administrators' digest), not the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from butler.licenses.model import Notice
from butler.sinks.email import (
    Mailer,
    MailError,
    WarningEntry,
    admin_warnings_mail,
    release_mail,
    warning_mail,
)


class MailNotices:
    def __init__(self, build: Callable[[], Mailer | None], *, hub_url: str | None,
                 admin_addresses: Sequence[str]) -> None:
        self._build = build
        self._mailer: Mailer | None = None
        self._failure: str | None = None
        self.hub_url = hub_url
        self.admin_addresses = list(admin_addresses)

    def _sender(self) -> Mailer:
        if self._mailer is None and self._failure is None:
            try:
                self._mailer = self._build()
            except Exception as exc:  # MailError or SecretError: one line, never the secret
                self._failure = " ".join(str(exc).split()) or type(exc).__name__
            if self._mailer is None and self._failure is None:
                self._failure = "notifications.email.enable: false"
        if self._mailer is None:
            raise MailError(f"e-mail not set up: {self._failure}")
        return self._mailer

    def warning(self, to: str, notice: Notice) -> list[str]:
        if notice.release_on is None:
            raise ValueError("a warning needs its release date")
        mail = warning_mail(to, notice.user_name, notice.qualified_id, notice.license_type, notice.last_used,
                            notice.release_on, self.hub_url)
        self._sender().send(mail)
        return list(mail.to)

    def released(self, to: str, notice: Notice) -> list[str]:
        mail = release_mail(to, notice.user_name, notice.qualified_id, notice.license_type, notice.days_inactive,
                            notice.reason, self.hub_url)
        self._sender().send(mail)
        return list(mail.to)

    def admins(self, notices: Sequence[Notice]) -> list[str]:
        if not self.admin_addresses:
            raise MailError("no notifications.email.adminAddresses")
        entries = [WarningEntry(n.qualified_id, n.user_name, n.license_type, n.release_on, n.last_used)
                   for n in notices if n.release_on is not None]
        mail = admin_warnings_mail(self.admin_addresses, entries)
        self._sender().send(mail)
        return list(mail.to)
