"""Capacity planning (``butler forecast``, ``GET /v4/licenses/forecast``): per license type, the trend of the
allocations and the day the pool runs out. A pure module: no I/O, the caller reads the history.

The history is one ``Snapshot`` per type per day (``daily`` keeps the last sample of each UTC day) and the audit's
releases per type per day. Over the ``window_days`` days ending today (inclusive), two trends are fitted with the
Theil–Sen estimator, the median of the pairwise slopes, computed exactly in fractions, which one odd day cannot move:

- ``allocatedPerDay``: the trend of the allocated count as observed, releases included (the net change);
- ``allocatedPerDayWithoutReleases``: the trend of the demand, the allocated count plus the releases since the
  window's start (a release on day d counts from day d on), so a day that released 300 does not read as falling
  demand.

Exhaustion comes from the demand trend: a purchase is planned for the day the pool runs out if releases stop, since
they depend on users going idle and on rules an administrator may change, and buying a little early costs less than
users turned away. The net date, if releases go on at the recent pace, is given beside it (``...WithReleases``).

Exhaustion is the first whole day on which the line drawn from the latest point (the latest allocated count, on the
latest day) at the trend's slope reaches the total, counted from today (a stale history projecting a past date
gives today). It is 0 days when the pool is already at or over its total (an observation, so given even on a short
history); null when the slope is <= 0, the date is beyond the horizon, the history has fewer than
``min_history_days`` days in the window (the trends are then null too: no guess), or the type has no licenses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from itertools import combinations
from statistics import median
from typing import Any

MAX_PAIRS = 10_000  # above this many pairs (n > 141 points), the pairs are subsampled by lag
MAX_HORIZON_DAYS = 36_500
Point = tuple[int, int]  # (day offset, count)


@dataclass(frozen=True)
class Sample:
    """One collected reading (an InfluxDB ``license_usage`` point or a stored snapshot), at any time of day."""

    at: datetime
    license_type: str
    total: int
    allocated: int


@dataclass(frozen=True)
class Snapshot:
    """One type's counts on one day: the last reading of that day."""

    day: date
    license_type: str
    total: int
    allocated: int


@dataclass(frozen=True)
class ReleaseCount:
    """How many allocations of one type were released on one day (live releases only, from the audit)."""

    day: date
    license_type: str
    released: int


@dataclass(frozen=True)
class TypeForecast:
    license_type: str
    as_of: date  # the day of the latest snapshot
    history_days: int
    total: int
    allocated: int
    allocated_per_day: float | None
    allocated_per_day_without_releases: float | None
    days_to_exhaustion: int | None
    exhaustion_date: date | None
    days_to_exhaustion_with_releases: int | None
    exhaustion_date_with_releases: date | None
    note: str | None

    @property
    def available(self) -> int:
        return max(self.total - self.allocated, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "licenseType": self.license_type,
            "asOf": self.as_of.isoformat(),
            "historyDays": self.history_days,
            "total": self.total,
            "allocated": self.allocated,
            "available": self.available,
            "allocatedPerDay": self.allocated_per_day,
            "allocatedPerDayWithoutReleases": self.allocated_per_day_without_releases,
            "daysToExhaustion": self.days_to_exhaustion,
            "exhaustionDate": _iso(self.exhaustion_date),
            "daysToExhaustionWithReleases": self.days_to_exhaustion_with_releases,
            "exhaustionDateWithReleases": _iso(self.exhaustion_date_with_releases),
            "note": self.note,
        }


@dataclass(frozen=True)
class _Plan:
    today: date
    start: date  # the window's first day
    horizon_days: int
    min_history_days: int


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def daily(samples: Iterable[Sample]) -> list[Snapshot]:
    """One snapshot per type per UTC day, the last sample of the day (of equal times, the later in the input);
    sorted by type, then day."""
    last: dict[tuple[str, date], Sample] = {}
    for sample in samples:
        key = (sample.license_type, _utc(sample.at).date())
        kept = last.get(key)
        if kept is None or _utc(sample.at) >= _utc(kept.at):
            last[key] = sample
    return [Snapshot(day, kind, s.total, s.allocated) for (kind, day), s in sorted(last.items())]


def released_in_last(releases: Iterable[ReleaseCount], *, today: date, days: int = 30) -> dict[str, int]:
    """Releases per type over the ``days`` days ending today (inclusive)."""
    start = today - timedelta(days=days - 1)
    counts: dict[str, int] = defaultdict(int)
    for release in releases:
        if start <= release.day <= today:
            counts[release.license_type] += release.released
    return dict(counts)


