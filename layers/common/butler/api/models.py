"""The /v4 answers as pydantic models: the core's answers (``butler.licenses.answers``) and the API's error body."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from butler.licenses.answers import (
    AllocationInfo,
    CapacityStatus,
    CustomProperty,
    Evaluation,
    LicenseStatus,
    ReleasedAllocation,
    ReleaseResult,
    TypeStatus,
    UserLicenses,
)

LicenseTypeName = Literal["professional", "analyzer"]  # the query parameter's type (FastAPI-style validation)

__all__ = ["AllocationInfo", "CapacityStatus", "CustomProperty", "ErrorBody", "Evaluation", "LicenseStatus",
           "LicenseTypeName", "ReleaseResult", "ReleasedAllocation", "TypeStatus", "UserLicenses"]


class ErrorBody(BaseModel):
    message: str
