"""Tuning the policy with evidence: candidates, what-if, returns and the thresholds' recommendation.

Pure functions over the inventory, the policy's decisions and the audit records, plus thin use cases that read
through the ports (``LicenseSource``, ``AuditTrail``). The CLI (``what-if``, ``returns``, ``evaluate --only``,
``report``) and the API routes call these.

- **Candidates**: the decisions of a dry run made now, filtered by action and license type, sorted (longest idle
  first, or by user), paged, as JSON or CSV; ``protected_by_rule`` counts the protected allocations per rule (the
  reason's config key path).
- **What-if**: one inventory (the owners of every allocation past the *smallest* threshold asked are read, so the
  request count does not grow with the thresholds), then ``policy.decide`` per threshold, exactly as the
  evaluation decides (releaseRedundant included); throttles, the breaker and notices are ignored.
- **Returns**: of the allocations this tool released in a window (audit ``release-outcome`` records), those whose
  user now holds an allocation of the same type created after the release. One ``/full`` read per type.
- **Recommendation**, per type: the smallest whole number of days T such that at most 5% of the users who came
  back (over ``HISTORY_DAYS`` of audit history) were idle at least T days when released, i.e. would have been
  released under T. With n returns sorted by idle days descending (d1 >= d2 >= ...) and k = floor(0.05 n),
  T = floor(d(k+1)) + 1. Null without returns: no evidence against the current threshold.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from statistics import median
from typing import Any, Literal

from butler.config import LICENSE_TYPES, Config
from butler.licenses.inventory import Inventory
from butler.licenses.model import AuditTrail, Decision, LicenseSource, Record, iso
from butler.licenses.policy import Rules, decide
from butler.licenses.redundant import evaluation_inventory
from butler.qrs.models import Allocation, LicenseType

SWEEP_DAYS = (14, 30, 45, 60, 90, 120, 180)
RETURNS_DAYS = 30
HISTORY_DAYS = 365  # the recommendation's history (the audit keeps 400 days by default)
RECOMMEND_SHARE = 0.05
MAX_THRESHOLD_DAYS = 3650
CANDIDATES_LIMIT, CANDIDATES_MAX = 1000, 10000  # 10,000 decisions are about 4 MB of JSON: under API Gateway's 10 MB
SORTS = ("days", "user")
Sort = Literal["days", "user"]
CSV_COLUMNS = ("userDirectory", "userId", "userName", "licenseType", "allocationId", "lastUsed", "daysInactive",
               "action", "reason")


# --- candidates ------------------------------------------------------------------------------------------------


def rule_of(reason: str) -> str:
    """The rule a protected decision names: its reason's config key path (``exclusions.tags: VIP`` -> the key)."""
    return reason.split(":", 1)[0].strip()


def protected_by_rule(decisions: Iterable[Decision]) -> dict[str, int]:
    """Protected allocations per rule, most first."""
    counts = Counter(rule_of(d.reason) for d in decisions if d.action == "protected")
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def user_name(decision: Decision) -> str | None:
    owner = decision.user or decision.allocation.user
    return owner.name if owner is not None else None


def select(decisions: Iterable[Decision], *, action: str | None = None, license_type: str | None = None,
           sort: Sort = "days") -> list[Decision]:
    """The decisions of one action and type; ``days``: longest idle first (unknown last), ``user``: by user."""
    chosen = [d for d in decisions if action in (None, d.action) and license_type in (None, d.license_type)]
    if sort == "user":
        return sorted(chosen, key=lambda d: (d.qualified_user.casefold(), d.license_type))
    return sorted(chosen, key=lambda d: (d.days_inactive is None, -(d.days_inactive or 0.0),
                                         d.qualified_user.casefold()))


def candidate_row(decision: Decision) -> dict[str, Any]:
    """One decision as the report gives it, with the user's name."""
    return {**decision.to_report(), "userName": user_name(decision)}


def to_csv(decisions: Iterable[Decision]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for decision in decisions:
        writer.writerow({k: "" if v is None else v for k, v in candidate_row(decision).items()})
    return out.getvalue()


def page_of(decisions: Sequence[Decision], limit: int, offset: int) -> dict[str, Any]:
    """One page of decisions and where it is in the whole."""
    shown = decisions[offset:offset + limit]
    following = offset + len(shown)
    return {"total": len(decisions), "limit": limit, "offset": offset,
            "nextOffset": following if following < len(decisions) else None,
            "decisions": [candidate_row(d) for d in shown]}


class ReadOnlyAudit:
    """The audit store read as it is (holds, warnings, history), nothing written: a dry run made only to be shown
    (candidates, report). Every read the port has is passed through; leftovers are the scheduled run's."""

    def __init__(self, audit: AuditTrail) -> None:
        self._audit = audit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._audit, name)

    def write(self, record: Record) -> None:
        return None

    def write_many(self, records: Iterable[Record]) -> None:
        return None

    def open_intents(self) -> list[Record]:
        return []  # completing a crashed run's releases is the scheduled run's job, not a preview's

    def open_runs(self) -> list[Record]:
        return []


