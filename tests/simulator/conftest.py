"""Fixtures of the simulator's own tests: a scenario with dates relative to now, simulators over mutual TLS,
and a small QRS client that sends the xrfkey and X-Qlik-User headers the way real clients do."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from butler.licenses.model import iso
from qrs_simulator import Simulator, ensure_certs

XRFKEY = "abcdefghijklmnop"
QLIK_USER = "UserDirectory=INTERNAL; UserId=sa_api"


def when(days_ago: float) -> str:
    return str(iso(datetime.now(UTC) - timedelta(days=days_ago)))


def scenario() -> dict[str, Any]:
    """Professional: 3 of 3 held (one quarantined); analyzer: 2 of 5; one analyzer-capacity user."""
    return {
        "licenses": {
            "professional": {"total": 3},
            "analyzer": {"total": 5},
            "analyzerTime": {"allocatedMinutes": 6000, "usedMinutes": 120, "unavailableMinutes": 0},
        },
        "users": [
            {
                "userDirectory": "DOMAIN",
                "userId": "jdoe",
                "name": "Jane Doe",
                "tags": ["VIP-User"],
                "customProperties": {"Department": ["IT"]},
                "license": {"type": "professional", "createdDate": when(200), "lastUsed": when(2)},
            },
            {
                "userDirectory": "DOMAIN",
                "userId": "pobrien",
                "name": "Pat O'Brien",
                "customProperties": {"Department": ["Sales", "Finance"]},
                "license": {"type": "analyzer", "createdDate": when(300), "lastUsed": when(30)},
            },
            {
                "userDirectory": "DOMAIN",
                "userId": "never",
                "license": {"type": "professional", "createdDate": when(20), "lastUsed": None},
            },
            {
                "userDirectory": "EXTERNAL",
                "userId": "ext1",
                "name": "Erik External",
                "inactive": True,
                "tags": ["Executive", "VIP-User"],
                "license": {"type": "analyzer", "lastUsed": when(100)},
            },
            {"userDirectory": "DOMAIN", "userId": "blocked", "blacklisted": True, "removedExternally": True},
            {
                "userDirectory": "DOMAIN",
                "userId": "quar",
                "license": {"type": "professional", "lastUsed": when(3), "quarantined": True},
            },
            {"userDirectory": "INTERNAL", "userId": "sa_api", "customProperties": {"LicenseProtection": ["Keep"]}},
            {"userDirectory": "DOMAIN", "userId": "capacity", "license": {"type": "analyzerTime", "lastUsed": when(1)}},
            {"userDirectory": "DOMAIN", "userId": "newbie", "name": "New Bie"},
        ],
    }


def extras_scenario() -> dict[str, Any]:
    """The newer scenario keys: e-mail attributes, a user holding both types, ownerless allocations, serverLicense."""
    return {
        "licenses": {"professional": {"total": 4}, "analyzer": {"total": 4}},
        "serverLicense": {"validTo": "2031-03-31", "isExpired": False, "isInvalid": False, "isBlacklisted": False},
        "users": [
            {
                "userDirectory": "CORP",
                "userId": "both",
                "name": "Bo Th",
                "email": "bo.th@corp.example",
                "license": [
                    {"type": "professional", "createdDate": when(100), "lastUsed": when(40)},
                    {"type": "analyzer", "createdDate": when(90), "lastUsed": when(1)},
                ],
            },
            {"userDirectory": "CORP", "userId": "mailonly", "email": "mail.only@corp.example"},
        ],
        "orphanAllocations": [
            {
                "type": "professional",
                "createdDate": when(200),
                "lastUsed": when(60),
                "deletedUserDirectory": "CORP",
                "deletedUserId": "gone",
            },
            {"type": "analyzer", "createdDate": when(30), "lastUsed": when(2)},
            {"type": "professional", "lastUsed": None, "deletedUserDirectory": None, "deletedUserId": None},
        ],
    }


class Qrs:
    """Minimal QRS client for tests: every request carries the xrfkey pair and the X-Qlik-User header."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.session.cert = sim.client_cert
        self.session.headers.update({"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER})

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        # verify per request: a session-level verify loses to REQUESTS_CA_BUNDLE from the environment
        kwargs.setdefault("verify", self.sim.ca_file)
        kwargs.setdefault("timeout", 30)
        url = f"{self.sim.url}/qrs/{path.lstrip('/')}"
        return self.session.request(method, url, params={"xrfkey": XRFKEY, **(params or {})}, **kwargs)

    def get(self, path: str, **params: Any) -> Any:
        response = self.request("GET", path, params)
        assert response.status_code == 200, response.text
        return response.json()

    def control(self, method: str, path: str) -> Any:
        response = self.session.request(method, f"{self.sim.url}/__sim/{path}", verify=self.sim.ca_file, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def user_id(self, directory: str, user_id: str) -> str:
        found = self.get("user", filter=f"userDirectory eq '{directory}' and userId eq '{user_id}'")
        assert len(found) == 1
        return str(found[0]["id"])

    def allocation_of(self, kind: str, user_id: str) -> dict[str, Any] | None:
        found = self.get(f"license/{kind}accesstype/full", filter=f"user.userId eq '{user_id}'")
        return found[0] if found else None


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim-certs")
    ensure_certs(path)
    return path


@pytest.fixture(scope="session")
def scenario_sim(certs_dir: Path) -> Iterator[Simulator]:
    """Shared and read-only: tests that change state use `fresh_sim`."""
    with Simulator(scenario(), certs_dir=certs_dir) as sim:
        yield sim


@pytest.fixture(scope="session")
def synthetic_sim(certs_dir: Path) -> Iterator[Simulator]:
    with Simulator(users=600, seed=5, certs_dir=certs_dir) as sim:
        yield sim


@pytest.fixture(scope="session")
def extras_sim(certs_dir: Path) -> Iterator[Simulator]:
    """Shared and read-only, like scenario_sim."""
    with Simulator(extras_scenario(), certs_dir=certs_dir) as sim:
        yield sim


@pytest.fixture
def fresh_sim(certs_dir: Path) -> Iterator[Simulator]:
    with Simulator(scenario(), certs_dir=certs_dir) as sim:
        yield sim


@pytest.fixture
def qrs(scenario_sim: Simulator) -> Iterator[Qrs]:
    client = Qrs(scenario_sim)
    yield client
    client.session.close()


@pytest.fixture
def fresh_qrs(fresh_sim: Simulator) -> Iterator[Qrs]:
    client = Qrs(fresh_sim)
    yield client
    client.session.close()
