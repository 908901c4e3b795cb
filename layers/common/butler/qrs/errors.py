"""QRS error types. Each message is one line naming the call and what to fix; never certificates, headers or keys.

For a DELETE the class tells the caller what may have happened: ``QrsNoAnswer`` (``QrsUnreachable``,
``QrsTimeout``) means the request may or may not have been carried out (re-read to know); ``QrsHttpError`` means
QRS answered and refused; ``QrsInvalidId`` means nothing was sent.
"""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")
_TAGS = re.compile(r"<[^>]*>")


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (an HTML page reduced to its words), cut to ``limit`` characters."""
    flat = _SPACES.sub(" ", _TAGS.sub(" ", text) if "<" in text else text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class QrsError(Exception):
    """Any failure talking to QRS."""

    status: int | None = None


class QrsTlsError(QrsError):
    """The TLS handshake failed: wrong CA, wrong server name, or a client certificate QRS does not accept."""


class QrsNoAnswer(QrsError):
    """No answer came back: the request may not have been sent, or may have been carried out without an answer."""


class QrsUnreachable(QrsNoAnswer):
    """No connection could be made or kept (after retries, for the calls that are retried)."""


class QrsTimeout(QrsNoAnswer):
    """The connection or the answer did not come within its time-out; ``setting`` names the key that expired."""

    def __init__(self, message: str, setting: str = "Butler.qrs.readTimeout") -> None:
        super().__init__(message)
        self.setting = setting


class QrsInvalidId(QrsError):
    """An id that is not a GUID was about to go into a URL path or a filter: nothing was sent."""

    def __init__(self, call: str, value: object) -> None:
        shown = one_line(repr(value), 60)
        super().__init__(f"{call}: id {shown} is not a GUID; nothing was sent to QRS")
        self.value = value


class QrsBadAnswer(QrsError):
    """QRS answered 2xx, but not in the shape asked for (not JSON, wrong columns, a list that is not a list...).
    Nothing is decided from such an answer."""

    def __init__(self, call: str, problem: str) -> None:
        super().__init__(f"{call}: unexpected answer: {problem}")
        self.call = call
        self.problem = problem


class QrsHttpError(QrsError):
    """QRS answered with an error status; ``text`` is QRS's own (plain-text) reason, the message holds it on one
    line."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {one_line(text, 300) or '(no text)'}")
        self.status = status
        self.text = text


class QrsAuthError(QrsHttpError):
    """401/403: the service account (X-Qlik-User) or the client certificate is not allowed."""


class QrsNotFound(QrsHttpError):
    """404: the object does not exist (for example an allocation already released)."""


class QrsUnavailable(QrsHttpError):
    """5xx after retries."""
