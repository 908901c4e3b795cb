"""Audit sinks (DynamoDB under moto, JSON Lines), the run locks and the SNS notices."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from butler import config, wiring
from butler.licenses.policy import Rules, decide
from butler.lock import DynamoDbLock, FileLock, LockBusy, site_key
from butler.sinks.audit import DynamoDbAuditSink, JsonLinesAuditSink, create_table, decision_record
from butler.sinks.notify import REASSIGN_NOTE, SnsNotifier
from tests.support.evaluate_fakes import make_allocation, make_user
from tests.support.lambda_harness import notice_inbox

NOW = datetime(2026, 6, 30, 23, 0, tzinfo=UTC)
RULES = Rules.from_config(config.parse({"Butler": {"licenseManagement": {}}}).Butler.licenseManagement)


@pytest.fixture
def aws(mocked_aws: None) -> None:
    """AWS from moto (tests/conftest.py)."""


@pytest.fixture
def table(aws: None) -> str:
    create_table("audit")
    return "audit"


def records(user_id: str = "jdoe", at: datetime = NOW, run_id: str = "run-1") -> list[dict[str, Any]]:
    """A decision, a release intent and its outcome for one user (name "Jdoe")."""
    user = make_user(user_id)
    decision = decide(make_allocation(user, at, 61.25), user, RULES, at)
    return [decision_record(decision, kind, run_id=run_id, actor="tester", at=at, dry_run=False)
            for kind in ("decision", "release-intent", "release-outcome")]


def run_record(run_id: str = "run-1", started: datetime = NOW) -> dict[str, Any]:
    return {"kind": "run", "runId": run_id, "startedAt": started.isoformat().replace("+00:00", "Z"),
            "status": "finished", "summary": {"released": 1}}


def test_dynamodb_keys_serve_run_user_and_time_window_queries(table: str) -> None:
    sink = DynamoDbAuditSink(table, retention_days=30)
    sink.write(run_record())
    sink.write_many(records())
    sink.write_many(records("other", NOW + timedelta(days=3), "run-2"))  # a July release
    run = sink.records_for_run("run-1")
    assert sorted(r["kind"] for r in run) == ["decision", "release-intent", "release-outcome", "run"]
    outcome = next(r for r in run if r["kind"] == "release-outcome")
    assert outcome["daysInactive"] == 61.25 and outcome["dryRun"] is False and outcome["userName"] == "Jdoe"
    history = sink.records_for_user("corp", "JDOE")  # Qlik matches user ids case-insensitively
    assert [r["kind"] for r in history] == ["decision", "release-intent", "release-outcome"]
    window = sink.releases_between(NOW - timedelta(hours=1), NOW + timedelta(days=5))
    assert [r["userId"] for r in window] == ["jdoe", "other"]  # across the month boundary, outcomes only
    assert sink.releases_between(NOW + timedelta(hours=1), NOW + timedelta(days=1)) == []


def test_dynamodb_ttl_and_redaction(table: str) -> None:
    DynamoDbAuditSink(table, retention_days=30, include_user_details=False).write_many(records())
    items = boto3.resource("dynamodb").Table(table).scan()["Items"]
    assert len(items) == 3 and all("userName" not in item for item in items)
    assert {item["userId"] for item in items} == {"jdoe"}
    expected = time.time() + 30 * 86400
    assert all(abs(int(item["expiresAt"]) - expected) < 60 for item in items)
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiresAt"


def test_json_lines_sink(tmp_path: Path) -> None:
    sink = JsonLinesAuditSink(tmp_path / "audit.jsonl", include_user_details=False)
    sink.write(run_record())
    sink.write_many(records())
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all("userName" not in json.loads(line) for line in lines)
    assert len(sink.records_for_run("run-1")) == 4
    assert [r["kind"] for r in sink.records_for_user("CORP", "jdoe")] == ["decision", "release-intent",
                                                                         "release-outcome"]
    assert len(sink.releases_between(NOW, NOW)) == 1


def test_wiring_picks_the_sink_from_the_environment(tmp_path: Path, table: str) -> None:
    settings = config.parse({"Butler": {"licenseManagement": {"auditLog": {"retentionDays": 9}}}})
    dynamo = wiring.audit_sink(settings, env={"AUDIT_TABLE": table})
    assert isinstance(dynamo, DynamoDbAuditSink) and dynamo.retention == timedelta(days=9)
    local = wiring.audit_sink(settings, str(tmp_path / "a.jsonl"), env={})
    assert isinstance(local, JsonLinesAuditSink) and local.path == tmp_path / "a.jsonl"
    assert wiring.notifier(env={}) is None


def test_dynamodb_lock_excludes_a_second_run_and_expires(table: str) -> None:
    clock = [1_000_000.0]
    first = DynamoDbLock(table, "evaluate@127.0.0.1:4242", ttl_seconds=120, clock=lambda: clock[0])
    second = DynamoDbLock(table, "evaluate@127.0.0.1:4242", ttl_seconds=120, clock=lambda: clock[0])
    first.acquire()
    with pytest.raises(LockBusy, match=r"another run of evaluate@127.0.0.1:4242 holds the run lock since "
                                       r"1970-01-12T13:46:40Z until 1970-01-12T13:48:40Z"):
        second.acquire()
    clock[0] += 121  # the first run died: its lock expires within minutes
    second.acquire()
    assert not first.renew() and not first.alive()  # a heartbeat of the old holder finds the lock taken
    first.release()  # too late: not its lock any more, so it stays
    with pytest.raises(LockBusy):
        DynamoDbLock(table, "evaluate@127.0.0.1:4242", clock=lambda: clock[0]).acquire()
    clock[0] += 100
    assert second.renew() and second.alive()  # the heartbeat keeps a long run's lock
    clock[0] += 100
    with pytest.raises(LockBusy):
        DynamoDbLock(table, "evaluate@127.0.0.1:4242", clock=lambda: clock[0]).acquire()
    second.release()
    with DynamoDbLock(table, "evaluate@127.0.0.1:4242", clock=lambda: clock[0]):
        pass


def test_dynamodb_lock_heartbeat_thread_renews(table: str) -> None:
    lock = DynamoDbLock(table, "beat", ttl_seconds=2, heartbeat_seconds=0.2)
    with lock:
        import time

        time.sleep(2.5)
        with pytest.raises(LockBusy):
            DynamoDbLock(table, "beat").acquire()
        assert lock.alive()


def test_file_lock(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.lock"
    with FileLock(path), pytest.raises(LockBusy, match=r"another run of evaluate holds the run lock .* since .*"
                                                       r"\(process \d+\), until that process ends"):
        FileLock(path).acquire()
    with FileLock(path):
        pass


def test_the_lock_is_per_site_however_the_host_is_spelt() -> None:
    assert site_key("localhost", 4242) == site_key("127.0.0.1", 4242) or site_key("localhost", 4242) == "::1:4242"
    assert site_key("127.0.0.1", 4242) == "127.0.0.1:4242"
    assert site_key("127.0.0.1", 4242) != site_key("127.0.0.1", 4243)
    assert site_key("no-such-host.invalid", 4242) == "no-such-host.invalid:4242"


def test_sns_digest(aws: None) -> None:
    topic, queue = notice_inbox("notices")
    sqs = boto3.client("sqs")
    users = [make_user("jürgen"), make_user("anna")]
    decisions = [decide(make_allocation(u, NOW, 47.26), u, RULES, NOW) for u in users]
    decisions[1] = decisions[1].with_outcome("failed", "DELETE: HTTP 503: busy")
    notifier = wiring.notifier(env={"NOTIFY_TOPIC_ARN": topic})
    assert isinstance(notifier, SnsNotifier)
    notifier.run_digest("run-9", decisions, actor="scheduler", dry_run=False)
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1  # one digest per run, not one message per release
    body = json.loads(messages[0]["Body"])
    assert body["Subject"] == "Qlik Sense licenses: 1 released, 1 failed"
    assert "CORP\\jürgen professional (47.3 days inactive)" in body["Message"]
    assert "FAILED (1):" in body["Message"] and "HTTP 503: busy" in body["Message"]
    assert REASSIGN_NOTE in body["Message"] and "run-9" in body["Message"]
    assert body["MessageAttributes"]["failed"]["Value"] == "1"


def test_sns_digest_is_not_sent_for_a_run_that_did_nothing(aws: None) -> None:
    topic, queue = notice_inbox("quiet")
    notifier = wiring.notifier(env={"NOTIFY_TOPIC_ARN": topic})
    assert notifier is not None
    notifier.run_digest("run-1", [], actor="scheduler", dry_run=True)
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=queue)