# --- what-if ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeWhatIf:
    """What a dry run with ``inactivity_days`` would do for one type now (throttles and notices ignored)."""

    license_type: LicenseType
    inactivity_days: float
    allocations: int
    actions: dict[str, int]
    protected_by_rule: dict[str, int]
    unit_cost: float | None = None

    @property
    def would_release(self) -> int:
        return self.actions.get("release", 0)

    @property
    def protected(self) -> int:
        return self.actions.get("protected", 0)

    @property
    def share_freed_percent(self) -> float | None:
        return round(100 * self.would_release / self.allocations, 2) if self.allocations else None

    @property
    def monthly_saving(self) -> float | None:
        return None if self.unit_cost is None else round(self.would_release * self.unit_cost, 2)

    def to_json(self) -> dict[str, Any]:
        return {"inactivityDays": days_value(self.inactivity_days), "allocations": self.allocations,
                "wouldRelease": self.would_release, "protected": self.protected,
                "protectedByRule": self.protected_by_rule, "keep": self.actions.get("keep", 0),
                "skip": self.actions.get("skip", 0), "shareFreedPercent": self.share_freed_percent,
                "monthlySaving": self.monthly_saving}


@dataclass(frozen=True)
class Site:
    """One inventory read for every threshold asked (users past the smallest), with the facts decide needs."""

    inventory: Inventory
    holders: frozenset[str]
    rules: Rules
    at: datetime
    costs: dict[str, float] | None = None
    floor: float = 0.0  # the smallest threshold the owners were read for

    @cached_property
    def base(self) -> list[Decision]:
        """The decisions at the floor threshold: a larger threshold changes only those idle less than it."""
        return decisions_at(self, with_thresholds(self.rules, dict.fromkeys(LICENSE_TYPES, self.floor)))

    @cached_property
    def below(self) -> dict[int, Decision]:
        """Per allocation (index in ``base``), its decision at a threshold above its idle time: the same action
        at every such threshold, so decided once for the whole sweep."""
        return {}


def days_value(days: float) -> float:
    """A number of days as JSON shows it best: 30, not 30.0."""
    return int(days) if float(days).is_integer() else days


def with_thresholds(rules: Rules, days: Mapping[LicenseType, float]) -> Rules:
    return replace(rules, inactivity_days={**rules.inactivity_days, **days})


def read_site(config: Config, source: LicenseSource, smallest: float, at: datetime) -> Site:
    """The inventory with the owners of every allocation past ``smallest`` days (both types): 2 allocation reads
    and the users, whatever the number of thresholds decided on it afterwards."""
    rules = Rules.from_config(config.Butler.licenseManagement)
    floor = min(smallest, *rules.inactivity_days.values())
    inventory, holders = evaluation_inventory(source, with_thresholds(rules, dict.fromkeys(LICENSE_TYPES, floor)), at)
    costs = config.Butler.licenseMonitoring.costs
    return Site(inventory, holders, rules, at, None if costs is None else costs.model_dump(), floor)


def decisions_at(site: Site, rules: Rules) -> list[Decision]:
    """The policy's decisions, exactly as the evaluation makes them before its throttles."""
    return [decide(a, u, rules, site.at, site.holders) for a, u in site.inventory.pairs()]


def what_if(site: Site, thresholds: Mapping[LicenseType, float]) -> dict[LicenseType, TypeWhatIf]:
    """Per type, what the policy decides with ``thresholds`` (the configured one for a type not named)."""
    rules = with_thresholds(site.rules, thresholds)
    decisions = [d if _same_above_floor(d, rules) else _below(site, i, rules) for i, d in enumerate(site.base)]
    result: dict[LicenseType, TypeWhatIf] = {}
    for license_type in LICENSE_TYPES:
        mine = [d for d in decisions if d.license_type == license_type]
        result[license_type] = TypeWhatIf(
            license_type, rules.inactivity_days[license_type], len(mine), dict(Counter(d.action for d in mine)),
            protected_by_rule(mine), None if site.costs is None else site.costs.get(license_type, 0.0))
    return result


