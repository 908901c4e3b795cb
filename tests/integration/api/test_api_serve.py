"""``python -m butler serve`` end to end: a subprocess on 127.0.0.1 against the QRS simulator over mutual TLS.

Each step checks the answer, the simulator's state afterwards, and the audit trail (JSON Lines, actor ``local``).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.integration.api.conftest import SimView

pytestmark = pytest.mark.timeout(90)


class Served:
    def __init__(self, url: str, audit_file: Path) -> None:
        self.url, self.audit_file = url, audit_file

    def call(self, method: str, user: str | None = None, **params: str) -> tuple[int, dict[str, Any]]:
        path = "/v4/licenses/status" if user is None else "/v4/licenses/user/" + quote(user, safe="")
        answer = requests.request(method, self.url + path, params=params, timeout=30)
        assert answer.headers["Content-Type"].startswith("application/json")
        return answer.status_code, answer.json()

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_file.exists():
            return []
        return [json.loads(line) for line in self.audit_file.read_text().splitlines() if line.strip()]


def _ready_line(process: subprocess.Popen[str], timeout: float) -> str:
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
        audit_file = tmp_path / "audit.jsonl"
        process = subprocess.Popen(
            [sys.executable, "-m", "butler", "serve", "--port", "0", "--config", str(config),
             "--audit-file", str(audit_file)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        processes.append(process)
        return Served(_ready_line(process, 30), audit_file)

    yield start
    for process in processes:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is a clean stop


def test_serve_binds_to_loopback_only(serve: Callable[[Path], Served], api_config: Callable[..., Path]) -> None:
    served = serve(api_config())
    assert served.url.startswith("http://127.0.0.1:")


def test_status_numbers_match_the_simulator(serve: Callable[[Path], Served], api_config: Callable[..., Path],
                                            sim_view: SimView) -> None:
    served = serve(api_config())
    status, body = served.call("GET")
    assert status == 200
    for license_type in ("professional", "analyzer"):
        expected = sim_view.expected_status(license_type)
        assert {k: body[license_type][k] for k in expected} == expected
    assert body["professional"]["allocated"] == 3 and body["professional"]["quarantined"] == 1
    assert body["analyzerCapacity"] == {"allocatedMinutes": 6000, "usedMinutes": 120, "unavailableMinutes": 60,
                                        "availableMinutes": 5820, "utilization": 2.0}


def test_lookup_ambiguity_and_unknown(serve: Callable[[Path], Served], api_config: Callable[..., Path]) -> None:
    served = serve(api_config())
    status, body = served.call("GET", "domain\\JDOE")  # QRS matches case-insensitively
    assert status == 200 and (body["userDirectory"], body["userId"], body["protected"]) == ("DOMAIN", "jdoe", False)
    [allocation] = body["allocations"]
    assert allocation["licenseType"] == "professional" and 59.9 < allocation["daysInactive"] < 60.1
    assert allocation["evaluation"]["action"] == "release" and allocation["quarantined"] is False

    status, body = served.call("GET", "o'brien")
    assert status == 200 and body["allocations"][0]["evaluation"]["action"] == "keep"
    assert body["allocations"][0]["releasableAt"] is not None

    status, body = served.call("GET", "sam")
    assert status == 409 and body["userDirectories"] == ["DOMAIN", "OTHER"]
    status, body = served.call("GET", "sam", userDirectory="OTHER")
    assert status == 200 and body["userDirectory"] == "OTHER"

    assert served.call("GET", "DOMAIN\\nobody")[0] == 404
    status, body = served.call("GET", "DOMAIN\\nolicense")
    assert status == 404 and "no access allocated" in body["message"]
    status, body = served.call("GET", "quar")
    assert status == 200 and body["allocations"][0]["quarantined"] is True
    assert body["allocations"][0]["quarantineEnd"] is not None and body["allocations"][0]["releasableAt"] is None


def test_protected_then_forced_release(serve: Callable[[Path], Served], api_config: Callable[..., Path],
                                       sim_view: SimView) -> None:
    served = serve(api_config())
    status, body = served.call("GET", "DOMAIN\\vip")
    assert status == 200 and body["protected"] is True and body["protections"] == ["exclusions.tags: VIP-User"]

    status, body = served.call("DELETE", "DOMAIN\\vip")
    assert status == 409 and body["protections"] == ["exclusions.tags: VIP-User"]
    assert len(sim_view.allocations_of("DOMAIN", "vip")) == 1 and served.audit() == []

    status, body = served.call("DELETE", "DOMAIN\\vip", force="true")
    assert status == 200 and body["released"] == 1 and body["caller"] == "local" and body["dryRun"] is False
    assert "force overrides exclusions.tags: VIP-User" in body["allocations"][0]["reason"]
    assert sim_view.allocations_of("DOMAIN", "vip") == []  # idle 90 days: Qlik removes it for good
    records = served.audit()
    assert [(r["kind"], r["actor"], r["userId"], r["action"]) for r in records] == [
        ("release-intent", "local", "vip", "release"), ("release-outcome", "local", "vip", "release")]
    assert records[0]["runId"] == records[1]["runId"] == body["runId"]


def test_plain_release_and_qliks_quarantine(serve: Callable[[Path], Served], api_config: Callable[..., Path],
                                            sim_view: SimView) -> None:
    served = serve(api_config())
    status, body = served.call("DELETE", "DOMAIN\\jdoe")
    assert status == 200 and body["released"] == 1 and [a["action"] for a in body["allocations"]] == ["release"]
    assert sim_view.allocations_of("DOMAIN", "jdoe") == []
    assert served.call("GET", "DOMAIN\\jdoe")[0] == 404  # no license any more

    status, body = served.call("DELETE", "ann", licenseType="analyzer")
    assert status == 200 and body["released"] == 1
    [kept] = sim_view.allocations_of("DOMAIN", "ann")  # used 2 days ago: Qlik quarantines instead of removing
    assert kept["quarantined"] is True

    status, body = served.call("DELETE", "quar")  # already quarantined by Qlik: nothing to do
    assert status == 200 and body["released"] == 0 and body["allocations"][0]["action"] == "skip"
    outcomes = [(r["userId"], r["action"]) for r in served.audit() if r["kind"] == "release-outcome"]
    assert outcomes == [("jdoe", "release"), ("ann", "release")]
    status, body = served.call("GET")
    assert body["professional"]["allocated"] == 2 and body["analyzer"]["quarantined"] == 1


def test_dry_run_configuration_releases_nothing(serve: Callable[[Path], Served], api_config: Callable[..., Path],
                                                sim_view: SimView) -> None:
    served = serve(api_config(dryRun=True))
    status, body = served.call("DELETE", "DOMAIN\\jdoe")
    assert status == 200 and body["dryRun"] is True and body["released"] == 0
    assert body["allocations"][0]["action"] == "would-release"
    assert len(sim_view.allocations_of("DOMAIN", "jdoe")) == 1 and served.audit() == []


def test_bad_input_and_an_unreachable_qrs(serve: Callable[[Path], Served], api_sim: Any,
                                          api_config: Callable[..., Path]) -> None:
    served = serve(api_config())
    assert served.call("DELETE", "DOMAIN\\jdoe", licenseType="tokens")[0] == 422
    assert served.call("DELETE", "DOMAIN\\jdoe", licenceType="analyzer")[0] == 400
    connection = http.client.HTTPConnection(served.url.removeprefix("http://"), timeout=10)
    connection.request("GET", "/v4/licenses/user/DOMAIN\\jdoe")  # a raw backslash, as curl sends it
    assert connection.getresponse().status == 200
    connection.close()
    api_sim.stop()
    status, body = served.call("GET")
    assert status in (502, 503) and "QRS" in body["message"]
