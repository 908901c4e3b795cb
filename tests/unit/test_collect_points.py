"""The pure half of the collector: QRS's license counts and allocations to InfluxDB fields and points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from butler.config import ALL_METRICS
from butler.licenses import collect
from butler.licenses.policy import days_inactive
from butler.qrs.models import AccessTypeOverview, Allocation
from butler.sinks.influx import line

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def overview(**extra: Any) -> AccessTypeOverview:
    data = {
        "professionalAccess": {"enabled": True, "total": 40, "allocated": 30, "used": 25, "quarantined": 2,
                               "excess": 0, "available": 8},
        "analyzerAccess": {"enabled": True, "total": 10, "allocated": 11, "used": 9, "quarantined": 1, "excess": 2,
                           "available": 0},
        "analyzerTimeAccess": {"enabled": True, "allocatedMinutes": 6000, "usedMinutes": 1500,
                               "unavailableMinutes": 300},
        **extra,
    }
    return AccessTypeOverview.model_validate(data)


def allocation(license_type: str = "professional", **fields: Any) -> Allocation:
    data = {"id": "a1", "user": {"userDirectory": "CORP", "userId": "jdoe"}, "createdDate": "2026-01-01T00:00:00.000Z",
            "lastUsed": "2026-05-01T12:00:00.000Z", **fields}
    return Allocation.model_validate(data).model_copy(update={"licenseType": license_type})


def test_access_types_keep_qrs_counts_and_add_utilization() -> None:
    usage = collect.usage_fields(overview())
    assert usage["professional"] == {"total": 40, "allocated": 30, "used": 25, "quarantined": 2, "excess": 0,
                                     "available": 8, "utilization": 75.0}
    assert usage["analyzer"]["excess"] == 2
    assert usage["analyzer"]["utilization"] == 110.0  # over-allocation shows above 100 %


def test_analyzer_capacity_maps_the_pool_of_minutes() -> None:
    capacity = collect.usage_fields(overview())["analyzer_capacity"]
    assert capacity == {"total": 6000, "allocated": 1800, "used": 1500, "quarantined": 0, "excess": 0,
                        "available": 4200, "utilization": 25.0, "allocated_minutes": 6000, "used_minutes": 1500,
                        "unavailable_minutes": 300}


def test_capacity_over_its_pool_shows_excess_never_negative_availability() -> None:
    usage = collect.usage_fields(overview(analyzerTimeAccess={"allocatedMinutes": 100, "usedMinutes": 90,
                                                              "unavailableMinutes": 30}))
    assert usage["analyzer_capacity"]["available"] == 0
    assert usage["analyzer_capacity"]["excess"] == 20


def test_a_site_without_any_license_has_zero_utilization() -> None:
    usage = collect.usage_fields(AccessTypeOverview.model_validate({}))
    assert {t: f["utilization"] for t, f in usage.items()} == {"professional": 0.0, "analyzer": 0.0,
                                                               "analyzer_capacity": 0.0}


def test_token_blocks_only_when_tokens_are_enabled() -> None:
    tokens = {"userAccess": {"allocatedTokens": 50, "usedTokens": 20, "quarantinedTokens": 5},
              "loginAccess": {"allocatedTokens": 10, "usedTokens": 4, "unavailableTokens": 3}}
    assert "user_access" not in collect.usage_fields(overview(**tokens))
    usage = collect.usage_fields(overview(tokensEnabled=True, **tokens))
    assert usage["user_access"] == {"total": 50, "allocated": 20, "used": 20, "quarantined": 5, "excess": 0,
                                    "available": 25, "utilization": 40.0}
    assert usage["login_access"] == {"total": 10, "allocated": 4, "used": 4, "quarantined": 3, "excess": 0,
                                     "available": 3, "utilization": 40.0}


@pytest.mark.parametrize(("metrics", "expected"), [
    (["totalLicenses"], {"total"}),
    (["availableLicenses"], {"available"}),
    (["allocatedLicenses"], {"allocated", "used", "quarantined", "excess", "utilization"}),
    (["totalLicenses", "allocatedLicenses", "availableLicenses"],
     {"total", "allocated", "used", "quarantined", "excess", "available", "utilization"}),
    (["userActivity"], set()),
])
def test_metrics_select_the_fields(metrics: list[Any], expected: set[str]) -> None:
    fields = collect.usage_fields(overview())["professional"]
    assert set(collect.selected_fields(fields, metrics)) == expected


def test_capacity_minutes_come_with_allocated_licenses() -> None:
    fields = collect.usage_fields(overview())["analyzer_capacity"]
    chosen = collect.selected_fields(fields, ["allocatedLicenses"])
    assert {"allocated_minutes", "used_minutes", "unavailable_minutes"} <= set(chosen)


def test_usage_points_one_per_type_at_the_given_time() -> None:
    points = collect.usage_points(collect.usage_fields(overview()), list(ALL_METRICS), NOW)
    lines = sorted(line(p) for p in points)
    assert len(lines) == 3
    assert lines[0].startswith("license_usage,license_type=analyzer ")
    assert all(text.endswith(f" {int(NOW.timestamp())}") for text in lines)
    professional = next(t for t in lines if "license_type=professional " in t)
    # integers are InfluxDB integers (``i``); utilization is a float (line protocol writes 75.0 as ``75``)
    assert "total=40i" in professional and "utilization=75 " in professional and "available=8i" in professional


def test_no_usage_fields_selected_means_no_usage_points() -> None:
    assert collect.usage_points(collect.usage_fields(overview()), ["userActivity"], NOW) == []


def test_activity_point_tags_and_fields() -> None:
    item = allocation("analyzer", quarantined=True)
    (point,) = collect.activity_points([item], NOW)
    text = line(point)
    assert text.startswith("user_license_activity,license_type=analyzer,user_directory=CORP,user_id=CORP\\jdoe ")
    assert 'last_activity="2026-05-01T12:00:00.000Z"' in text
    assert days_inactive(item, NOW) == 31.0
    assert "days_inactive=31," in text  # a float field: no ``i`` suffix
    assert "quarantined=true" in text


def test_never_used_allocation_counts_from_its_allocation_date() -> None:
    item = allocation(lastUsed="1753-01-01T00:00:00.000Z", createdDate="2026-05-22T12:00:00.000Z")
    (point,) = collect.activity_points([item], NOW)
    assert 'last_activity="2026-05-22T12:00:00.000Z"' in line(point)
    assert "days_inactive=10," in line(point)


def test_activity_uses_the_release_policys_definition_exactly() -> None:
    moment = NOW - timedelta(days=29, hours=23, minutes=59)
    item = allocation(lastUsed=moment.isoformat())
    (point,) = collect.activity_points([item], NOW)
    expected = days_inactive(item, NOW)
    assert expected is not None and expected < 30
    assert f"days_inactive={round(expected, 3)}" in line(point)


def test_deleted_users_allocation_is_named_by_its_deleted_user() -> None:
    item = allocation(user=None, deletedUserDirectory="OLD", deletedUserId="gone")
    (point,) = collect.activity_points([item], NOW)
    assert "user_directory=OLD,user_id=OLD\\gone " in line(point)


def test_allocation_without_any_date_has_no_point() -> None:
    item = allocation(lastUsed=None, createdDate=None)
    assert collect.activity_points([item], NOW) == []


def test_allocation_without_a_known_owner_is_named_by_its_id() -> None:
    item = allocation(user=None)
    (point,) = collect.activity_points([item], NOW)
    text = line(point)
    assert text.startswith("user_license_activity,license_type=professional,user_id=a1 ")  # no empty tag, no "\\"