def _same_above_floor(decision: Decision, rules: Rules) -> bool:
    """Whether ``decide`` with ``rules`` (thresholds at or above the floor) gives the floor decision's action: the
    threshold only turns an allocation idle less than it into ``keep`` (see ``policy.decide``), so those idle at
    least the threshold, those kept already and those without a known idle time are decided alike; the others are
    decided again by ``decide`` itself."""
    days = decision.days_inactive
    return decision.action == "keep" or days is None or days >= rules.inactivity_days[decision.license_type]


def _below(site: Site, index: int, rules: Rules) -> Decision:
    found = site.below.get(index)
    if found is None:
        base = site.base[index]
        found = site.below[index] = decide(base.allocation, base.user, rules, site.at, site.holders)
    return found


def what_if_json(site: Site, thresholds: Mapping[LicenseType, float]) -> dict[str, Any]:
    outcome = what_if(site, thresholds)
    return {"at": iso(site.at), "ignores": "throttles, the breaker and notices",
            **{t: outcome[t].to_json() for t in LICENSE_TYPES}}


def sweep(site: Site, days: Sequence[int] = SWEEP_DAYS) -> list[dict[LicenseType, TypeWhatIf]]:
    return [what_if(site, dict.fromkeys(LICENSE_TYPES, float(d))) for d in days]


def sweep_json(site: Site, days: Sequence[int] = SWEEP_DAYS) -> dict[str, Any]:
    rows = sweep(site, days)
    return {"at": iso(site.at), "ignores": "throttles, the breaker and notices",
            "sweep": [{"days": d, **{t: row[t].to_json() for t in LICENSE_TYPES}} for d, row in zip(days, rows,
                                                                                                       strict=True)]}


def threshold_problem(name: str, value: float) -> str | None:
    """Why a threshold asked for is unusable, or None."""
    if not (math.isfinite(value) and 0 < value <= MAX_THRESHOLD_DAYS):
        return f"{name} {value:g}: give a number of days above 0, at most {MAX_THRESHOLD_DAYS}"
    return None


# --- returns ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Return:
    """A released user who holds a new allocation of the same type, allocated after the release."""

    user_directory: str
    user_id: str
    user_name: str | None
    released_at: datetime
    returned_at: datetime
    days_inactive_at_release: float | None

    @property
    def days_to_return(self) -> float:
        return (self.returned_at - self.released_at).total_seconds() / 86400

    def to_json(self) -> dict[str, Any]:
        return {"userDirectory": self.user_directory, "userId": self.user_id, "userName": self.user_name,
                "releasedAt": iso(self.released_at), "returnedAt": iso(self.returned_at),
                "daysToReturn": round(self.days_to_return, 2), "daysInactiveAtRelease": self.days_inactive_at_release}


@dataclass(frozen=True)
class TypeReturns:
    license_type: LicenseType
    released: int = 0
    returns: list[Return] = field(default_factory=list)
    idle_at_release: list[float] = field(default_factory=list)  # of the returns: idle days when released

    @property
    def returned(self) -> int:
        return len(self.returns)

    @property
    def return_rate(self) -> float | None:
        """Percent of the released allocations whose user came back; None when nothing was released."""
        return round(100 * self.returned / self.released, 2) if self.released else None

    @property
    def median_days_to_return(self) -> float | None:
        return round(median(r.days_to_return for r in self.returns), 2) if self.returns else None

    def to_json(self, *, users: bool = True) -> dict[str, Any]:
        answer: dict[str, Any] = {"released": self.released, "returned": self.returned,
                                  "returnRate": self.return_rate, "medianDaysToReturn": self.median_days_to_return}
        if users:
            answer["users"] = [r.to_json() for r in self.returns]
        return answer


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _owner_key(directory: str | None, user_id: str | None) -> tuple[str, str]:
    return (directory or "").casefold(), (user_id or "").casefold()


def returns(releases: Iterable[Record], allocations: Mapping[LicenseType, Sequence[Allocation]]
            ) -> dict[LicenseType, TypeReturns]:
    """Per type: the live releases (each allocation once) and which of those users came back."""
    created: dict[tuple[str, str, str], list[datetime]] = {}
    for license_type, listed in allocations.items():
        for allocation in listed:
            owner = allocation.user
            if owner is not None and allocation.createdDate is not None:
                created.setdefault((license_type, *_owner_key(owner.userDirectory, owner.userId)), []).append(
                    allocation.createdDate)
    seen: set[str] = set()
    found: dict[str, dict[str, Any]] = {t: {"released": 0, "returns": []} for t in LICENSE_TYPES}
    for record in releases:
        kind, at = str(record.get("licenseType")), _moment(record.get("at"))
        if (record.get("kind") != "release-outcome" or record.get("action") != "release" or record.get("dryRun")
                or kind not in found or at is None or record.get("allocationId") in seen):
            continue
        seen.add(str(record.get("allocationId")))
        found[kind]["released"] += 1
        key = (kind, *_owner_key(record.get("userDirectory"), record.get("userId")))
        later = sorted(c for c in created.get(key, []) if c > at)
        if later:
            idle = record.get("daysInactive")
            found[kind]["returns"].append(Return(
                str(record.get("userDirectory")), str(record.get("userId")), record.get("userName"), at, later[0],
                None if idle is None else float(idle)))
    return {t: TypeReturns(t, found[t]["released"], found[t]["returns"],
                           [r.days_inactive_at_release for r in found[t]["returns"]
                            if r.days_inactive_at_release is not None])
            for t in LICENSE_TYPES}


