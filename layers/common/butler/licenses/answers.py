"""The answers the core hands out (``GET /v4/licenses/status``, one user's licenses, a release on request), as
pydantic models: declared once, returned by the services, serialised as they are by the API and the CLI, and the
source of docs/openapi.json."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from butler.licenses.model import Action
from butler.qrs.models import LicenseType


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TypeStatus(_Answer):
    total: int
    allocated: int
    available: int
    utilization: float = Field(description="allocated / total, in percent")
    used: int
    quarantined: int
    excess: int


class CapacityStatus(_Answer):
    allocatedMinutes: int
    usedMinutes: int
    unavailableMinutes: int
    availableMinutes: int
    utilization: float = Field(description="used / allocated minutes, in percent")


class ServerLicenseStatus(_Answer):
    validTo: str | None = Field(description="the LEF's Valid To date (YYYY-MM-DD); null: no expiry, or unreadable")
    daysUntilExpiry: int | None = Field(description="whole days, negative once expired; null: no expiry")
    isExpired: bool
    isInvalid: bool
    isBlacklisted: bool
    product: str | None = None
    serialLast4: str | None = Field(None, description="the serial's last four characters, never the whole")
    expiredReason: str | None = None
    problem: str | None = Field(None, description="why the expiry is unknown (an unreadable Valid To)")


class LicenseStatus(_Answer):
    professional: TypeStatus
    analyzer: TypeStatus
    analyzerCapacity: CapacityStatus = Field(description="Analyzer Capacity (time-based analyzer access), in minutes")
    serverLicense: ServerLicenseStatus | None = Field(None, description="the site's server license (LEF)")
    redundantAnalyzer: int | None = Field(
        None, description="users holding both a professional and an analyzer allocation (the analyzer one is waste)")


class Evaluation(_Answer):
    action: Action
    reason: str


class AllocationInfo(_Answer):
    licenseType: LicenseType
    allocationId: str
    createdDate: str | None
    lastUsed: str | None = Field(description="null: never used")
    daysInactive: float | None = Field(description="days since lastUsed (or createdDate when never used), UTC")
    quarantined: bool = Field(description="quarantined by Qlik: removed, reinstatable until quarantineEnd")
    quarantineEnd: str | None
    protections: list[str] = Field(description="protection rules that hold, as config key path: matched value")
    releasableAt: str | None = Field(
        description="when the scheduled evaluation would release it if nobody uses it before; null: never under "
        "the current configuration (a protection rule holds, release disabled, or quarantined)"
    )
    evaluation: Evaluation = Field(description="what an evaluation run would decide now")


class CustomProperty(_Answer):
    name: str
    value: str


class HoldInfo(_Answer):
    userDirectory: str
    userId: str
    until: str = Field(description="YYYY-MM-DD: the user's allocations are not released before this day (UTC)")
    reason: str | None
    by: str = Field(description="who set it (the audit records' caller)")
    at: str | None = Field(description="when it was set")
    active: bool = Field(description="false once lifted or expired: it protects nothing any more")


class ReinstateResult(_Answer):
    userDirectory: str
    userId: str
    licenseType: LicenseType
    allocationId: str = Field(description="the new allocation (or Qlik's quarantined one, reinstated)")
    caller: str = Field(description="the identity the audit records name")
    runId: str
    undoes: str | None = Field(description="when this tool released it (the release undone); null: --license-type "
                                           "allocated without a release of ours")


class UserLicenses(_Answer):
    userDirectory: str
    userId: str
    name: str | None
    inactive: bool
    blacklisted: bool = Field(description="the QMC's Blocked")
    removedExternally: bool
    tags: list[str]
    customProperties: list[CustomProperty]
    protected: bool = Field(description="a protection rule holds for at least one allocation")
    protections: list[str]
    allocations: list[AllocationInfo]
    hold: HoldInfo | None = Field(None, description="the hold set on the user (butler hold), if any")


class ReleasedAllocation(_Answer):
    userDirectory: str
    userId: str
    licenseType: LicenseType
    allocationId: str
    lastUsed: str | None
    daysInactive: float | None
    action: Action
    reason: str


class ReleaseResult(_Answer):
    userDirectory: str
    userId: str
    dryRun: bool
    caller: str = Field(description="the identity the audit records name")
    runId: str
    released: int
    allocations: list[ReleasedAllocation]
