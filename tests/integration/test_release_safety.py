"""The fail-safe release path against the QRS simulator over mutual TLS: protection added during a run, owners
nobody can name, lost DELETE answers, a crash mid-run, one lock per site, exit codes, and faults of every kind."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from butler import wiring
from butler.api import Backend, create_app
from butler.qrs import QrsError
from butler.sinks.audit import JsonLinesAuditSink
from tests.support.evaluate_scenario import POLICY, SCENARIO, when

ROOT = Path(__file__).parents[2]
LOCAL_ENV = ("AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN", "BUTLER_CONFIG", "AWS_ENDPOINT_URL")


@pytest.fixture(autouse=True)
def local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOCAL_ENV:
        monkeypatch.delenv(name, raising=False)


def state(sim: Any) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{sim.url}/__sim/state", cert=sim.client_cert, verify=sim.ca_file,
                                          timeout=30).json()
    return answer


def allocation_ids(sim: Any) -> set[str]:
    return {a["id"] for a in state(sim)["allocations"]}


def released_by_audit(audit_file: Path) -> Counter[str]:
    """How many times each allocation is recorded as released (the latest record under each key)."""
    return Counter(r["allocationId"] for r in JsonLinesAuditSink(audit_file).records()
                   if r["kind"] == "release-outcome" and r["action"] == "release")


def evaluate_cli(config_file: Path, audit_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_ENV}
    return subprocess.run([sys.executable, "-m", "butler", "evaluate", "--config", str(config_file), "--json",
                           "--audit-file", str(audit_file), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


# --- protection added during a run ------------------------------------------------------------------------------


def test_protection_added_during_a_run_is_honoured(sim_factory: Callable[..., Any],
                                                   write_config: Callable[..., Path], tmp_path: Path) -> None:
    scenario = copy.deepcopy(SCENARIO)
    scenario["triggers"] = [{"afterRequests": {"method": "DELETE", "count": 1}, "patchUsers": [
        {"userDirectory": "CORP", "userId": "p.idle", "tags": ["VIP-User"]},
        {"userDirectory": "CORP", "userId": "a.idle", "customProperties": {"Department": ["IT"]}},
    ]}]
    sim = sim_factory(scenario=scenario)
    done = evaluate_cli(write_config(sim, POLICY), tmp_path / "a.jsonl")
    assert done.returncode == 0, done.stderr
    actions = {d["userId"]: (d["action"], d["reason"]) for d in json.loads(done.stdout)["decisions"]}
    assert actions["p.never"][0] == "release"  # the longest idle went first, alone
    assert actions["p.idle"][0] == "protected" and actions["p.idle"][1].casefold() == "exclusions.tags: vip-user"
    assert actions["a.idle"] == ("protected", "exclusions.customProperties: Department=IT")
    owners = {a["user"]["userId"] for a in state(sim)["allocations"] if a["user"]}
    assert {"p.idle", "a.idle"} <= owners and "p.never" not in owners


def test_api_release_honours_protection_added_after_the_lookup(sim_factory: Callable[..., Any],
                                                               write_config: Callable[..., Path],
                                                               tmp_path: Path) -> None:
    scenario = copy.deepcopy(SCENARIO)
    # the API's lookup is three GETs (the user, then each type's allocations); the tag lands right after them
    scenario["triggers"] = [{"afterRequests": {"method": "GET", "count": 3}, "patchUsers": [
        {"userDirectory": "CORP", "userId": "p.idle", "tags": ["VIP-User"]}]}]
    sim = sim_factory(scenario=scenario)
    config = wiring.load_config(write_config(sim, POLICY))
    app = create_app(Backend(lambda: config, audit_file=str(tmp_path / "a.jsonl"), actor="tester"))
    path = "/v4/licenses/user/" + quote("CORP\\p.idle", safe="")
    event = {"resource": "/{proxy+}", "path": path,
             "httpMethod": "DELETE", "headers": {}, "multiValueHeaders": {}, "queryStringParameters": None,
             "multiValueQueryStringParameters": None, "pathParameters": None, "requestContext": {"requestId": "r1"},
             "body": None, "isBase64Encoded": False}
    answer = app.resolve(event, None)  # type: ignore[arg-type]
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 409, body
    assert "exclusions.tags: vip-user" in body["message"].casefold()
    assert "p.idle" in {a["user"]["userId"] for a in state(sim)["allocations"] if a["user"]}
    assert not any(key.startswith("DELETE") for key in sim.stats())


# --- owners nobody can name --------------------------------------------------------------------------------------


def test_an_allocation_without_an_owner_is_never_released(sim_factory: Callable[..., Any],
                                                          write_config: Callable[..., Path], tmp_path: Path) -> None:
    scenario = copy.deepcopy(SCENARIO)
    scenario["orphanAllocations"] = [
        {"type": "professional", "createdDate": when(300), "lastUsed": when(200)},
        {"type": "analyzer", "createdDate": when(300), "lastUsed": when(200),
         "deletedUserDirectory": "CORP", "deletedUserId": "gone.user"},
    ]
    sim = sim_factory(scenario=scenario)
    done = evaluate_cli(write_config(sim, POLICY), tmp_path / "a.jsonl")
    assert done.returncode == 0, done.stderr
    decisions = json.loads(done.stdout)["decisions"]
    nameless = [d for d in decisions if not d["userId"]]
    assert [(d["action"], d["reason"]) for d in nameless] == [
        ("skip", "owner unknown: the allocation names no user and no deleted user")]
    deleted_user = next(d for d in decisions if d["userId"] == "gone.user")
    assert deleted_user["action"] == "release"  # a deleted user's allocation is named, and releasable
    assert nameless[0]["allocationId"] in allocation_ids(sim)


# --- lost answers, failures, exit codes --------------------------------------------------------------------------


def test_lost_delete_answers_are_audited_as_releases(sim_factory: Callable[..., Any],
                                                     write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO, fault_rate=1.0, fault_kinds="lost-response", fault_methods="DELETE")
    audit_file = tmp_path / "a.jsonl"
    done = evaluate_cli(write_config(sim, POLICY), audit_file)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    released = {d["allocationId"] for d in report["decisions"] if d["action"] == "release"}
    assert len(released) == 3 and report["summary"]["failed"] == 0
    assert all("confirmed by re-read (gone)" in d["reason"] for d in report["decisions"] if d["action"] == "release")
    assert sum(n for key, n in sim.stats().items() if key.startswith("DELETE")) == 3  # never sent twice
    assert released_by_audit(audit_file) == Counter(released)
    assert JsonLinesAuditSink(audit_file).open_intents() == []


def test_a_failed_release_exits_1_after_printing_the_report(sim_factory: Callable[..., Any],
                                                            write_config: Callable[..., Path],
                                                            tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO, fault_rate=1.0, fault_kinds="error", fault_methods="DELETE")
    done = evaluate_cli(write_config(sim, POLICY), tmp_path / "a.jsonl")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["summary"]["failed"] == 3 and report["summary"]["released"] == 0
    assert "error: 3 release(s) failed" in done.stderr and "Traceback" not in done.stderr
    assert sum(n for key, n in sim.stats().items() if key.startswith("DELETE")) == 6  # one more each, no more


# --- a crash mid-run ---------------------------------------------------------------------------------------------


def test_a_crash_mid_run_is_completed_by_the_next_run(sim_factory: Callable[..., Any],
                                                      write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(users=300, seed=11)
    policy = {"licenseManagement": {**POLICY["licenseManagement"], "maxReleasePercent": 100,
                                    "abortAbovePercent": 100, "concurrency": 1}}
    config_file, audit_file = write_config(sim, policy), tmp_path / "a.jsonl"
    before = allocation_ids(sim)
    sim.latency_ms = 150
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "butler", "evaluate", "--config", str(config_file),
                             "--audit-file", str(audit_file)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while sum(n for k, n in sim.stats().items() if k.startswith("DELETE")) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    sim.latency_ms = 0
    trail = JsonLinesAuditSink(audit_file)
    assert trail.open_runs() and trail.open_intents()  # what the crash left behind
    done = evaluate_cli(config_file, audit_file)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reconciled"]["runs"] == 1
    assert trail.open_runs() == [] and trail.open_intents() == []
    gone = before - allocation_ids(sim)
    counts = released_by_audit(audit_file)
    assert set(counts) == gone and set(counts.values()) == {1}  # every removal audited, exactly once
    statuses = Counter(r["status"] for r in trail.records() if r["kind"] == "run")
    assert statuses == Counter({"interrupted": 1, "finished": 1})


# --- one lock per site -------------------------------------------------------------------------------------------


def test_one_lock_per_site_however_the_host_is_spelt(sim_factory: Callable[..., Any],
                                                     write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(scenario=SCENARIO)
    by_address = write_config(sim, POLICY, name="a.yaml")
    by_name = write_config(sim, {**POLICY, "qrs": {"host": "localhost"}}, name="b.yaml")
    with wiring.run_lock(wiring.load_config(by_address)):
        done = evaluate_cli(by_name, tmp_path / "a.jsonl")
    assert done.returncode == 4 and "holds the run lock" in done.stderr and "since" in done.stderr
    assert sim.stats() == {}


# --- faults of every kind ----------------------------------------------------------------------------------------


def test_faults_of_every_kind_converge_without_a_wrong_or_unaudited_release(
        sim_factory: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(users=300, seed=11, fault_seed=7, fault_kinds="error,reset,lost-response,slow", slow_ms=1500)
    policy = {"qrs": {"readTimeout": 1},
              "licenseManagement": {**POLICY["licenseManagement"], "maxReleasesPerRun": 10000,
                                    "maxReleasePercent": 100, "abortAbovePercent": 100}}
    settings = wiring.load_config(write_config(sim, policy))
    audit_file = tmp_path / "audit.jsonl"
    now = datetime.now(UTC)
    expected = {d.allocation.id for d in wiring.run_evaluate(settings, dry_run=True, audit_file=str(audit_file),
                                                             now=now).decisions if d.action == "would-release"}
    initial = allocation_ids(sim)
    assert len(expected) > 50
    outcomes: list[Any] = []
    for _ in range(5):
        sim.fault_rate = 0.3
        try:
            outcomes.append(wiring.run_evaluate(settings, audit_file=str(audit_file), now=now).summary())
        except QrsError as exc:  # the inventory itself failed after its retries: nothing was released
            outcomes.append(type(exc).__name__)
        sim.fault_rate = 0.0
        assert initial - allocation_ids(sim) <= expected  # never anything but the candidates
    assert initial - allocation_ids(sim) == expected, outcomes  # five runs converge
    assert any(isinstance(o, str) or o["failed"] for o in outcomes), outcomes  # the faults did bite
    final = wiring.run_evaluate(settings, audit_file=str(audit_file), now=now)  # closes what a fault left open
    assert final.summary()["released"] == final.summary()["failed"] == 0
    counts = released_by_audit(audit_file)
    assert set(counts) == expected and set(counts.values()) == {1}, outcomes
    assert JsonLinesAuditSink(audit_file).open_intents() == []
