"""Fixtures of the /v4 API tests: one scenario (dates relative to now) on a simulator over mutual TLS, its
config file, and views of the simulator's state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

LICENSES = {"professional": {"total": 10}, "analyzer": {"total": 20},
            "analyzerTime": {"allocatedMinutes": 6000, "usedMinutes": 120, "unavailableMinutes": 60}}
MANAGEMENT = {"enable": True, "exclusions": {"tags": ["VIP-User"]}, "quarantine": {"gracePeriod": 7},
              "release": {"professional": {"inactivityDays": 30}, "analyzer": {"inactivityDays": 45}}}


def _when(days_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _user(directory: str, user_id: str, license_type: str | None = None, idle: float = 0,
          **extra: Any) -> dict[str, Any]:
    user: dict[str, Any] = {"userDirectory": directory, "userId": user_id, "name": user_id.title()}
    tags = extra.pop("tags", None)
    if tags:
        user["tags"] = tags
    if license_type:
        user["license"] = {"type": license_type, "createdDate": _when(400), "lastUsed": _when(idle), **extra}
    return user


def scenario() -> dict[str, Any]:
    return {"licenses": LICENSES, "users": [
        _user("DOMAIN", "jdoe", "professional", 60),  # idle: released for good
        _user("DOMAIN", "vip", "professional", 90, tags=["VIP-User"]),  # protected by a tag
        _user("DOMAIN", "sam", "analyzer", 50),  # the same id in two directories
        _user("OTHER", "sam", "analyzer", 50),
        _user("DOMAIN", "ann", "analyzer", 2),  # used two days ago: Qlik quarantines it on DELETE
        _user("DOMAIN", "quar", "professional", 3, quarantined=True),  # already quarantined by Qlik
        _user("DOMAIN", "nolicense"),
        _user("DOMAIN", "o'brien", "professional", 10),  # a quote in the id: filter escaping
    ]}


class SimView:
    """The simulator's state as the tests read it (GET /__sim/state over mutual TLS)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def state(self) -> dict[str, Any]:
        answer = requests.get(f"{self.sim.url}/__sim/state", cert=self.sim.client_cert, verify=self.sim.ca_file,
                              timeout=10)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def allocations_of(self, directory: str, user_id: str) -> list[dict[str, Any]]:
        return [a for a in self.state()["allocations"] if a["user"]["userDirectory"] == directory
                and a["user"]["userId"] == user_id]

    def expected_status(self, license_type: str) -> dict[str, Any]:
        mine = [a for a in self.state()["allocations"] if a["type"] == license_type]
        quarantined = sum(1 for a in mine if a["quarantined"])
        allocated, total = len(mine) - quarantined, LICENSES[license_type]["total"]
        return {"total": total, "allocated": allocated, "quarantined": quarantined,
                "available": total - allocated - quarantined, "utilization": round(100 * allocated / total, 2)}


@pytest.fixture
def api_sim(sim_factory: Callable[..., Any]) -> Any:
    return sim_factory(scenario=scenario())


@pytest.fixture
def sim_view(api_sim: Any) -> SimView:
    return SimView(api_sim)


@pytest.fixture
def api_config(api_sim: Any, write_config: Callable[..., Path]) -> Callable[..., Path]:
    """Write the config for the scenario's simulator; keyword arguments go under licenseManagement."""

    def write(**management: Any) -> Path:
        return write_config(api_sim, {"licenseManagement": {**MANAGEMENT, **management}})

    return write
