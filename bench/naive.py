"""The baseline: the obvious strategy (the best-known open-source tool's), for comparison only, never the product.

The same decisions as the product (``butler.licenses.policy.decide``), but one ``GET /qrs/user/{id}`` per
allocation past its threshold (N+1 round trips), and releases one at a time (user lookup, then DELETE).
``limit`` bounds the per-user lookups of a dry run on big sites; the full cost is extrapolated from them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from butler.config import LICENSE_TYPES, Config
from butler.licenses.policy import Decision, Rules, decide, needs_user_record
from butler.qrs import QrsClient, QrsNotFound
from butler.qrs.models import Allocation, User
from butler.wiring import qrs_client


def _user(client: QrsClient, allocation: Allocation) -> User | None:
    if allocation.user is None or not allocation.user.id:
        return None
    try:
        return User.model_validate_json(client.request("GET", f"user/{allocation.user.id}").content)
    except QrsNotFound:
        return None


def _candidates(client: QrsClient, rules: Rules, now: datetime) -> list[Allocation]:
    allocations = [a for t in LICENSE_TYPES for a in client.allocations(t)]
    return [a for a in allocations if needs_user_record(a, rules, now)]


def dry_run(config: Config, limit: int) -> dict[str, Any]:
    client, now = qrs_client(config), datetime.now(UTC)
    rules = Rules.from_config(config.Butler.licenseManagement)
    candidates = _candidates(client, rules, now)
    started = time.perf_counter()
    decisions = [decide(a, _user(client, a), rules, now) for a in candidates[:limit]]
    per_lookup = (time.perf_counter() - started) / max(1, len(decisions))
    return {"candidates": len(candidates), "lookups": len(decisions),
            "extrapolatedSeconds": round(per_lookup * len(candidates), 1),
            "wouldRelease": sum(1 for d in decisions if d.action == "release")}


def release(config: Config, limit: int) -> dict[str, Any]:
    client, now = qrs_client(config), datetime.now(UTC)
    rules = Rules.from_config(config.Butler.licenseManagement)
    released: list[Decision] = []
    started = time.perf_counter()
    for allocation in _candidates(client, rules, now):
        if len(released) >= limit:
            break
        decision = decide(allocation, _user(client, allocation), rules, now)
        if decision.action == "release":
            client.delete_allocation(allocation.licenseType, allocation.id)
            released.append(decision)
    return {"releaseSeconds": round(time.perf_counter() - started, 2), "released": len(released)}
