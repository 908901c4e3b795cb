"""License status from QRS's access type overview (``GET /v4/licenses/status``, ``butler status``)."""

from __future__ import annotations

from typing import Any

from butler.qrs.models import AccessDetails, AccessTypeOverview, AnalyzerTimeAccess


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


def license_status(overview: AccessTypeOverview) -> dict[str, Any]:
    return {
        "professional": type_status(overview.professionalAccess),
        "analyzer": type_status(overview.analyzerAccess),
        "analyzerCapacity": capacity_status(overview.analyzerTimeAccess),
    }
