"""Capacity planning on seeded histories with known answers: trends, exhaustion dates, releases, savings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from butler.licenses.forecast import (
    ReleaseCount,
    Sample,
    Snapshot,
    TypeForecast,
    daily,
    forecast,
    monthly_cost,
    monthly_savings,
    released_in_last,
    theil_sen_slope,
)

TODAY = date(2026, 6, 15)


def history(allocated: list[int], *, total: int = 500, kind: str = "professional", end: date = TODAY) -> list[Snapshot]:
    """One snapshot a day, the last on ``end``."""
    first = end - timedelta(days=len(allocated) - 1)
    return [Snapshot(first + timedelta(days=i), kind, total, count) for i, count in enumerate(allocated)]


def one(snapshots: list[Snapshot], releases: list[ReleaseCount] | None = None, **kwargs: int) -> TypeForecast:
    result = forecast(snapshots, releases or [], today=TODAY, **kwargs)
    assert len(result) == 1
    return next(iter(result.values()))


def test_a_straight_line_of_two_a_day_reaches_a_known_date() -> None:
    # 100, 102, ..., 218 over 60 days: 282 left at 2 a day is 141 days.
    result = one(history([100 + 2 * i for i in range(60)]))
    assert result.allocated_per_day == 2.0
    assert result.allocated_per_day_without_releases == 2.0
    assert (result.days_to_exhaustion, result.exhaustion_date) == (141, date(2026, 11, 3))
    assert (result.days_to_exhaustion_with_releases, result.exhaustion_date_with_releases) == (141, date(2026, 11, 3))
    assert result.to_json() == {
        "licenseType": "professional", "asOf": "2026-06-15", "historyDays": 60, "total": 500, "allocated": 218,
        "available": 282, "allocatedPerDay": 2.0, "allocatedPerDayWithoutReleases": 2.0, "daysToExhaustion": 141,
        "exhaustionDate": "2026-11-03", "daysToExhaustionWithReleases": 141,
        "exhaustionDateWithReleases": "2026-11-03", "note": None,
    }


def test_a_partial_last_day_rounds_up_to_the_day_the_total_is_reached() -> None:
    # 3 a day: 300 left (140 + 3 * 20 = 200) is exactly 100 days; 301 left needs 101.
    assert one(history([140 + 3 * i for i in range(21)])).days_to_exhaustion == 100
    assert one(history([139 + 3 * i for i in range(21)])).days_to_exhaustion == 101


def test_a_stale_history_counts_from_today() -> None:
    # The line reaches 500 on the 141st day after June 5, ten days before today.
    result = one(history([100 + 2 * i for i in range(60)], end=TODAY - timedelta(days=10)))
    assert (result.as_of, result.days_to_exhaustion) == (date(2026, 6, 5), 131)
    assert result.exhaustion_date == date(2026, 10, 24)
    assert result.history_days == 60


def test_a_flat_line_never_runs_out() -> None:
    result = one(history([300] * 60))
    assert result.allocated_per_day == 0.0
    assert (result.days_to_exhaustion, result.exhaustion_date) == (None, None)
    assert result.to_json()["exhaustionDate"] is None


def test_a_falling_trend_never_runs_out() -> None:
    result = one(history([400 - i for i in range(60)]))
    assert result.allocated_per_day == -1.0
    assert (result.days_to_exhaustion, result.exhaustion_date) == (None, None)


def test_the_horizon_cuts_it_off_inclusively() -> None:
    line = history([100 + 2 * i for i in range(60)])
    assert one(line, horizon_days=141).days_to_exhaustion == 141
    cut = one(line, horizon_days=140)
    assert (cut.days_to_exhaustion, cut.exhaustion_date) == (None, None)


@pytest.mark.parametrize("latest", [500, 520])
def test_already_full_is_zero_days_whatever_the_trend(latest: int) -> None:
    result = one(history([600 - i for i in range(59)] + [latest]))
    assert (result.days_to_exhaustion, result.exhaustion_date) == (0, TODAY)
    assert (result.days_to_exhaustion_with_releases, result.available) == (0, 0)


def test_a_type_without_licenses_has_no_exhaustion() -> None:
    result = one(history([0] * 30, total=0))
    assert (result.days_to_exhaustion, result.note) == (None, "no licenses of this type")


def test_a_release_spike_does_not_move_the_demand_trend() -> None:
    # Demand grows 2 a day; on day 30 of 60 the butler releases 300, so the allocated count drops by 300 for good.
    allocated = [100 + 2 * i - (300 if i >= 30 else 0) + 300 for i in range(60)]
    spike = [ReleaseCount(TODAY - timedelta(days=29), "professional", 300)]
    result = one(history(allocated), spike)
    assert result.allocated_per_day_without_releases == 2.0
    # 218 allocated today: 282 left at the demand's 2 a day.
    assert (result.allocated, result.days_to_exhaustion) == (218, 141)
    # The net trend is honest about the step: with releases at that pace, the pool never runs out.
    assert result.allocated_per_day is not None and result.allocated_per_day < 0
    assert result.days_to_exhaustion_with_releases is None


@pytest.mark.parametrize("step_day", [5, 55])
def test_a_release_step_near_the_window_edges_leaves_the_raw_trend(step_day: int) -> None:
    allocated = [400 + 2 * i - (300 if i >= step_day else 0) for i in range(60)]
    spike = [ReleaseCount(TODAY - timedelta(days=59 - step_day), "professional", 300)]
    result = one(history(allocated), spike)
    assert result.allocated_per_day == pytest.approx(2.0, abs=0.01)
    assert result.allocated_per_day_without_releases == 2.0


def test_a_one_day_outlier_does_not_move_either_trend() -> None:
    allocated = [100 + 2 * i for i in range(60)]
    allocated[40] -= 300  # a bad reading, back the next day
    result = one(history(allocated))
    assert (result.allocated_per_day, result.allocated_per_day_without_releases) == (2.0, 2.0)


def test_releases_outside_the_window_or_of_another_type_are_ignored() -> None:
    releases = [ReleaseCount(TODAY - timedelta(days=90), "professional", 50),
                ReleaseCount(TODAY + timedelta(days=1), "professional", 50),
                ReleaseCount(TODAY - timedelta(days=10), "analyzer", 50)]
    result = one(history([300] * 60), releases)
    assert result.allocated_per_day_without_releases == 0.0


def test_steady_releases_show_the_demand_behind_a_flat_count() -> None:
    # Five new allocations a day, five released a day: flat, yet demand is 5 a day.
    releases = [ReleaseCount(TODAY - timedelta(days=i), "analyzer", 5) for i in range(60)]
    result = one(history([900] * 60, total=1000, kind="analyzer"), releases)
    assert (result.allocated_per_day, result.allocated_per_day_without_releases) == (0.0, 5.0)
    assert (result.days_to_exhaustion, result.days_to_exhaustion_with_releases) == (20, None)


def test_below_fourteen_days_of_history_gives_the_note_and_nulls() -> None:
    result = one(history([100 + 2 * i for i in range(9)]))
    assert result.note == "not enough history: 9 days, need 14"
    assert (result.allocated_per_day, result.allocated_per_day_without_releases) == (None, None)
    assert (result.days_to_exhaustion, result.exhaustion_date, result.history_days) == (None, None, 9)
    assert (result.total, result.allocated, result.available) == (500, 116, 384)
    assert one(history([100 + 2 * i for i in range(14)])).note is None


def test_history_days_count_only_distinct_days_in_the_window() -> None:
    old = history([100] * 30, end=TODAY - timedelta(days=95))
    gaps = [s for s in history([100 + i for i in range(90)]) if s.day.day % 2 == 1]  # May 31 and June 1 adjoin
    result = one(old + gaps + [Snapshot(TODAY + timedelta(days=1), "professional", 500, 499)])
    assert result.history_days == len(gaps)
    assert (result.allocated, result.allocated_per_day) == (189, 1.0)  # calendar days, not sample indices


def test_only_old_history_keeps_the_latest_counts_with_the_note() -> None:
    result = one(history([100] * 30, end=TODAY - timedelta(days=100)))
    assert (result.history_days, result.allocated, result.as_of) == (0, 100, TODAY - timedelta(days=100))
    assert result.note == "not enough history: 0 days, need 14"


def test_mixed_types_are_separated() -> None:
    snapshots = history([100 + 2 * i for i in range(60)]) + history([50] * 60, total=80, kind="analyzer")
    result = forecast(sorted(snapshots, key=lambda s: s.day), [], today=TODAY)
    assert list(result) == ["analyzer", "professional"]
    assert (result["analyzer"].allocated_per_day, result["analyzer"].total) == (0.0, 80)
    assert (result["professional"].allocated_per_day, result["professional"].days_to_exhaustion) == (2.0, 141)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        forecast([], [], today=TODAY, horizon_days=-1)
    with pytest.raises(ValueError, match="window"):
        forecast([], [], today=TODAY, window_days=1)
    assert forecast([], [], today=TODAY) == {}


def test_samples_are_reduced_to_the_last_of_each_utc_day() -> None:
    cet = timezone(timedelta(hours=1))
    samples = [
        Sample(datetime(2026, 6, 14, 23, 0, tzinfo=UTC), "professional", 500, 120),
        Sample(datetime(2026, 6, 14, 8, 0, tzinfo=UTC), "professional", 500, 100),
        Sample(datetime(2026, 6, 15, 0, 30, tzinfo=cet), "professional", 500, 130),  # 23:30 UTC on the 14th
        Sample(datetime(2026, 6, 15, 9, 0), "professional", 500, 140),  # naive: UTC
        Sample(datetime(2026, 6, 15, 9, 0, tzinfo=UTC), "professional", 510, 141),  # same time, later input
        Sample(datetime(2026, 6, 15, 1, 0, tzinfo=UTC), "analyzer", 50, 7),
    ]
    assert daily(samples) == [
        Snapshot(date(2026, 6, 15), "analyzer", 50, 7),
        Snapshot(date(2026, 6, 14), "professional", 500, 130),
        Snapshot(date(2026, 6, 15), "professional", 510, 141),
    ]


def test_theil_sen_on_known_points() -> None:
    assert theil_sen_slope([(0, 0), (1, 1), (2, 2), (3, 3), (4, 100)]) == 1  # six slopes of 1 out of ten
    assert theil_sen_slope([(0, 0), (1, 1), (2, 2), (3, 100)]) == Fraction(103, 6)  # 1, 1, 1, 33⅓, 49.5, 98: too few
    assert theil_sen_slope([(0, 0), (1, 3)]) == 3
    assert theil_sen_slope([(0, 5)]) is None
    assert theil_sen_slope([(0, 1), (2, 2)]) == Fraction(1, 2)


def test_long_histories_subsample_pairs_and_keep_the_line() -> None:
    points = [(x, 7 + 3 * x) for x in range(1000)]
    points[500] = (500, -10_000)
    assert theil_sen_slope(points) == 3
    result = one(history([100 + i // 2 for i in range(365)], total=10_000), window_days=365)
    assert result.allocated_per_day == 0.5


def test_released_in_last_thirty_days() -> None:
    releases = [ReleaseCount(TODAY, "professional", 2), ReleaseCount(TODAY - timedelta(days=29), "professional", 3),
                ReleaseCount(TODAY - timedelta(days=30), "professional", 100), ReleaseCount(TODAY, "analyzer", 4)]
    assert released_in_last(releases, today=TODAY) == {"professional": 5, "analyzer": 4}


def test_savings_and_costs_arithmetic() -> None:
    costs = {"professional": 40.0, "analyzer": 12.5}
    assert monthly_savings({"professional": 3, "analyzer": 5}, costs) == {
        "monthlySavings": 182.5,
        "byType": {"analyzer": {"released": 5, "unitCost": 12.5, "savings": 62.5},
                   "professional": {"released": 3, "unitCost": 40.0, "savings": 120.0}},
    }
    assert monthly_cost({"professional": 218, "analyzer_capacity": 1}, costs) == {
        "monthlyCost": 8720.0,
        "byType": {"analyzer": {"allocated": 0, "unitCost": 12.5, "cost": 0.0},
                   "analyzer_capacity": {"allocated": 1, "unitCost": 0.0, "cost": 0.0},
                   "professional": {"allocated": 218, "unitCost": 40.0, "cost": 8720.0}},
    }
    assert monthly_savings({}, {}) == {"monthlySavings": 0, "byType": {}}


counts = st.lists(st.integers(min_value=0, max_value=5000), min_size=2, max_size=90)


@given(counts, st.integers(min_value=-1000, max_value=1000))
def test_a_constant_shift_does_not_change_the_slope(values: list[int], shift: int) -> None:
    assert theil_sen_slope(list(enumerate(values))) == theil_sen_slope([(x, y + shift) for x, y in enumerate(values)])


@given(st.integers(min_value=5, max_value=90), st.integers(-50, 50), st.integers(0, 1000), st.data())
def test_one_outlier_day_does_not_move_a_line(n: int, slope: int, start: int, data: st.DataObject) -> None:
    """Of the n(n-1)/2 pairs, one point touches n-1: fewer than half once n >= 5, so the median stays exact."""
    points = [(x, start + slope * x) for x in range(n)]
    where = data.draw(st.integers(0, n - 1))
    points[where] = (where, data.draw(st.integers(-100_000, 100_000)))
    assert theil_sen_slope(points) == slope


@given(counts, st.data())
def test_one_changed_day_moves_the_median_at_most_n_minus_one_ranks(values: list[int], data: st.DataObject) -> None:
    points = list(enumerate(values))
    n = len(points)
    slopes = sorted(Fraction(y2 - y1, x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:])
    where = data.draw(st.integers(0, n - 1))
    points[where] = (where, data.draw(st.integers(-100_000, 100_000)))
    moved = theil_sen_slope(points)
    assert moved is not None
    low, high = (len(slopes) - 1) // 2 - (n - 1), len(slopes) // 2 + (n - 1)  # the median's ranks, moved n - 1
    if low >= 0:
        assert slopes[low] <= moved
    if high < len(slopes):
        assert moved <= slopes[high]