def _pairs(points: Sequence[Point]) -> Iterator[tuple[Point, Point]]:
    """Every pair, or above ``MAX_PAIRS`` the pairs at evenly spread lags (deterministic, at most MAX_PAIRS)."""
    n = len(points)
    if n * (n - 1) // 2 <= MAX_PAIRS:
        return combinations(points, 2)
    count = max(MAX_PAIRS // (n - 1), 2)
    lags = sorted({1 + (n - 2) * k // (count - 1) for k in range(count)})
    return ((points[i], points[i + lag]) for lag in lags for i in range(n - lag))


def theil_sen_slope(points: Iterable[Point]) -> Fraction | None:
    """The median of the slopes between pairs of points of distinct x; None below two distinct x."""
    ordered = sorted(points)
    slopes = [Fraction(y2 - y1, x2 - x1) for (x1, y1), (x2, y2) in _pairs(ordered) if x2 != x1]
    return median(slopes) if slopes else None


def _rounded(slope: Fraction | None) -> float | None:
    return None if slope is None else round(float(slope), 3)


def _exhaustion(latest: Snapshot, slope: Fraction | None, plan: _Plan) -> tuple[int | None, date | None]:
    if latest.total <= 0:
        return None, None
    needed = latest.total - latest.allocated
    if needed <= 0:
        return 0, plan.today
    if slope is None or slope <= 0:
        return None, None
    days = max((latest.day - plan.today).days + math.ceil(needed / slope), 0)
    return (days, plan.today + timedelta(days=days)) if days <= plan.horizon_days else (None, None)


def _note(history_days: int, latest: Snapshot, plan: _Plan) -> str | None:
    if history_days < plan.min_history_days:
        return f"not enough history: {history_days} days, need {plan.min_history_days}"
    if latest.total <= 0:
        return "no licenses of this type"
    return None


def _type_forecast(
    license_type: str, history: Mapping[date, Snapshot], released: Mapping[date, int], plan: _Plan
) -> TypeForecast:
    latest = history[max(history)]
    days = sorted(day for day in history if day >= plan.start)
    note = _note(len(days), latest, plan)
    raw = demand = None
    if len(days) >= plan.min_history_days:
        raw = theil_sen_slope([((d - plan.start).days, history[d].allocated) for d in days])
        demand = theil_sen_slope([
            ((d - plan.start).days, history[d].allocated + sum(n for r, n in released.items() if r <= d))
            for d in days
        ])
    days_left, exhausted = _exhaustion(latest, demand, plan)
    days_left_net, exhausted_net = _exhaustion(latest, raw, plan)
    return TypeForecast(
        license_type, latest.day, len(days), latest.total, latest.allocated, _rounded(raw), _rounded(demand),
        days_left, exhausted, days_left_net, exhausted_net, note,
    )


def forecast(
    snapshots: Iterable[Snapshot],
    releases: Iterable[ReleaseCount],
    *,
    today: date,
    horizon_days: int = 180,
    window_days: int = 90,
    min_history_days: int = 14,
) -> dict[str, TypeForecast]:
    """Per license type with a snapshot on or before today, sorted by type. The window is the ``window_days`` days
    ending today; a type whose snapshots are all older keeps its latest counts, with 0 history days and the note.
    Of two snapshots of one type and day, the later in the input wins."""
    if not 0 <= horizon_days <= MAX_HORIZON_DAYS:
        raise ValueError(f"horizon must be 0 to {MAX_HORIZON_DAYS} days, not {horizon_days}")
    if window_days < 2:
        raise ValueError(f"the window must be at least 2 days, not {window_days}")
    start = today - timedelta(days=window_days - 1)
    plan = _Plan(today, start, horizon_days, max(min_history_days, 2))
    history: dict[str, dict[date, Snapshot]] = defaultdict(dict)
    for snapshot in snapshots:
        if snapshot.day <= today:
            history[snapshot.license_type][snapshot.day] = snapshot
    released: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for release in releases:
        if start <= release.day <= today:
            released[release.license_type][release.day] += release.released
    return {kind: _type_forecast(kind, days, released.get(kind, {}), plan) for kind, days in sorted(history.items())}


def _priced(
    counts: Mapping[str, int], costs: Mapping[str, float], count_key: str, amount_key: str, total_key: str
) -> dict[str, Any]:
    by_type = {
        kind: {count_key: counts.get(kind, 0), "unitCost": costs.get(kind, 0.0),
               amount_key: round(counts.get(kind, 0) * costs.get(kind, 0.0), 2)}
        for kind in sorted(set(counts) | set(costs))
    }
    return {total_key: round(sum(counts.get(k, 0) * costs.get(k, 0.0) for k in by_type), 2), "byType": by_type}


def monthly_cost(allocated: Mapping[str, int], costs: Mapping[str, float]) -> dict[str, Any]:
    """The monthly cost of the current allocations, at ``licenseMonitoring.costs`` (price per license per month,
    currency-free). Every type of either mapping is listed; a type without a price costs 0."""
    return _priced(allocated, costs, "allocated", "cost", "monthlyCost")


def monthly_savings(released_last_30_days: Mapping[str, int], costs: Mapping[str, float]) -> dict[str, Any]:
    """What the releases of the last 30 days save per month: each released allocation is a license not bought."""
    return _priced(released_last_30_days, costs, "released", "savings", "monthlySavings")
