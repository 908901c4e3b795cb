"""License status from QRS's access type overview (``GET /v4/licenses/status``, ``butler status``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from butler.licenses.answers import LicenseStatus
from butler.licenses.server_license import redundant_analyzer
from butler.qrs.models import AccessDetails, AccessTypeOverview, Allocation, AnalyzerTimeAccess


def percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def type_status(details: AccessDetails) -> dict[str, Any]:
    """Utilization is allocated / total, in percent (0 when the site has no license of the type)."""
    return {
        "total": details.total,
        "allocated": details.allocated,
        "available": details.available,
        "utilization": percent(details.allocated, details.total),
        "used": details.used,
        "quarantined": details.quarantined,
        "excess": details.excess,
    }


def capacity_status(time_access: AnalyzerTimeAccess) -> dict[str, Any]:
    """Analyzer Capacity, in minutes of the monthly pool."""
    allocated, used = time_access.allocatedMinutes, time_access.usedMinutes
    return {
        "allocatedMinutes": allocated,
        "usedMinutes": used,
        "unavailableMinutes": time_access.unavailableMinutes,
        "availableMinutes": max(0, allocated - used - time_access.unavailableMinutes),
        "utilization": percent(used, allocated),
    }


def license_status(overview: AccessTypeOverview, server: dict[str, Any] | None = None,
                   redundant: int | None = None) -> LicenseStatus:
    """The status answer; ``server`` from ``server_license_status``, ``redundant`` from ``redundant_pairs``."""
    return LicenseStatus.model_validate({
        "professional": type_status(overview.professionalAccess),
        "analyzer": type_status(overview.analyzerAccess),
        "analyzerCapacity": capacity_status(overview.analyzerTimeAccess),
        "serverLicense": server,
        "redundantAnalyzer": redundant,
    })


def redundant_pairs(professional: Iterable[Allocation], analyzer: Iterable[Allocation]) -> int:
    """Users holding both types (by QRS user id)."""
    return redundant_analyzer((a.user.id for a in professional if a.user and a.user.id),
                              (a.user.id for a in analyzer if a.user and a.user.id))
