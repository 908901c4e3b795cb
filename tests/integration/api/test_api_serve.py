"""``python -m butler serve`` end to end: a subprocess on 127.0.0.1 against the QRS simulator over mutual TLS.

Each step checks the answer, the simulator's state afterwards, and the audit trail (JSON Lines, actor ``local``).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.conftest import Served, SimView

pytestmark = pytest.mark.timeout(90)


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
    assert len(sim_view.allocations_of("DOMAIN", "vip")) == 1
    assert [(r["kind"], r["action"]) for r in served.audit()] == [("decision", "protected")]  # the refusal

    status, body = served.call("DELETE", "DOMAIN\\vip", force="true")
    assert status == 200 and body["released"] == 1 and body["caller"] == "local" and body["dryRun"] is False
    assert "force overrides exclusions.tags: VIP-User" in body["allocations"][0]["reason"]
    assert sim_view.allocations_of("DOMAIN", "vip") == []  # idle 90 days: Qlik removes it for good
    records = [r for r in served.audit() if r["kind"] != "decision"]
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
    assert len(sim_view.allocations_of("DOMAIN", "jdoe")) == 1
    assert [(r["kind"], r["action"]) for r in served.audit()] == [("decision", "would-release")]


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
