"""The /v4 answers as pydantic models: they document the API (docs/openapi.json) and check every answer's shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LicenseTypeName = Literal["professional", "analyzer"]
ActionName = Literal["release", "would-release", "protected", "keep", "skip", "failed"]


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


class LicenseStatus(_Answer):
    professional: TypeStatus
    analyzer: TypeStatus
    analyzerCapacity: CapacityStatus = Field(description="Analyzer Capacity (time-based analyzer access), in minutes")


class Evaluation(_Answer):
    action: ActionName
    reason: str


class AllocationInfo(_Answer):
    licenseType: LicenseTypeName
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


class ReleasedAllocation(_Answer):
    userDirectory: str
    userId: str
    licenseType: LicenseTypeName
    allocationId: str
    lastUsed: str | None
    daysInactive: float | None
    action: ActionName
    reason: str


class ReleaseResult(_Answer):
    userDirectory: str
    userId: str
    dryRun: bool
    caller: str = Field(description="the identity the audit records name")
    runId: str
    released: int
    allocations: list[ReleasedAllocation]


class ErrorBody(BaseModel):
    message: str