def returns_json(outcome: Mapping[LicenseType, TypeReturns], days: float, now: datetime, *,
                 users: bool = True) -> dict[str, Any]:
    released = sum(r.released for r in outcome.values())
    returned = sum(r.returned for r in outcome.values())
    return {"days": days_value(days), "from": iso(now - timedelta(days=days)), "to": iso(now),
            **{t: outcome[t].to_json(users=users) for t in LICENSE_TYPES},
            "total": {"released": released, "returned": returned,
                      "returnRate": round(100 * returned / released, 2) if released else None}}


def recommend(idle_days: Sequence[float], share: float = RECOMMEND_SHARE) -> int | None:
    """The smallest whole threshold (days) under which at most ``share`` of the returned users would have been
    released (idle at release >= threshold); None without returns."""
    if not idle_days:
        return None
    ordered = sorted(idle_days, reverse=True)
    allowed = math.floor(share * len(ordered))
    return math.floor(ordered[allowed]) + 1 if allowed < len(ordered) else 1


def recommendation_json(history: Mapping[LicenseType, TypeReturns], rules: Rules) -> dict[str, Any]:
    return {t: {"inactivityDays": recommend(history[t].idle_at_release),
                "current": days_value(rules.inactivity_days[t]),
                "returnsConsidered": len(history[t].idle_at_release), "historyDays": HISTORY_DAYS,
                "maxSharePercent": RECOMMEND_SHARE * 100} for t in LICENSE_TYPES}


def evidence(audit: AuditTrail, allocations: Mapping[LicenseType, Sequence[Allocation]], rules: Rules,
             now: datetime) -> dict[str, Any]:
    """What every evaluation reports: last month's returns, and the thresholds' recommendation (one audit read)."""
    history = audit.releases_between(now - timedelta(days=HISTORY_DAYS), now)
    since = iso(now - timedelta(days=RETURNS_DAYS)) or ""
    recent = returns([r for r in history if str(r.get("at", "")) >= since], allocations)
    return {"returns": returns_json(recent, RETURNS_DAYS, now, users=False),
            "recommendation": recommendation_json(returns(history, allocations), rules)}


def read_returns(source: LicenseSource, audit: AuditTrail, days: float, now: datetime) -> dict[str, Any]:
    """``butler returns``: the releases of the last ``days`` days and who came back (one /full read per type)."""
    releases = audit.releases_between(now - timedelta(days=days), now)
    allocations = {t: source.allocations(t) for t in LICENSE_TYPES}
    return returns_json(returns(releases, allocations), days, now)


def monthly_returns(releases: Iterable[Record], allocations: Mapping[LicenseType, Sequence[Allocation]]
                    ) -> list[tuple[str, LicenseType, int, int]]:
    """(month YYYY-MM, type, released, returned) per month of release."""
    by_month: dict[str, list[Record]] = {}
    for record in releases:
        by_month.setdefault(str(record.get("at", ""))[:7], []).append(record)
    rows = []
    for month in sorted(by_month):
        outcome = returns(by_month[month], allocations)
        rows += [(month, t, outcome[t].released, outcome[t].returned) for t in LICENSE_TYPES if outcome[t].released]
    return rows


def evidence_line(found: Mapping[str, Any]) -> str | None:
    """The evidence in one line, for the administrators' digest."""
    recent, advice = found.get("returns"), found.get("recommendation")
    if not recent or not advice:
        return None

    def rate(t: str) -> str:
        part = recent[t]
        return f"{t} {part['returned']} of {part['released']}" + (
            f" ({part['returnRate']:g}%)" if part["returnRate"] is not None else "")

    def days(t: str) -> str:
        value = advice[t]["inactivityDays"]
        return f"{t} {value if value is not None else 'no returns yet'} (now {advice[t]['current']:g})"

    return (f"users back within {recent['days']:g} days of a release: {', '.join(rate(t) for t in LICENSE_TYPES)}; "
            f"recommended inactivityDays: {', '.join(days(t) for t in LICENSE_TYPES)}")
