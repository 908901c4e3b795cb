"""The evaluate Lambda handler with a real EventBridge Scheduler input, under moto (DynamoDB audit and lock, SNS
notices) against the QRS simulator over mutual TLS."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from butler.lock import DynamoDbLock
from butler.observability import logger
from butler.qrs import QrsUnreachable
from butler.sinks.audit import DynamoDbAuditSink, create_table
from tests.support.evaluate_scenario import EXPECTED_RELEASES, POLICY, PROTECTED, SCENARIO
from tests.support.lambda_harness import Context, load_handler, notice_inbox

ROOT = Path(__file__).parents[2]
TABLE = "butler-audit"
SCHEDULER_EVENT = json.loads((ROOT / "events" / "scheduler-evaluate.json").read_text())  # the template's Input


@dataclass
class Aws:
    topic: str
    queue: str

    def notices(self) -> list[dict[str, Any]]:
        sqs, found = boto3.client("sqs"), []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            found += [json.loads(m["Body"]) for m in batch]
            sqs.delete_message_batch(QueueUrl=self.queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])


@pytest.fixture
def aws(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Aws:
    create_table(TABLE)
    topic, queue = notice_inbox("butler-notices")
    monkeypatch.setenv("AUDIT_TABLE", TABLE)
    monkeypatch.setenv("NOTIFY_TOPIC_ARN", topic)
    return Aws(topic, queue)


@pytest.fixture
def invoke(aws: Aws, sim_factory: Callable[..., Any], write_config: Callable[..., Path],
           monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[dict[str, Any], Any]]:
    """Run the handler once against a fresh simulated site; returns (result, simulator)."""
    handler = load_handler("evaluate").handler

    def run(management: dict[str, Any] | None = None, event: dict[str, Any] | None = None,
            sim: Any = None) -> tuple[dict[str, Any], Any]:
        sim = sim or sim_factory(scenario=SCENARIO)
        extra = {**POLICY, "licenseManagement": {**POLICY["licenseManagement"], **(management or {})}}
        monkeypatch.setenv("BUTLER_CONFIG", str(write_config(sim, extra)))
        return handler(SCHEDULER_EVENT if event is None else event, Context()), sim

    return run


def emf(out: str) -> dict[str | None, dict[str, Any]]:
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    return {blob.get("LicenseType"): blob for blob in blobs}


def test_scheduled_run_audits_notifies_and_publishes_metrics(invoke: Callable[..., Any], aws: Aws,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    result, _ = invoke()
    assert result["status"] == "ok" and result["summary"]["released"] == 3 and "decisions" not in result
    audit = DynamoDbAuditSink(TABLE)
    records = audit.records_for_run(result["runId"])
    run = next(r for r in records if r["kind"] == "run")
    assert (run["status"], run["actor"], run["dryRun"]) == ("finished", "scheduler", False)
    assert run["summary"] == result["summary"] and len(run["configHash"]) == 16
    for kind in ("release-intent", "release-outcome"):
        assert {r["userId"] for r in records if r["kind"] == kind} == EXPECTED_RELEASES
    decisions = {r["userId"]: r["action"] for r in records if r["kind"] == "decision"}
    assert decisions == {**dict.fromkeys(EXPECTED_RELEASES, "release"), **dict.fromkeys(PROTECTED, "protected"),
                         "a.quarantined": "skip"}
    assert [r["kind"] for r in audit.records_for_user("corp", "P.IDLE")] == ["release-intent", "release-outcome",
                                                                            "decision"]
    now = datetime.now(UTC)
    assert len(audit.releases_between(now - timedelta(minutes=5), now)) == 3
    (digest,) = aws.notices()  # one digest for the run, not one message per release
    assert digest["Subject"] == "Qlik Sense licenses: 3 released, 0 failed"
    assert all(f"CORP\\{user} " in digest["Message"] for user in EXPECTED_RELEASES)
    assert "butler reinstate" in digest["Message"]
    metrics = emf(capsys.readouterr().out)
    assert metrics[None]["Released"] == [3.0] and metrics[None]["EvaluationAborted"] == [0.0]
    assert metrics["professional"]["Released"] == [2.0] and metrics["analyzer"]["Protected"] == [0.0]
    items = boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
    assert not [i for i in items if i["pk"].startswith("LOCK#")]  # released at the end


def test_a_second_run_exits_cleanly_while_the_lock_is_held(invoke: Callable[..., Any], aws: Aws,
                                                          sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(scenario=SCENARIO)
    with DynamoDbLock(TABLE, f"evaluate@127.0.0.1:{sim.port}"):
        result, _ = invoke(sim=sim)
    assert result["status"] == "locked"
    assert result["message"].startswith(f"another run of evaluate@127.0.0.1:{sim.port} holds the run lock since ")
    assert sim.stats() == {}  # not a single QRS request
    assert boto3.resource("dynamodb").Table(TABLE).scan()["Count"] == 0
    assert invoke(sim=sim)[0]["status"] == "ok"  # released lock: the next run goes ahead


def test_an_expired_lock_does_not_block(invoke: Callable[..., Any], aws: Aws,
                                       sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(scenario=SCENARIO)
    lock = DynamoDbLock(TABLE, f"evaluate@127.0.0.1:{sim.port}", clock=lambda: 1_000.0)  # a run that died long ago
    lock.acquire()
    lock._stop.set()  # its heartbeat died with it
    assert invoke(sim=sim)[0]["status"] == "ok"


def test_failed_releases_fail_the_invocation_after_audit_and_metrics(
        invoke: Callable[..., Any], aws: Aws, sim_factory: Callable[..., Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim = sim_factory(scenario=SCENARIO, fault_rate=1.0, fault_kinds="error", fault_methods="DELETE")
    with pytest.raises(RuntimeError, match=r"3 release\(s\) failed in run \S+ \(butler audit --run"):
        invoke(sim=sim)
    runs = [i for i in boto3.resource("dynamodb").Table(TABLE).scan()["Items"] if i["kind"] == "run"]
    assert [(r["status"], int(r["summary"]["failed"])) for r in runs] == [("finished", 3)]
    assert emf(capsys.readouterr().out)[None]["FailedReleases"] == [3.0]
    (digest,) = aws.notices()
    assert digest["Subject"] == "Qlik Sense licenses: 0 released, 3 failed"


def test_breaker_abort(invoke: Callable[..., Any], aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    result, sim = invoke({"abortAbovePercent": 10})
    assert result["status"] == "aborted" and result["capExceeded"] is True
    assert "abortAbovePercent 10%" in result["aborted"] and result["summary"]["released"] == 0
    assert not any(key.startswith("DELETE") for key in sim.stats())
    run = next(r for r in DynamoDbAuditSink(TABLE).records_for_run(result["runId"]) if r["kind"] == "run")
    assert run["status"] == "aborted" and run["aborted"] == result["aborted"]
    (digest,) = aws.notices()  # the administrators learn that the breaker stopped the run
    assert "abortAbovePercent" in digest["Message"] and digest["Subject"].startswith("Qlik Sense licenses: 0 released")
    metrics = emf(capsys.readouterr().out)
    assert metrics[None]["EvaluationAborted"] == [1.0] and metrics["analyzer"]["EvaluationAborted"] == [1.0]


@pytest.mark.parametrize(("configured", "event_dry_run", "dry"), [(False, True, True), (True, False, True)])
def test_the_event_can_force_a_dry_run_never_a_live_one(invoke: Callable[..., Any], aws: Aws, configured: bool,
                                                        event_dry_run: bool, dry: bool) -> None:
    result, sim = invoke({"dryRun": configured}, {**SCHEDULER_EVENT, "dryRun": event_dry_run})
    assert result["dryRun"] is dry and result["summary"]["wouldRelease"] == 3
    assert not any(key.startswith("DELETE") for key in sim.stats()) and aws.notices() == []


def test_audit_options(invoke: Callable[..., Any], aws: Aws) -> None:
    result, _ = invoke({"auditLog": {"enable": False, "includeUserDetails": False}})
    records = DynamoDbAuditSink(TABLE).records_for_run(result["runId"])
    assert sorted({r["kind"] for r in records}) == ["release-intent", "release-outcome", "run"]
    assert all("userName" not in r for r in records)
    assert {r["userId"] for r in records if r["kind"] == "release-outcome"} == EXPECTED_RELEASES


def test_disabled_management_only_reports(invoke: Callable[..., Any], aws: Aws) -> None:
    result, sim = invoke({"enable": False})
    assert result["status"] == "disabled" and result["dryRun"] is True
    assert result["summary"]["wouldRelease"] == len(EXPECTED_RELEASES) and result["summary"]["released"] == 0
    assert not any(key.startswith("DELETE") for key in sim.stats())


def test_a_failed_run_fails_the_invocation_and_says_so_in_the_audit(invoke: Callable[..., Any], aws: Aws,
                                                                    sim_factory: Callable[..., Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    logs = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", logs)
    sim = sim_factory(scenario=SCENARIO)
    sim.stop()  # QRS is down
    with pytest.raises(QrsUnreachable):
        invoke(sim=sim)
    runs = boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
    assert [(r["kind"], r["status"]) for r in runs] == [("run", "failed")]
    assert "cannot connect" in runs[0]["error"]
    failure = next(json.loads(line) for line in logs.getvalue().splitlines() if "license evaluation failed" in line)
    assert failure["scheduleArn"] == SCHEDULER_EVENT["scheduleArn"] and failure["level"] == "ERROR"
