"""Dates the way QRS writes them: ISO 8601 UTC with milliseconds and a `Z`, and a sentinel for "never"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

SENTINEL = "1753-01-01T00:00:00.000Z"  # QRS's "unset" date (SQL Server's minimum datetime)
QUARANTINE = timedelta(days=7)
_QRS_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def now() -> datetime:
    return datetime.now(UTC)


def fmt(moment: datetime | None) -> str:
    """Format an aware (or naive-UTC) datetime as QRS does; None gives the sentinel."""
    if moment is None:
        return SENTINEL
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def naive(moment: datetime) -> datetime:
    """The naive-UTC equivalent; bulk generators compute in naive UTC because fmt() is cheaper on it."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def parse(text: str) -> datetime:
    """Parse an ISO 8601 date or datetime; naive values are taken as UTC. Raises ValueError."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_qrs(text: str | None) -> datetime | None:
    """Parse a date as found in a QRS object; the sentinel (or null) gives None."""
    if text is None or text == SENTINEL:
        return None
    return parse(text)


def normalize(text: str) -> str:
    """Rewrite any ISO datetime in QRS's own format, so that string order equals time order."""
    if _QRS_DATE.match(text):
        return text
    return fmt(parse(text))


def is_qrs_date(text: object) -> bool:
    return isinstance(text, str) and _QRS_DATE.match(text) is not None
