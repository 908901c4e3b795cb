"""The api Lambda function (functions/api/app.py) with real API Gateway REST proxy events (IAM auth), under moto:
audit records to DynamoDB, release notices to SNS (read back through an SQS subscription), QRS = the simulator."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from butler.sinks.audit import DynamoDbAuditSink, create_table
from tests.integration.api.conftest import SimView
from tests.support.lambda_harness import Context, load_handler, notice_inbox

ROOT = Path(__file__).resolve().parents[3]
EVENT = json.loads((Path(__file__).parent / "events" / "rest_proxy_iam.json").read_text())
ADMIN_ARN = EVENT["requestContext"]["identity"]["userArn"]


def rest_event(method: str, user: str | None = None, **query: str) -> dict[str, Any]:
    """The captured event, re-aimed: API Gateway REST passes the path still URL-encoded."""
    event = copy.deepcopy(EVENT)
    if user is None:
        resource, path, event["pathParameters"] = "/v4/licenses/status", "/v4/licenses/status", None
    else:
        encoded = quote(user, safe="")
        resource, path = "/v4/licenses/user/{userId}", f"/v4/licenses/user/{encoded}"
        event["pathParameters"] = {"userId": encoded}
    event.update(resource=resource, path=path, httpMethod=method,
                 queryStringParameters=query or None,
                 multiValueQueryStringParameters={k: [v] for k, v in query.items()} or None)
    event["requestContext"].update(resourcePath=resource, httpMethod=method, path=f"/api{path}")
    return event


def decisions(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, action) of audit records: a refusal or a dry run is audited as decisions, a release as intent and
    outcome."""
    return [(r["kind"], r["action"]) for r in records]


@dataclass
class Aws:
    table: str
    queue_url: str

    def audit(self, directory: str, user_id: str) -> list[dict[str, Any]]:
        return DynamoDbAuditSink(self.table).records_for_user(directory, user_id)

    def notices(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def aws(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Aws:
    create_table("butler-audit")
    topic, queue_url = notice_inbox("butler-releases", "notices")
    monkeypatch.setenv("AUDIT_TABLE", "butler-audit")
    monkeypatch.setenv("NOTIFY_TOPIC_ARN", topic)
    return Aws("butler-audit", queue_url)


@pytest.fixture
def handler(aws: Aws, api_config: Callable[..., Path],
            monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, dict[str, Any]]]:
    """Import the function's module afresh (a cold start) for a config; returns a caller of its handler."""
    module: ModuleType | None = None

    def call(event: dict[str, Any], **management: Any) -> tuple[int, dict[str, Any]]:
        nonlocal module
        if module is None:
            monkeypatch.setenv("BUTLER_CONFIG", str(api_config(**management)))
            module = load_handler("api")
        answer = module.handler(event, Context())
        assert answer["multiValueHeaders"]["Content-Type"] == ["application/json"]
        return answer["statusCode"], json.loads(answer["body"])

    return call


def test_status(handler: Callable[..., tuple[int, dict[str, Any]]], sim_view: SimView) -> None:
    status, body = handler(rest_event("GET"))
    assert status == 200
    assert body["professional"]["allocated"] == sim_view.expected_status("professional")["allocated"] == 3
    assert body["analyzer"]["utilization"] == sim_view.expected_status("analyzer")["utilization"] == 15.0


def test_release_is_audited_in_dynamodb_with_the_iam_caller_and_noticed(
        handler: Callable[..., tuple[int, dict[str, Any]]], aws: Aws, sim_view: SimView) -> None:
    status, body = handler(EVENT)  # the captured event as it is: DELETE DOMAIN%5Cjdoe
    assert status == 200 and body["caller"] == ADMIN_ARN and body["released"] == 1
    assert body["runId"] == "api-c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert sim_view.allocations_of("DOMAIN", "jdoe") == []
    records = aws.audit("DOMAIN", "jdoe")
    assert [(r["kind"], r["actor"], r["action"], r["runId"]) for r in records] == [
        ("release-intent", ADMIN_ARN, "release", body["runId"]),
        ("release-outcome", ADMIN_ARN, "release", body["runId"])]
    [digest] = aws.notices()  # the administrators' digest of the request's run
    assert "1 released" in digest["Subject"] and "DOMAIN\\jdoe" in digest["Message"] and ADMIN_ARN in digest["Message"]


def test_protected_user_is_409_then_forced(handler: Callable[..., tuple[int, dict[str, Any]]], aws: Aws,
                                           sim_view: SimView) -> None:
    status, body = handler(rest_event("DELETE", "DOMAIN\\vip"))
    assert status == 409 and body["protections"] == ["exclusions.tags: VIP-User"]
    assert decisions(aws.audit("DOMAIN", "vip")) == [("decision", "protected")] and aws.notices() == []
    status, body = handler(rest_event("DELETE", "vip", userDirectory="DOMAIN", force="true",
                                      licenseType="professional"))
    assert status == 200 and body["released"] == 1
    assert sim_view.allocations_of("DOMAIN", "vip") == []
    assert sorted(decisions(aws.audit("DOMAIN", "vip"))) == [
        ("decision", "protected"), ("release-intent", "release"), ("release-outcome", "release")]


def test_dry_run_configuration(handler: Callable[..., tuple[int, dict[str, Any]]], aws: Aws,
                               sim_view: SimView) -> None:
    status, body = handler(EVENT, dryRun=True)
    assert status == 200 and body["dryRun"] is True and body["allocations"][0]["action"] == "would-release"
    assert len(sim_view.allocations_of("DOMAIN", "jdoe")) == 1
    assert decisions(aws.audit("DOMAIN", "jdoe")) == [("decision", "would-release")] and aws.notices() == []


def test_caller_falls_back_to_unknown_and_lookups_answer(handler: Callable[..., tuple[int, dict[str, Any]]]) -> None:
    status, body = handler(rest_event("GET", "sam"))
    assert status == 409 and body["userDirectories"] == ["DOMAIN", "OTHER"]
    event = rest_event("DELETE", "o'brien")
    event["requestContext"]["identity"] = {"sourceIp": "192.0.2.10"}
    status, body = handler(event)
    assert status == 200 and body["caller"] == "unknown"


def test_unreachable_qrs_is_a_clear_503(handler: Callable[..., tuple[int, dict[str, Any]]], api_sim: Any) -> None:
    assert handler(rest_event("GET"))[0] == 200
    api_sim.stop()
    status, body = handler(rest_event("GET"))
    assert status == 503 and body["message"].startswith("QRS is unreachable")
