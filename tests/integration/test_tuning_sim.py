"""The tuning loop from outside, against the QRS simulator over mutual TLS: ``what-if`` (equal to a dry run with
those thresholds), ``evaluate --only/--sort/--csv``, ``returns`` end to end (a live release, the simulator
allocates again through its POST, ``returns`` counts it) and ``report`` rendered in Chromium. The routes:
tests/integration/api/test_tuning_routes.py."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.chromium import dump_dom, render_page, require_chromium
from tests.support.evaluate_scenario import POLICY, SCENARIO

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).parents[2]
UNTHROTTLED = {"maxReleasesPerRun": 100000, "maxReleasePercent": 100, "abortAbovePercent": 100}
COSTS = {"licenseMonitoring": {"costs": {"professional": 40, "analyzer": 15}}}
QRS_READS = {"GET /qrs/license/professionalaccesstype/full": 1, "GET /qrs/license/analyzeraccesstype/full": 1,
             "POST /qrs/user/table": 1}


def butler(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUDIT_TABLE", "NOTIFY_TOPIC_ARN", "LOCK_TABLE")}
    return subprocess.run([sys.executable, "-m", "butler", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def json_of(*args: str) -> Any:
    done = butler(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def policy(**management: Any) -> dict[str, Any]:
    return {**COSTS, "licenseManagement": {**POLICY["licenseManagement"], **UNTHROTTLED, **management}}


def counts(report: dict[str, Any], license_type: str, action: str) -> int:
    return sum(1 for d in report["decisions"] if d["licenseType"] == license_type and d["action"] == action)


def test_what_if_equals_a_dry_run_with_those_thresholds(sim_factory: Callable[..., Any],
                                                        write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(users=400, seed=7)
    base = write_config(sim, policy(exclusions={"tags": ["VIP-User"], "userStatus": {"protectActiveUsers": False}}))
    for professional, analyzer in ((20, 60), (45, 45), (90, 14)):
        sim.reset_stats()
        what_if = json_of("what-if", "--professional", str(professional), "--analyzer", str(analyzer), "--json",
                          "--config", str(base))
        assert sim.stats() == QRS_READS  # the same 3 requests whatever the thresholds
        tried = write_config(sim, policy(exclusions={"tags": ["VIP-User"]}, release={
            "professional": {"inactivityDays": professional}, "analyzer": {"inactivityDays": analyzer}}),
            name=f"tried-{professional}.yaml")
        dry = json_of("evaluate", "--dry-run", "--json", "--config", str(tried), "--audit-file",
                      str(tmp_path / "dry.jsonl"))
        for license_type in ("professional", "analyzer"):
            mine = what_if[license_type]
            assert mine["wouldRelease"] == counts(dry, license_type, "would-release") > 0
            assert mine["protected"] == counts(dry, license_type, "protected")
            assert mine["keep"] == counts(dry, license_type, "keep")
            assert sum(mine["protectedByRule"].values()) == mine["protected"]
            assert mine["monthlySaving"] == mine["wouldRelease"] * (40 if license_type == "professional" else 15)
            assert mine["shareFreedPercent"] == round(100 * mine["wouldRelease"] / mine["allocations"], 2)
        assert dry["protectedByRule"] == {
            rule: what_if["professional"]["protectedByRule"].get(rule, 0)
            + what_if["analyzer"]["protectedByRule"].get(rule, 0) for rule in dry["protectedByRule"]}

    sim.reset_stats()
    sweep = json_of("what-if", "--sweep", "--json", "--config", str(base))["sweep"]
    assert sim.stats() == QRS_READS
    assert [row["days"] for row in sweep] == [14, 30, 45, 60, 90, 120, 180]
    released = [row["professional"]["wouldRelease"] for row in sweep]
    assert released == sorted(released, reverse=True) and released[0] > released[-1]
    table = butler("what-if", "--sweep", "--config", str(base))
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["DAYS", "TYPE", "WOULD"]
    assert butler("what-if", "--professional", "0", "--config", str(base)).returncode == 2


def test_evaluate_only_sort_and_csv(sim_factory: Callable[..., Any], write_config: Callable[..., Path],
                                    tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO)
    config = write_config(sim, policy())
    audit = str(tmp_path / "audit.jsonl")
    done = butler("evaluate", "--dry-run", "--only", "would-release", "--csv", "--config", str(config),
                  "--audit-file", audit)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["userId"] for r in rows] == ["a.idle", "p.never", "p.idle"]  # longest idle first
    assert {r["action"] for r in rows} == {"would-release"} and rows[2]["userName"] == "P.Idle"
    never = rows[1]
    assert never["lastUsed"] == "" and never["reason"].startswith("never used; allocated 100.0 days ago")

    table = butler("evaluate", "--dry-run", "--only", "protected", "--sort", "user", "--config", str(config),
                   "--audit-file", audit)
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["USER", "NAME"]
    assert [line.split()[0] for line in lines[1:5]] == ["ADMIN_DOMAIN\\p.admin", "CORP\\p.it", "CORP\\p.vip",
                                                        "domain\\admin.user"]
    assert ("Protected by rule: exclusions.customProperties 1, exclusions.tags 1, exclusions.userDirectories 1, "
            "exclusions.users 1") in lines

    report = json_of("evaluate", "--dry-run", "--json", "--config", str(config), "--audit-file", audit)
    assert report["protectedByRule"]["exclusions.tags"] == 1 and "returns" in report and "recommendation" in report
    assert butler("evaluate", "--only", "nothing", "--config", str(config)).returncode == 2
    assert butler("evaluate", "--dry-run", "--csv", "--json", "--config", str(config)).returncode == 2


def allocate(sim: Any, license_type: str, user_guid: str) -> None:
    """The simulator's POST allocation, as QRS's own API (what the QMC does when a user comes back)."""
    key = "0123456789abcdef"
    answer = requests.post(f"{sim.url}/qrs/license/{license_type}accesstype?xrfkey={key}",
                           json={"user": {"id": user_guid}}, cert=sim.client_cert, verify=sim.ca_file, timeout=10,
                           headers={"X-Qlik-Xrfkey": key, "X-Qlik-User": "UserDirectory=INTERNAL; UserId=sa_api"})
    assert answer.status_code == 201, answer.text


def test_returns_end_to_end(sim_factory: Callable[..., Any], write_config: Callable[..., Path],
                            tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO)
    config = write_config(sim, policy(dryRun=False))
    audit = str(tmp_path / "audit.jsonl")
    live = json_of("evaluate", "--json", "--config", str(config), "--audit-file", audit)
    assert {d["userId"] for d in live["decisions"] if d["action"] == "release"} == {"p.idle", "p.never", "a.idle"}
    assert live["returns"]["total"] == {"released": 0, "returned": 0, "returnRate": None}

    before = json_of("returns", "--json", "--config", str(config), "--audit-file", audit)
    assert (before["professional"]["released"], before["professional"]["returned"]) == (2, 0)

    state = requests.get(f"{sim.url}/__sim/state", cert=sim.client_cert, verify=sim.ca_file, timeout=10).json()
    users = {u["userId"]: u["id"] for u in state["users"]}
    allocate(sim, "professional", users["p.idle"])  # p.idle comes back

    sim.reset_stats()
    after = json_of("returns", "--json", "--days", "7", "--config", str(config), "--audit-file", audit)
    assert sim.stats() == {"GET /qrs/license/professionalaccesstype/full": 1,
                           "GET /qrs/license/analyzeraccesstype/full": 1}
    professional = after["professional"]
    assert (professional["released"], professional["returned"], professional["returnRate"]) == (2, 1, 50.0)
    [back] = professional["users"]
    assert (back["userDirectory"], back["userId"]) == ("CORP", "p.idle") and back["daysToReturn"] < 0.1
    assert back["daysInactiveAtRelease"] == pytest.approx(60, abs=0.1)
    assert professional["medianDaysToReturn"] is not None
    assert (after["analyzer"]["released"], after["analyzer"]["returned"]) == (1, 0)
    assert after["total"]["returnRate"] == pytest.approx(33.33)
    text = butler("returns", "--config", str(config), "--audit-file", audit).stdout
    assert "professional: released 2, returned 1 (50%)" in text and "CORP\\p.idle" in text

    # the next evaluation carries last month's return rate and the recommendation: p.idle was idle 60 days
    following = json_of("evaluate", "--dry-run", "--json", "--config", str(config), "--audit-file", audit)
    assert following["returns"]["professional"]["returnRate"] == 50.0
    assert following["recommendation"]["professional"]["inactivityDays"] == 61
    assert following["recommendation"]["analyzer"]["inactivityDays"] is None


@pytest.fixture
def chromium() -> None:
    require_chromium()  # a clear failure, not a skip: `make test` installs it


@pytest.mark.usefixtures("chromium")
def test_report_command_renders_in_chromium(sim_factory: Callable[..., Any], write_config: Callable[..., Path],
                                            tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO)
    config = write_config(sim, policy(dryRun=False))
    audit = str(tmp_path / "audit.jsonl")
    assert butler("evaluate", "--config", str(config), "--audit-file", audit).returncode == 0  # history: releases
    page = tmp_path / "report.html"
    sim.reset_stats()
    done = butler("report", "--out", str(page), "--config", str(config), "--audit-file", audit)
    assert done.returncode == 0, done.stderr
    assert sum(sim.stats().values()) == 4  # the overview, two /full reads, one user page

    screenshot = tmp_path / "report.png"
    assert render_page(page, screenshot, width=1280, height=3600) == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = dump_dom(page)
    assert "<script" not in dom.lower()
    for text in ("Utilization", "Releases and returns per month", "Savings", "Candidates of the next run",
                 "Protection rules at work", "What-if: inactivity thresholds", "exclusions.tags: vip-user",
                 "CORP\\p.vip (P.Vip)"):
        assert text in dom, text
