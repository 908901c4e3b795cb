"""A synthetic site (`--users N --seed S`): deterministic for N and S, with dates relative to now.

Mix: ~60% of users hold an allocation (~35% professional, ~65% analyzer); lastUsed spread over 400 days and skewed
recent, ~5% never used, some allocations created within the last 7 days, ~1% quarantined; directories CORP (~85%),
EXTERNAL, ADMIN_DOMAIN, SERVICE_ACCOUNTS plus INTERNAL sa_* accounts; tags VIP-User, Always-Licensed, Executive,
Power-User; custom properties Department and LicenseProtection; ~3% inactive, ~2% blacklisted, ~3% removed
externally; license totals ~110% of allocations; a few analyzer-capacity users with usage records.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate

from . import clock, model
from .builder import StateBuilder, gc_paused
from .model import JSON
from .state import Licenses, SimState

INTERNAL_ACCOUNTS = ("sa_repository", "sa_scheduler", "sa_api", "sa_engine", "sa_proxy", "sa_hub", "sa_monitoring")
DIRECTORIES = (("CORP", 0.85), ("EXTERNAL", 0.08), ("ADMIN_DOMAIN", 0.02), ("SERVICE_ACCOUNTS", 0.05))
TAGS = (("VIP-User", 0.02), ("Always-Licensed", 0.01), ("Executive", 0.015), ("Power-User", 0.05))
DEPARTMENTS = ("IT", "Sales", "Finance", "HR", "Marketing", "Operations")
FIRST = (
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Liam",
    "Maria",
    "Noah",
    "Olga",
    "Paul",
    "Rosa",
    "Sven",
    "Tina",
    "Victor",
)
LAST = (
    "Andersson",
    "Berg",
    "Costa",
    "Dubois",
    "Eriksson",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ivanova",
    "Jensen",
    "Klein",
    "Lindqvist",
    "Moreau",
    "Nilsson",
    "O'Brien",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Weber",
)
_CUMULATIVE = list(accumulate(share for _, share in DIRECTORIES))[:-1]
SERVICES = ("etl", "backup", "reporting", "nprinting", "monitor", "sync", "export", "audit")


@dataclass
class _Tally:
    allocations: dict[str, int] = field(default_factory=lambda: {kind: 0 for kind in model.ACCESS_TYPES})
    usages: list[tuple[JSON, int, datetime, int]] = field(default_factory=list)


def build_synthetic(users: int, seed: int = 0, now: datetime | None = None) -> SimState:
    rng = random.Random(seed)
    moment = clock.naive(now or clock.now())
    builder = StateBuilder(Licenses(), moment, model.GuidStream(rng))
    tally = _Tally()
    with gc_paused():
        for index in range(users):
            _add_user(builder, rng, tally, index)
        _set_licenses(builder, tally)
        for user, number, start, minutes in tally.usages:
            builder.add_usage(user, number, start, minutes)
        return builder.finish()


def _pick(rng: random.Random, items: tuple[str, ...]) -> str:
    return items[int(rng.random() * len(items))]  # cheaper than rng.choice, and just as deterministic


def _identity(rng: random.Random, index: int) -> tuple[str, str, str | None]:
    """(directory, userId, name) for user number `index`; the first ones are the INTERNAL service accounts."""
    if index < len(INTERNAL_ACCOUNTS):
        return "INTERNAL", INTERNAL_ACCOUNTS[index], INTERNAL_ACCOUNTS[index]
    first, last = _pick(rng, FIRST), _pick(rng, LAST)
    plain = last.replace("'", "").lower()
    directory = DIRECTORIES[bisect.bisect(_CUMULATIVE, rng.random())][0]
    if directory == "EXTERNAL":
        return directory, f"ext_{first.lower()}.{plain}{index}", f"{first} {last} (external)"
    if directory == "ADMIN_DOMAIN":
        return directory, f"adm_{first[0].lower()}{plain}{index}", f"{first} {last} (admin)"
    if directory == "SERVICE_ACCOUNTS":
        service = _pick(rng, SERVICES)
        return directory, f"svc_{service}{index}", f"Service account {service} {index}"
    return directory, f"{first[0].lower()}{plain}{index}", f"{first} {last}"


def _add_user(builder: StateBuilder, rng: random.Random, tally: _Tally, index: int) -> None:
    directory, user_id, name = _identity(rng, index)
    plan = _license_plan(builder.now, rng) if rng.random() < 0.60 else None
    joined = (plan[1] if plan else builder.now) - timedelta(days=rng.random() * 200)
    stamp = clock.fmt(joined)
    key = f"{directory}\\{user_id}"
    user = model.user(
        guid=builder.new_id(f"user:{key}"),
        created=joined,
        directory=directory,
        user_id=user_id,
        name=name,
        flags=_flags(rng),
        custom_properties=builder.property_values(key, _properties(rng), stamp),
        tags=[builder.tag(tag) for tag, share in TAGS if rng.random() < share],
        roles=(["RootAdmin"] if rng.random() < 0.5 else ["ContentAdmin"]) if directory == "ADMIN_DOMAIN" else None,
        attributes=_attributes(builder, rng, directory, user_id, stamp),
    )
    builder.add_user(user)
    if plan is not None:
        kind, created, last_used, quarantine_end = plan
        builder.add_allocation(kind, user, created, last_used, quarantine_end)
        tally.allocations[kind] += 1
    elif rng.random() < 0.04:
        for number in range(rng.randint(1, 3)):
            start = builder.now - timedelta(days=rng.random() * 30)
            tally.usages.append((user, number, start, 6 * rng.randint(1, 10)))


def _license_plan(now: datetime, rng: random.Random) -> tuple[str, datetime, datetime | None, datetime | None]:
    """(kind, createdDate, lastUsed or None, quarantineEnd or None) for one allocation."""
    kind = "professional" if rng.random() < 0.35 else "analyzer"
    draw = rng.random()
    if draw < 0.01:  # quarantined: released within a week of its last use
        last_used = now - timedelta(days=0.1 + rng.random() * 6.4)
        return kind, last_used - timedelta(days=1 + rng.random() * 300), last_used, last_used + clock.QUARANTINE
    if draw < 0.05:  # created within the last 7 days
        created = now - timedelta(days=rng.random() * 7)
        used = None if rng.random() < 0.3 else created + (now - created) * rng.random()
        return kind, created, used, None
    if draw < 0.09:  # never used
        return kind, now - timedelta(days=rng.random() * 400), None, None
    last_used = now - timedelta(days=400 * rng.random() ** 2.5)  # skewed towards recent use
    return kind, last_used - timedelta(days=1 + rng.random() * 300), last_used, None


def _flags(rng: random.Random) -> dict[str, bool]:
    return {
        "inactive": rng.random() < 0.03,
        "blacklisted": rng.random() < 0.02,
        "removedExternally": rng.random() < 0.03,
    }


def _properties(rng: random.Random) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    if rng.random() < 0.75:
        values["Department"] = rng.sample(DEPARTMENTS, 2 if rng.random() < 0.05 else 1)
    if rng.random() < 0.01:
        values["LicenseProtection"] = ["Keep"]
    return values


def _attributes(builder: StateBuilder, rng: random.Random, directory: str, user_id: str, stamp: str) -> list[JSON]:
    if directory not in ("CORP", "EXTERNAL"):
        return []
    domain = "corp.example.com" if directory == "CORP" else "partner.example.org"
    return [model.user_attribute(builder.new_id("attribute"), stamp, "email", f"{user_id}@{domain}")]


def _set_licenses(builder: StateBuilder, tally: _Tally) -> None:
    licenses = builder.state.licenses
    licenses.professional = math.ceil(tally.allocations["professional"] * 1.1)
    licenses.analyzer = math.ceil(tally.allocations["analyzer"] * 1.1)
    used = sum(minutes for *_, minutes in tally.usages)
    allocated = max(600, math.ceil(used * 1.5 / 600) * 600)
    licenses.analyzer_time = {"allocatedMinutes": allocated, "usedMinutes": used, "unavailableMinutes": 0}
