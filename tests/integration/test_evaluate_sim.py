"""Evaluation against the QRS simulator over real mutual TLS: dry run, live run, rerun, request budget, safety
cap, faults, the command line and InfluxDB release events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from butler import cli, wiring
from butler.licenses.evaluate import EvaluationReport
from butler.qrs import QrsError
from butler.sinks.audit import JsonLinesAuditSink
from tests.integration.conftest import InfluxServer, influx_config
from tests.support.evaluate_scenario import EXPECTED_RELEASES, POLICY, PROTECTED, SCENARIO

ROOT = Path(__file__).parents[2]
def sim_get(sim: Any, path: str) -> Any:
    return requests.get(f"{sim.url}/__sim/{path}", cert=sim.client_cert, verify=sim.ca_file, timeout=30).json()


def owners(sim: Any) -> set[str]:
    return {a["user"]["userId"] for a in sim_get(sim, "state")["allocations"] if a["user"]}


def released(report: EvaluationReport) -> set[str]:
    return {d.user_id for d in report.decisions if d.action == "release"}


@pytest.fixture(autouse=True)
def local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN", "BUTLER_CONFIG", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def site(sim_factory: Callable[..., Any]) -> Any:
    return sim_factory(scenario=SCENARIO)


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_sends_no_delete(site: Any, write_config: Callable[..., Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = sim_get(site, "state")
    code, out, _ = run_cli("--config", str(write_config(site, POLICY)), "--dry-run", "--json", "--audit-file",
                           str(tmp_path / "audit.jsonl"), capsys=capsys)
    report = json.loads(out)
    assert code == 0 and report["dryRun"] is True and report["capExceeded"] is False
    actions = {d["userId"]: d["action"] for d in report["decisions"]}
    assert {u for u, a in actions.items() if a == "would-release"} == EXPECTED_RELEASES
    assert {u for u, a in actions.items() if a == "protected"} == PROTECTED
    assert actions["a.quarantined"] == "skip" and actions["a.recent"] == actions["a.new"] == "keep"
    assert report["summary"]["evaluated"] == 17 and report["summary"]["wouldRelease"] == 3
    assert not any(key.startswith("DELETE") for key in site.stats())
    assert sim_get(site, "state") == before


def test_live_run_releases_exactly_the_expected_set_and_a_rerun_nothing(
        site: Any, write_config: Callable[..., Path], tmp_path: Path) -> None:
    settings = wiring.load_config(write_config(site, POLICY))
    audit_file = str(tmp_path / "audit.jsonl")
    report = wiring.run_evaluate(settings, audit_file=audit_file, actor="tester")
    assert released(report) == EXPECTED_RELEASES and report.summary()["failed"] == 0
    remaining = owners(site)
    assert not remaining & EXPECTED_RELEASES and remaining >= PROTECTED
    stats = site.stats()
    assert stats["DELETE /qrs/license/professionalaccesstype/{id}"] == 2
    assert stats["DELETE /qrs/license/analyzeraccesstype/{id}"] == 1
    # re-reads of allocations and owners by id, batched per chunk (1, then 2): no request per allocation
    assert not any(key.startswith("GET") and key.endswith("{id}") for key in stats)
    assert stats["POST /qrs/user/table"] == 1 + 2 and sum(stats.values()) <= 3 + 5 + 3
    audit = JsonLinesAuditSink(audit_file).records_for_run(report.run_id)
    assert {r["userId"] for r in audit if r["kind"] == "release-outcome" and r["action"] == "release"} == \
        EXPECTED_RELEASES
    site.reset_stats()
    again = wiring.run_evaluate(settings, audit_file=audit_file, actor="tester")
    assert released(again) == set() and again.summary()["wouldRelease"] == 0
    assert not any(key.startswith("DELETE") for key in site.stats())


@pytest.mark.parametrize("users", [400, 4000])
def test_request_count_does_not_grow_with_the_site(users: int, sim_factory: Callable[..., Any],
                                                   write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(users=users, seed=5)
    report = wiring.run_evaluate(wiring.load_config(write_config(sim, POLICY)), dry_run=True,
                                 audit_file=str(tmp_path / "a.jsonl"))
    assert report.summary()["evaluated"] > users / 2
    assert sim.stats() == {"GET /qrs/license/professionalaccesstype/full": 1,
                           "GET /qrs/license/analyzeraccesstype/full": 1, "POST /qrs/user/table": 1}


def test_few_candidates_fetch_just_their_users(site: Any, write_config: Callable[..., Path], tmp_path: Path) -> None:
    wiring.run_evaluate(wiring.load_config(write_config(site, POLICY)), dry_run=True,
                        audit_file=str(tmp_path / "a.jsonl"))
    assert site.stats() == {"GET /qrs/license/professionalaccesstype/full": 1,
                            "GET /qrs/license/analyzeraccesstype/full": 1, "POST /qrs/user/table": 1}


def test_breaker_exits_3_and_releases_nothing(site: Any, write_config: Callable[..., Path],
                                             tmp_path: Path) -> None:
    config_file = write_config(site, {**POLICY, "licenseManagement": {**POLICY["licenseManagement"],
                                                                      "abortAbovePercent": 10}})
    env = {k: v for k, v in os.environ.items() if k not in ("AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN")}
    done = subprocess.run([sys.executable, "-m", "butler", "evaluate", "--config", str(config_file), "--json",
                           "--audit-file", str(tmp_path / "a.jsonl")], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)  # stdout holds the report only: logs go to stderr
    assert report["capExceeded"] is True and "abortAbovePercent 10%" in report["aborted"]
    assert report["summary"]["released"] == 0 and report["summary"]["deferred"] == 3
    assert ("evaluation aborted: breaker: 2 of 10 professional allocations (20.0%) are candidates, more than "
            "licenseManagement.abortAbovePercent 10%") in done.stderr
    assert not any(key.startswith("DELETE") for key in site.stats())
    run = [r for r in JsonLinesAuditSink(tmp_path / "a.jsonl").records() if r["kind"] == "run"]
    assert run[-1]["status"] == "aborted"


def test_throttle_exits_0_and_defers_the_rest(site: Any, write_config: Callable[..., Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config_file = write_config(site, {**POLICY, "licenseManagement": {**POLICY["licenseManagement"],
                                                                      "maxReleasesPerRun": 1}})
    code, out, _ = run_cli("--config", str(config_file), "--json", "--audit-file", str(tmp_path / "a.jsonl"),
                           capsys=capsys)
    report = json.loads(out)
    assert code == 0 and report["summary"]["released"] == 1 and report["summary"]["deferred"] == 2
    first = next(d for d in report["decisions"] if d["action"] == "release")
    assert first["daysInactive"] >= max(d["daysInactive"] for d in report["decisions"] if d["action"] == "deferred")
    assert sum(n for key, n in site.stats().items() if key.startswith("DELETE")) == 1


def test_readable_table_and_dry_run_over_the_breaker(site: Any, write_config: Callable[..., Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config_file = write_config(site, {**POLICY, "licenseManagement": {**POLICY["licenseManagement"],
                                                                      "abortAbovePercent": 10, "dryRun": True}})
    code, out, _ = run_cli("--config", str(config_file), "--audit-file", str(tmp_path / "a.jsonl"), capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["USER", "NAME", "TYPE", "DAYS", "INACTIVE", "ACTION"]
    assert any(line.startswith("CORP\\p.vip") and "protected" in line and "exclusions.tags: vip-user" in line
               for line in lines)
    assert ("Totals: evaluated 17, released 0, wouldRelease 3, protected 4, keep 9, skip 1, failed 0, deferred 0, "
            "warned 0, wouldWarn 0, noticePending 0") in lines
    assert lines[-1].startswith("Dry run: nothing was released. The breaker would have stopped a live run")


def test_faults_never_release_wrongly_and_reruns_converge(sim_factory: Callable[..., Any],
                                                          write_config: Callable[..., Path], tmp_path: Path) -> None:
    sim = sim_factory(users=300, seed=11, fault_seed=3)
    policy = {"qrs": {"retries": 1},  # one retry only, so that faults get through to the evaluation
              "licenseManagement": {**POLICY["licenseManagement"], "maxReleasesPerRun": 10000,
                                    "maxReleasePercent": 100, "abortAbovePercent": 100}}
    settings = wiring.load_config(write_config(sim, policy))
    audit_file = str(tmp_path / "audit.jsonl")
    now = datetime.now(UTC)
    expected = {d.allocation.id for d in wiring.run_evaluate(settings, dry_run=True, audit_file=audit_file,
                                                             now=now).decisions if d.action == "would-release"}
    initial = {a["id"] for a in sim_get(sim, "state")["allocations"]}
    assert len(expected) > 50
    sim.fault_rate = 0.3
    outcomes: list[dict[str, int] | str] = []
    for _ in range(15):
        try:
            report = wiring.run_evaluate(settings, audit_file=audit_file, now=now)
        except QrsError as exc:  # the inventory itself failed after its retries: nothing was released
            outcomes.append(type(exc).__name__)
            continue
        finally:
            sim.fault_rate = 0.0
            gone = initial - {a["id"] for a in sim_get(sim, "state")["allocations"]}
            sim.fault_rate = 0.3
            assert gone <= expected  # never anything but the candidates
        outcomes.append(report.summary())
        if report.summary()["released"] == report.summary()["failed"] == 0:
            break
    last = outcomes[-1]
    assert isinstance(last, dict) and last["released"] == last["failed"] == 0, outcomes
    assert any(isinstance(o, str) or o["failed"] for o in outcomes), outcomes  # the faults did bite
    assert gone == expected
    records = JsonLinesAuditSink(audit_file).records()
    intents = {r["allocationId"] for r in records if r["kind"] == "release-intent"}
    released_ids = {r["allocationId"] for r in records if r["kind"] == "release-outcome" and r["action"] == "release"}
    assert released_ids == expected and intents >= expected  # every release audited, intent and outcome


def test_release_events_reach_influxdb(site: Any, write_config: Callable[..., Path], tmp_path: Path,
                                       influx_server: InfluxServer, influx_db: str) -> None:
    settings = wiring.load_config(write_config(site, {**POLICY, "influxDb": influx_config(influx_server, influx_db)}))
    report = wiring.run_evaluate(settings, audit_file=str(tmp_path / "a.jsonl"))
    rows = influx_server.query('SELECT "days_inactive", "allocation_id", "user_id", "license_type", "dry_run" '
                               'FROM "license_release"', db=influx_db)
    assert rows, "no license_release series"
    columns = rows[0]["columns"]
    points = [dict(zip(columns, values, strict=True)) for series in rows for values in series["values"]]
    assert {p["user_id"] for p in points} == {f"CORP\\{u}" for u in EXPECTED_RELEASES}
    assert {p["dry_run"] for p in points} == {"false"}
    assert {p["allocation_id"] for p in points} == {d.allocation.id for d in report.decisions
                                                    if d.action == "release"}
    assert all(p["days_inactive"] >= 30 for p in points)


def test_a_second_local_run_exits_cleanly(site: Any, write_config: Callable[..., Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config_file = write_config(site, POLICY)
    with wiring.run_lock(wiring.load_config(config_file)):
        code, out, err = run_cli("--config", str(config_file), "--audit-file", str(tmp_path / "a.jsonl"),
                                 capsys=capsys)
    assert (code, out) == (4, "") and err.startswith(f"not run: another run of evaluate of 127.0.0.1:{site.port} "
                                                     "holds the run lock")
    assert "since" in err and "until" in err
    assert site.stats() == {}
