"""Typed views of the QRS JSON this product reads, named as QRS names them.

Tolerant of what QRS really sends (extra fields are ignored, ``null`` flags are false, QRS's "unset" date sentinel
``1753-01-01T00:00:00.000Z`` becomes ``None``), strict about types: a date must be an ISO string (a number would
read as seconds since 1970) and a flag a boolean. The client checks the wire shape on top (``butler.qrs.answers``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

LicenseType = Literal["professional", "analyzer"]
LICENSE_TYPES: tuple[LicenseType, ...] = ("professional", "analyzer")
ACCESS_TYPE_PATH: dict[LicenseType, str] = {
    "professional": "license/professionalaccesstype",
    "analyzer": "license/analyzeraccesstype",
}
_SENTINEL_YEAR = 1753
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def qualified(directory: str, user_id: str) -> str:
    """``DIRECTORY\\userid``, the form the QMC, the reports and the InfluxDB ``user_id`` tag use."""
    return f"{directory}\\{user_id}"


def is_guid(value: object) -> bool:
    """A QRS id in its one written form (8-4-4-4-12 hex digits), the only thing that may go into a URL path."""
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def _qrs_date(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError("not an ISO 8601 date")  # a number would otherwise read as seconds since 1970
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return None if value.year <= _SENTINEL_YEAR else value.astimezone(UTC)


QrsDate = Annotated[datetime | None, BeforeValidator(_qrs_date)]


def _none_as_list(value: Any) -> Any:
    return [] if value is None else value


def _none_as_false(value: Any) -> Any:
    return False if value is None else value


Flag = Annotated[bool, Strict(), BeforeValidator(_none_as_false)]


class QrsModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserCondensed(QrsModel):
    id: str | None = None
    userId: str
    userDirectory: str
    name: str | None = None

    @property
    def qualified_id(self) -> str:
        """``DIRECTORY\\userid``, the form the QMC and the InfluxDB ``user_id`` tag use."""
        return qualified(self.userDirectory, self.userId)


class Allocation(QrsModel):
    """A professional or analyzer access type allocated to a user (LicenseProfessionalAccessType & co)."""

    id: str
    createdDate: QrsDate = None
    modifiedDate: QrsDate = None
    user: UserCondensed | None = None
    lastUsed: QrsDate = None
    excess: Flag = False
    quarantined: Flag = False
    quarantineEnd: QrsDate = None
    deletedUserId: str | None = None
    deletedUserDirectory: str | None = None
    licenseType: LicenseType = "professional"  # not QRS's: set from the endpoint the allocation came from
    # Not QRS's: why the record could not be read whole (the other fields hold what could); never released.
    problem: str | None = None

    @property
    def last_activity(self) -> datetime | None:
        """lastUsed, or the allocation date for a never-used allocation."""
        return self.lastUsed or self.createdDate


def _present_date(value: Any) -> Any:
    if value is None:  # QRS writes 1753-01-01 for "never": a null or a missing date is not that
        raise ValueError("missing (QRS sends 1753-01-01T00:00:00.000Z for never)")
    return _qrs_date(value)


PresentDate = Annotated[datetime | None, BeforeValidator(_present_date)]


class AllocationRecord(Allocation):
    """An allocation as QRS must send it: the facts the policy decides on are present and never null, so a record
    that lacks one reads with ``problem`` (never released) instead of as "never used" or "not quarantined"."""

    createdDate: PresentDate
    lastUsed: PresentDate
    quarantined: Annotated[bool, Strict()]


class TagCondensed(QrsModel):
    id: str | None = None
    name: str


class CustomPropertyDefinitionCondensed(QrsModel):
    id: str | None = None
    name: str


class CustomPropertyValue(QrsModel):
    value: str
    definition: CustomPropertyDefinitionCondensed


class User(QrsModel):
    id: str
    userId: str
    userDirectory: str
    name: str | None = None
    inactive: Flag = False
    blacklisted: Flag = False  # the QMC's "Blocked"
    removedExternally: Flag = False
    tags: Annotated[list[TagCondensed], BeforeValidator(_none_as_list)] = Field(default_factory=list)
    customProperties: Annotated[list[CustomPropertyValue], BeforeValidator(_none_as_list)] = Field(
        default_factory=list
    )
    email: str | None = None  # the user attribute of attributeType "email" (case-insensitive)

    @model_validator(mode="before")
    @classmethod
    def _email_from_attributes(cls, data: Any) -> Any:
        if isinstance(data, dict) and "email" not in data and data.get("attributes") is not None:
            return {**data, "email": email_of(data["attributes"])}
        return data

    @property
    def qualified_id(self) -> str:
        return qualified(self.userDirectory, self.userId)


def email_of(attributes: Any) -> str | None:
    """The first non-empty ``email`` attribute of a ``/user/full`` attributes list (UserAttribute objects)."""
    if not isinstance(attributes, list) or not all(isinstance(a, dict) for a in attributes):
        raise ValueError("attributes: not a list of UserAttribute objects")
    for attribute in attributes:
        value = attribute.get("attributeValue")
        if str(attribute.get("attributeType") or "").casefold() == "email" and isinstance(value, str) and value:
            return value.strip()
    return None


class AccessDetails(QrsModel):
    enabled: Flag = False
    total: int = 0
    allocated: int = 0
    used: int = 0
    quarantined: int = 0
    excess: int = 0
    available: int = 0


class AnalyzerTimeAccess(QrsModel):
    enabled: Flag = False
    allocatedMinutes: int = 0
    usedMinutes: int = 0
    unavailableMinutes: int = 0


class UserAccessDetails(QrsModel):
    enabled: Flag = False
    tokenCost: float = 1.0
    allocatedTokens: int = 0
    usedTokens: int = 0
    quarantinedTokens: int = 0


class LoginAccessDetails(QrsModel):
    enabled: Flag = False
    tokenCost: float = 0.1
    allocatedTokens: int = 0
    usedTokens: int = 0
    unavailableTokens: int = 0


class AccessTypeOverview(QrsModel):
    totalTokens: int = 0
    availableTokens: int = 0
    tokensEnabled: Flag = False
    userAccess: UserAccessDetails = Field(default_factory=UserAccessDetails)
    loginAccess: LoginAccessDetails = Field(default_factory=LoginAccessDetails)
    professionalAccess: AccessDetails = Field(default_factory=AccessDetails)
    analyzerAccess: AccessDetails = Field(default_factory=AccessDetails)
    analyzerTimeAccess: AnalyzerTimeAccess = Field(default_factory=AnalyzerTimeAccess)

    @model_validator(mode="before")
    @classmethod
    def _null_blocks_take_defaults(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    def details(self, license_type: LicenseType) -> AccessDetails:
        return self.professionalAccess if license_type == "professional" else self.analyzerAccess
