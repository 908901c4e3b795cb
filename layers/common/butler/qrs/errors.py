"""QRS error types. Messages carry the method, path and QRS's own text, never certificates or headers."""

from __future__ import annotations


class QrsError(Exception):
    """Any failure talking to QRS."""

    status: int | None = None


class QrsTlsError(QrsError):
    """The TLS handshake failed: wrong CA, wrong server name, or a client certificate QRS does not accept."""


class QrsUnreachable(QrsError):
    """No connection could be made or kept (after retries)."""


class QrsTimeout(QrsError):
    """QRS did not answer within the read time-out."""


class QrsHttpError(QrsError):
    """QRS answered with an error status; ``text`` is QRS's own (plain-text) reason."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {text.strip()[:500] or '(no text)'}")
        self.status = status
        self.text = text


class QrsAuthError(QrsHttpError):
    """401/403: the service account (X-Qlik-User) or the client certificate is not allowed."""


class QrsNotFound(QrsHttpError):
    """404: the object does not exist (for example an allocation already released)."""


class QrsUnavailable(QrsHttpError):
    """5xx after retries."""
