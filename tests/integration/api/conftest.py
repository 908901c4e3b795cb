"""Fixtures of the /v4 API tests: one scenario (dates relative to now) on a simulator over mutual TLS, its
config file, views of the simulator's state, and ``butler serve`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from butler.licenses.model import iso
from butler.sinks.audit import JsonLinesAuditSink

LICENSES = {"professional": {"total": 10}, "analyzer": {"total": 20},
            "analyzerTime": {"allocatedMinutes": 6000, "usedMinutes": 120, "unavailableMinutes": 60}}
MANAGEMENT = {"enable": True, "exclusions": {"tags": ["VIP-User"]}, "quarantine": {"gracePeriod": 7},
              "release": {"professional": {"inactivityDays": 30}, "analyzer": {"inactivityDays": 45}}}


def _when(days_ago: float) -> str:
    return str(iso(datetime.now(UTC) - timedelta(days=days_ago)))


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


class Served:
    """A running ``butler serve``: its URL, its audit file and its standard error (the JSON request log)."""

    def __init__(self, url: str, audit_file: Path, stderr: Path) -> None:
        self.url, self.audit_file, self.stderr = url, audit_file, stderr

    def call(self, method: str, user: str | None = None, **params: str) -> tuple[int, dict[str, Any]]:
        path = "/v4/licenses/status" if user is None else "/v4/licenses/user/" + quote(user, safe="")
        answer = requests.request(method, self.url + path, params=params, timeout=30)
        assert answer.headers["Content-Type"].startswith("application/json")
        return answer.status_code, answer.json()

    def audit(self) -> list[dict[str, Any]]:
        """The audit records as the trail holds them (a record written again replaces the earlier one)."""
        return JsonLinesAuditSink(self.audit_file).records()


def ready_url(process: subprocess.Popen[str], timeout: float) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(timeout)
    assert line and line[0].startswith("READY "), f"butler serve did not start: {line}"
    # keep reading its JSON log lines, so that a full pipe never blocks the server
    threading.Thread(target=lambda: process.stdout and process.stdout.read(), daemon=True).start()
    return line[0].split()[1]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], Served]]:
    processes: list[subprocess.Popen[str]] = []
    env = {k: v for k, v in os.environ.items() if k not in ("AUDIT_TABLE", "NOTIFY_TOPIC_ARN", "LOCK_TABLE")}

    def start(config: Path) -> Served:
        audit_file, stderr = tmp_path / "audit.jsonl", tmp_path / f"serve-{len(processes)}.stderr"
        with stderr.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "butler", "serve", "--port", "0", "--config", str(config),
                 "--audit-file", str(audit_file)],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        processes.append(process)
        return Served(ready_url(process, 30), audit_file, stderr)

    yield start
    for process in processes:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is a clean stop
