"""``release.analyzer.releaseRedundant`` against the QRS simulator over mutual TLS, driven through
``python -m butler evaluate``: users holding both types, in a dry run and live, and a professional allocation
removed by an administrator while the run is under way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from butler.sinks.audit import JsonLinesAuditSink
from tests.support.evaluate_scenario import when

ROOT = Path(__file__).parents[2]
LOCAL_ENV = ("AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN", "BUTLER_CONFIG", "AWS_ENDPOINT_URL")
REDUNDANT = "release.analyzer.releaseRedundant: holds professional"
POLICY: dict[str, Any] = {"licenseManagement": {
    "enable": True, "release": {"analyzer": {"releaseRedundant": True}},
    "exclusions": {"tags": ["VIP-User"]}}}


def both(user_id: str, professional_idle: float, analyzer_idle: float, *, analyzer_created: float = 300,
         **fields: Any) -> dict[str, Any]:
    return {"userDirectory": "CORP", "userId": user_id, **fields, "license": [
        {"type": "professional", "createdDate": when(300), "lastUsed": when(professional_idle)},
        {"type": "analyzer", "createdDate": when(analyzer_created), "lastUsed": when(analyzer_idle)}]}


def one(user_id: str, kind: str, idle: float) -> dict[str, Any]:
    return {"userDirectory": "CORP", "userId": user_id,
            "license": {"type": kind, "createdDate": when(300), "lastUsed": when(idle)}}


# The executor takes the longest idle first: both.first's analyzer (10 days) is the first DELETE, then the
# trigger releases both.second's professional allocation (20 days idle: removed, not quarantined).
SCENARIO: dict[str, Any] = {
    "licenses": {"professional": {"total": 20}, "analyzer": {"total": 20}},
    "users": [
        both("both.first", 2, 10),
        both("both.second", 20, 8),
        both("both.vip", 1, 12, tags=["vip-user"]),
        both("both.new", 1, 1, analyzer_created=3),  # quarantine.gracePeriod (7 days by default)
        *(one(f"a.only{i}", "analyzer", 5) for i in range(4)),
        *(one(f"p.only{i}", "professional", 3) for i in range(4)),
    ],
}
TRIGGER = [{"afterRequests": {"method": "DELETE", "count": 1},
            "patchUsers": [{"userDirectory": "CORP", "userId": "both.second", "release": ["professional"]}]}]


@pytest.fixture(autouse=True)
def local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOCAL_ENV:
        monkeypatch.delenv(name, raising=False)


def evaluate(config_file: Path, audit_file: Path, *args: str) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_ENV}
    done = subprocess.run([sys.executable, "-m", "butler", "evaluate", "--config", str(config_file), "--json",
                           "--audit-file", str(audit_file), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return report, {(d["userId"], d["licenseType"]): (d["action"], d["reason"]) for d in report["decisions"]}


def held(sim: Any) -> set[tuple[str, str]]:
    state = requests.get(f"{sim.url}/__sim/state", cert=sim.client_cert, verify=sim.ca_file, timeout=30).json()
    return {(a["user"]["userId"], a["type"]) for a in state["allocations"] if a["user"] and not a["quarantined"]}


def deletes(sim: Any) -> Counter[str]:
    return Counter({key: count for key, count in sim.stats().items() if key.startswith("DELETE")})


def test_dry_run_shows_the_redundant_analyzer_allocations(sim_factory: Callable[..., Any],
                                                          write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO)
    before = held(sim)
    report, actions = evaluate(write_config(sim, POLICY), tmp_path / "a.jsonl", "--dry-run")
    assert actions[("both.first", "analyzer")] == actions[("both.second", "analyzer")] == ("would-release", REDUNDANT)
    assert actions[("both.vip", "analyzer")] == ("protected", "exclusions.tags: vip-user")
    assert actions[("both.new", "analyzer")][1].startswith("quarantine.gracePeriod")
    assert {a for (user, kind), (a, _) in actions.items() if kind == "professional"} == {"keep"}
    assert actions[("a.only0", "analyzer")][0] == "keep"
    assert report["summary"]["wouldRelease"] == 2
    assert not deletes(sim) and held(sim) == before


def test_without_the_rule_nothing_is_released(sim_factory: Callable[..., Any], write_config: Callable[..., Path],
                                              tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO)
    report, _ = evaluate(write_config(sim, {"licenseManagement": {"enable": True}}), tmp_path / "a.jsonl")
    assert report["summary"]["released"] == 0 and not deletes(sim)


def test_live_releases_only_the_analyzer_allocation_and_rechecks_the_professional_one(
        sim_factory: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(scenario={**SCENARIO, "triggers": TRIGGER})
    audit_file = tmp_path / "a.jsonl"
    report, actions = evaluate(write_config(sim, POLICY), audit_file)
    assert actions[("both.first", "analyzer")] == ("release", REDUNDANT)
    # both.second lost its professional allocation after the first DELETE: the re-read before its own DELETE
    # sees it, and the inactivity rule alone keeps its analyzer allocation (8 days idle)
    assert actions[("both.second", "analyzer")][0] == "keep"
    assert actions[("both.second", "analyzer")][1].startswith("last activity 8.0 days ago")
    now_held = held(sim)
    assert ("both.first", "professional") in now_held and ("both.first", "analyzer") not in now_held
    assert ("both.second", "analyzer") in now_held and ("both.second", "professional") not in now_held
    assert deletes(sim) == {"DELETE /qrs/license/analyzeraccesstype/{id}": 1}
    assert sim.stats()["GET /qrs/license/professionalaccesstype/full"] == 1 + 2  # inventory, one per recheck
    assert report["summary"]["released"] == 1 and report["summary"]["failed"] == 0
    outcomes = [r for r in JsonLinesAuditSink(str(audit_file)).records_for_run(report["runId"])
                if r["kind"] == "release-outcome"]
    assert {(r["userId"], r["licenseType"], r["action"], r["reason"]) for r in outcomes} >= {
        ("both.first", "analyzer", "release", REDUNDANT)}
