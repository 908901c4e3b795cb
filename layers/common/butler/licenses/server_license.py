"""The site's server license (``GET /qrs/license``): its expiry, for ``serverLicense`` in the status, the InfluxDB
measurement ``server_license`` and the CloudWatch metric ``ServerLicenseDaysLeft``.

Pure: no I/O. Two bugs of the Butler this replaces are not repeated here: the ``Valid To:`` value is taken after the
first colon only (a time such as ``23:59`` never truncates the date), and days left are negative once expired.

Decisions (an administrator would rather get a false alarm than miss an expiry):

- No ``Valid To:`` line (or no ``keyDetails``): the license does not expire; ``validTo`` and ``daysUntilExpiry`` are
  null.
- A ``Valid To:`` value that cannot be read: the expiry is unknown, and says so (``problem``); ``validTo`` and
  ``daysUntilExpiry`` are null and ``isExpired`` is only QRS's own flag (we do not claim what we cannot read), but
  the days left reported to InfluxDB and CloudWatch are 0, so every "days left below N" alarm fires. The same for
  any field of the answer that has the wrong type.
- Several ``Valid To:`` lines: the earliest date counts (the first thing to run out); any unreadable one makes the
  expiry unknown.
- A time or offset in the value must be valid but does not move the day: the expiry is the calendar day as
  written, compared in whole days with the caller's ``today`` (UTC).
- A license QRS calls expired, invalid or blacklisted is no longer usable: its days left for InfluxDB and
  CloudWatch are at most -1 whatever the date says (the status keeps the date and the flags as they are).
- No expiry in InfluxDB and CloudWatch: the point and the metric are still written, with ``NO_EXPIRY_DAYS``
  (100 years), so a "days left < N" query or alarm stays quiet and data that stops arriving still means
  "collector down", never "no expiry".
- The serial is never output whole: ``serialLast4`` only, and null for a serial of four characters or fewer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MEASUREMENT = "server_license"
METRIC = "ServerLicenseDaysLeft"
NO_EXPIRY_DAYS = 36500  # "does not expire" in InfluxDB and CloudWatch: far beyond any alarm threshold
UNKNOWN_EXPIRY_DAYS = 0  # unreadable: fail closed, below every "days left" threshold
PRODUCTS = {0: "Platform", 1: "Enterprise", 2: "Standard"}  # the spec's x-enumNames of License.product

_TEXT_FIELDS = ("serial", "name", "organization", "expiredReason", "keyDetails")
_FLAG_FIELDS = ("isExpired", "isBlacklisted", "isInvalid")
_MAX_SHOWN = 80  # characters of an unreadable value quoted in a problem


def _shown(value: object) -> str:
    text = " ".join("".join(c if c.isprintable() else " " for c in str(value)).split())  # one printable line
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


class ServerLicense(BaseModel):
    """The fields of QRS's ``License`` this product reads. Never fails on a dict: extra fields are ignored, null is
    the default, and a field of the wrong type is dropped and named in ``problems`` (not QRS's)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    serial: str | None = None
    name: str | None = None
    organization: str | None = None
    product: int | None = None
    isExpired: bool = False
    expiredReason: str | None = None
    isBlacklisted: bool = False
    isInvalid: bool = False
    keyDetails: str | None = None
    problems: tuple[str, ...] = Field(default=())

    @model_validator(mode="before")
    @classmethod
    def _tolerate(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data  # pydantic names the wrong type; parse_server_license checks first
        clean: dict[str, Any] = {}
        problems: list[str] = []
        for key in _TEXT_FIELDS:
            value = data.get(key)
            if key == "serial" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # a numeric serial is still the serial
            if value is None or isinstance(value, str):
                clean[key] = value
            else:
                problems.append(f"{key} is not text: {_shown(value)!r}")
        for key in _FLAG_FIELDS:
            value = data.get(key)
            if value is None or isinstance(value, bool):
                clean[key] = bool(value)
            else:
                problems.append(f"{key} is not true or false: {_shown(value)!r}")
        product = data.get("product")
        if isinstance(product, str):  # a name instead of the enum's number
            product = next((n for n, name in PRODUCTS.items() if name.casefold() == product.casefold()), product)
        if product is None or (isinstance(product, int) and not isinstance(product, bool)):
            clean["product"] = product
        else:
            problems.append(f"product is not a number: {_shown(product)!r}")
        clean["problems"] = tuple(problems)
        return clean


def parse_server_license(raw: bytes | str | Mapping[str, Any]) -> ServerLicense:
    """The body of ``GET /qrs/license`` as a ``ServerLicense``; ``ValueError`` (one line) when it is not a JSON
    object, nothing else raises."""
    data: object = raw
    if isinstance(raw, bytes | str):
        try:
            data = json.loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError both
            raise ValueError("GET /qrs/license: the answer is not JSON") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"GET /qrs/license: the answer is not a JSON object but {type(data).__name__}")
    return ServerLicense.model_validate(data)


# --- the expiry date ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unreadable:
    """A ``Valid To:`` value that is there but is no date we can read: the expiry is unknown."""

    value: str

    def __str__(self) -> str:
        return f"unreadable: '{_shown(self.value)}'"


# YYYY-MM-DD, optionally a time (HH:MM, :SS, a fraction) after a T or a space, optionally Z or an offset.
_VALUE = re.compile(
    r"(?P<day>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)\s?(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.IGNORECASE,
)


def parse_expiry(value: str) -> date | Unreadable:
    """One ``Valid To:`` value: the calendar day as written (a time or offset only has to be valid)."""
    text = value.strip()
    match = _VALUE.fullmatch(text)
    if match is None:
        return Unreadable(text)
    try:
        day = date.fromisoformat(match["day"])
        if match["time"]:  # 25:00 or +24:00 makes the whole value unreadable, not just its time
            datetime.fromisoformat(f"{match['day']}T{match['time'].replace(',', '.')}{(match['zone'] or '').upper()}")
    except ValueError:
        return Unreadable(text)
    return day


def valid_to(key_details: str | None) -> date | Unreadable | None:
    """The expiry in ``keyDetails`` (CRLF- or LF-separated ``Key: value`` lines): None without a ``Valid To:`` line
    (no expiry), the earliest day when there are several, ``Unreadable`` when any value is no date."""
    if not key_details:
        return None
    found: list[date] = []
    for line in key_details.splitlines():
        key, colon, value = line.partition(":")  # the first colon only: times hold colons too
        if colon and "".join(key.split()).casefold() == "validto":
            parsed = parse_expiry(value)
            if isinstance(parsed, Unreadable):
                return parsed
            found.append(parsed)
    return min(found, default=None)


# --- the status and its metrics ----------------------------------------------------------------------------------


def serial_last4(serial: str | None) -> str | None:
    """The last four characters of the serial; None when it is missing or so short that they would be all of it."""
    text = (serial or "").strip()
    return text[-4:] if len(text) > 4 else None


def server_license_status(license: ServerLicense, today: date) -> dict[str, Any]:
    """``serverLicense`` of ``GET /v4/licenses/status`` (CONTRACT section 6) on ``today`` (pass the UTC date)."""
    expiry = valid_to(license.keyDetails)
    problems = list(license.problems)
    day = expiry if isinstance(expiry, date) else None
    if isinstance(expiry, Unreadable):
        problems.insert(0, f"Valid To {expiry}; the expiry is unknown")
    return {
        "validTo": day.isoformat() if day else None,
        "daysUntilExpiry": (day - today).days if day else None,
        "isExpired": license.isExpired or (day is not None and day < today),  # valid through its last day
        "isInvalid": license.isInvalid,
        "isBlacklisted": license.isBlacklisted,
        "product": PRODUCTS.get(license.product) if license.product is not None else None,
        "serialLast4": serial_last4(license.serial),
        "expiredReason": license.expiredReason or None,  # QRS sends "" for a license that has not expired
        "problem": "; ".join(problems) or None,
    }


def unread_status(problem: str) -> dict[str, Any]:
    """The status when ``GET /qrs/license`` could not be read at all: nothing is claimed, ``problem`` says why, so
    the days left are ``UNKNOWN_EXPIRY_DAYS`` (fail closed: every "days left below N" alarm fires)."""
    return {"validTo": None, "daysUntilExpiry": None, "isExpired": False, "isInvalid": False, "isBlacklisted": False,
            "product": None, "serialLast4": None, "expiredReason": None, "problem": problem}


def days_left(status: Mapping[str, Any]) -> int:
    """The days an alarm watches: the days until expiry, ``NO_EXPIRY_DAYS`` without one, at most 0 when the answer
    had a problem, at most -1 once QRS calls the license expired, invalid or blacklisted."""
    days = status.get("daysUntilExpiry")
    if days is None:
        days = UNKNOWN_EXPIRY_DAYS if status.get("problem") else NO_EXPIRY_DAYS
    elif status.get("problem"):
        days = min(days, UNKNOWN_EXPIRY_DAYS)
    if status.get("isExpired") or status.get("isInvalid") or status.get("isBlacklisted"):
        days = min(days, -1)
    return int(days)


def influx_fields(status: Mapping[str, Any]) -> dict[str, int | bool]:
    """The fields of the InfluxDB measurement ``server_license`` (no tags): ``days_until_expiry`` and ``expired``."""
    return {"days_until_expiry": days_left(status), "expired": bool(status.get("isExpired"))}


def metric_value(status: Mapping[str, Any]) -> float:
    """The CloudWatch (EMF) metric ``ServerLicenseDaysLeft`` (unit Count): the same number as InfluxDB's."""
    return float(days_left(status))


# --- users holding both types -------------------------------------------------------------------------------------


def _user_key(user_id: str) -> str:
    text = user_id.strip()
    try:
        return str(uuid.UUID(text))  # any written form of a GUID (case, braces) is the same user
    except ValueError:
        return text.casefold()


def redundant_analyzer(professional_owner_ids: Iterable[str], analyzer_owner_ids: Iterable[str]) -> int:
    """Users holding both a professional and an analyzer allocation: the analyzer one is paid for twice."""
    professional = {_user_key(i) for i in professional_owner_ids if i and i.strip()}
    return len(professional & {_user_key(i) for i in analyzer_owner_ids if i and i.strip()})
