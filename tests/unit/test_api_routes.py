"""The /v4 resolver with an in-memory QRS: routing, answers, status codes and error mapping.

The fake QRS understands exactly the filters the service builds (``userId eq '...'``, optionally with
``userDirectory eq '...' and``, and ``user.id eq <guid>``); the real filter language is exercised against the
simulator in tests/integration.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from butler import wiring
from butler.api import Backend, create_app
from butler.config import Config, parse
from butler.licenses.on_request import RequestSinks
from butler.licenses.server_license import ServerLicense
from butler.qrs import QrsNotFound, QrsTimeout, QrsTlsError, QrsUnavailable, QrsUnreachable
from butler.qrs.certs import CertificateError
from butler.qrs.errors import QrsBadAnswer, QrsInvalidId
from butler.qrs.models import AccessTypeOverview, Allocation, LicenseType, User, UserCondensed
from butler.secrets import SecretError
from butler.sinks.audit import JsonLinesAuditSink
from butler.sinks.influx import InfluxWriteError

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


class FakeQrs:
    """Users and allocations in memory; records every call."""

    def __init__(self) -> None:
        self.users: list[User] = []
        self.allocs: dict[str, Allocation] = {}
        self.calls: list[str] = []
        self.deleted: list[str] = []
        self.fail: Exception | None = None

    def add_user(self, directory: str, user_id: str, *, tags: tuple[str, ...] = (), **licenses: Any) -> User:
        user = User.model_validate({"id": str(uuid.uuid4()), "userDirectory": directory, "userId": user_id,
                                    "name": user_id.title(), "tags": [{"name": t} for t in tags]})
        self.users.append(user)
        for license_type, idle_days in licenses.items():
            allocation = Allocation(
                id=str(uuid.uuid4()), licenseType=license_type, createdDate=NOW - timedelta(days=400),
                lastUsed=NOW - timedelta(days=idle_days),
                user=UserCondensed(id=user.id, userId=user_id, userDirectory=directory))
            self.allocs[allocation.id] = allocation
        return user

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.fail is not None:
            raise self.fail

    def access_type_overview(self) -> AccessTypeOverview:
        self._check("overview")
        counts = {t: sum(1 for a in self.allocs.values() if a.licenseType == t) for t in ("professional", "analyzer")}
        return AccessTypeOverview.model_validate({
            "professionalAccess": {"total": 10, "allocated": counts["professional"],
                                   "available": 10 - counts["professional"], "used": 1},
            "analyzerAccess": {"total": 20, "allocated": counts["analyzer"], "available": 20 - counts["analyzer"]},
            "analyzerTimeAccess": {"allocatedMinutes": 600, "usedMinutes": 60, "unavailableMinutes": 0}})

    def find_users(self, qrs_filter: str) -> list[User]:
        self._check(f"users {qrs_filter}")
        strings = [_unescape(s) for s in re.findall(r"'((?:[^'\\]|\\.)*)'", qrs_filter)]
        directory, user_id = (strings if len(strings) == 2 else [None, strings[0]])
        return [u for u in self.users if u.userId.casefold() == user_id.casefold()
                and (directory is None or u.userDirectory.casefold() == directory.casefold())]

    def users_named(self, user_id: str, directory: str | None = None) -> list[User]:
        self._check(f"users {directory}\\{user_id}")
        return [u for u in self.users if u.userId.casefold() == user_id.casefold()
                and (directory is None or u.userDirectory.casefold() == directory.casefold())]

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]:
        self._check(f"allocations {license_type}")
        return [a for a in self.allocs.values() if a.licenseType == license_type]

    def allocations_of_user(self, license_type: LicenseType, user_guid: str) -> list[Allocation]:
        self._check(f"allocations {license_type}")
        return [a for a in self.allocs.values() if a.licenseType == license_type and a.user and a.user.id == user_guid]

    def server_license(self) -> ServerLicense:
        self._check("license")
        return ServerLicense(serial="9999000011112222", keyDetails="Valid To: 2027-01-31", product=1)

    def allocation(self, license_type: LicenseType, allocation_id: str) -> Allocation:
        if allocation_id not in self.allocs:
            raise QrsNotFound("GET", f"/qrs/license/{license_type}accesstype/{allocation_id}", 404, "Not found")
        return self.allocs[allocation_id]

    def allocations_by_id(self, license_type: LicenseType, ids: Any) -> list[Allocation]:
        return [self.allocs[i] for i in ids if i in self.allocs]

    def users_by_id(self, ids: Any) -> list[User]:
        wanted = set(ids)
        return [u for u in self.users if u.id in wanted]

    def delete_allocation(self, license_type: LicenseType, allocation_id: str) -> None:
        self.allocation(license_type, allocation_id)
        del self.allocs[allocation_id]
        self.deleted.append(allocation_id)


class Notices:
    """One digest per release on request: (released allocation ids, actor)."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], str]] = []

    def run_digest(self, run_id: str, decisions: Any, *, actor: str, dry_run: bool, note: str | None = None) -> None:
        self.sent.append(([d.allocation.id for d in decisions if d.action == "release"], actor))


def _config(**management: Any) -> Config:
    base = {"enable": True, "exclusions": {"tags": ["VIP-User"]}, "quarantine": {"gracePeriod": 7},
            "release": {"professional": {"inactivityDays": 30}, "analyzer": {"inactivityDays": 45}}}
    return parse({"Butler": {"licenseManagement": {**base, **management}}})


class Harness:
    def __init__(self, tmp_path: Path, config: Config) -> None:
        self.qrs = FakeQrs()
        self.notices = Notices()
        self.audit = JsonLinesAuditSink(tmp_path / "audit.jsonl")
        self.loads = 0

        def load() -> Config:
            self.loads += 1
            return config

        self.backend = Backend(load, clock=lambda: NOW, client_factory=lambda _: self.qrs,
                               sinks_factory=lambda config, audit_file: RequestSinks(self.audit, self.notices))
        self.app = create_app(self.backend)

    def call(self, method: str, path: str, query: dict[str, list[str]] | None = None,
             identity: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        event = {
            "resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {"Accept": "application/json"},
            "multiValueHeaders": {"Accept": ["application/json"]},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
            "multiValueQueryStringParameters": query or None, "pathParameters": {"proxy": path[1:]},
            "requestContext": {"requestId": "req-1", "stage": "prod", "httpMethod": method, "path": path,
                               "identity": {"userArn": "arn:aws:iam::123456789012:user/admin"} if identity is None
                               else identity},
            "body": None, "isBase64Encoded": False,
        }
        answer = self.app.resolve(event, None)  # type: ignore[arg-type]
        assert answer["multiValueHeaders"]["Content-Type"] == ["application/json"] or "Content-Type" in answer.get(
            "headers", {})
        return answer["statusCode"], json.loads(answer["body"])


@pytest.fixture
def api(tmp_path: Path) -> Harness:
    return Harness(tmp_path, _config())


def user_path(directory: str, user_id: str) -> str:
    return "/v4/licenses/user/" + quote(f"{directory}\\{user_id}", safe="")


def test_building_the_app_reads_nothing(api: Harness) -> None:
    assert api.loads == 0 and api.qrs.calls == []


def test_status_is_live_from_the_overview(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "jdoe", professional=40)
    status, body = api.call("GET", "/v4/licenses/status")
    assert status == 200
    assert body["professional"] == {"total": 10, "allocated": 1, "available": 9, "utilization": 10.0, "used": 1,
                                    "quarantined": 0, "excess": 0}
    assert body["analyzerCapacity"]["availableMinutes"] == 540
    assert sorted(api.qrs.calls) == ["allocations analyzer", "allocations professional", "license", "overview"]


def test_status_names_the_server_license_and_the_redundant_analyzer_allocations(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "both", professional=4, analyzer=3)
    api.qrs.add_user("DOMAIN", "one", professional=4)
    status, body = api.call("GET", "/v4/licenses/status")
    assert status == 200 and body["redundantAnalyzer"] == 1
    assert body["serverLicense"] == {"validTo": "2027-01-31", "daysUntilExpiry": 77, "isExpired": False,
                                     "isInvalid": False, "isBlacklisted": False, "product": "Enterprise",
                                     "serialLast4": "2222", "expiredReason": None, "problem": None}


def test_user_lookup_with_directory_in_the_path(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "jdoe", professional=40.5, analyzer=3)
    status, body = api.call("GET", user_path("domain", "JDOE"))
    assert status == 200
    assert (body["userDirectory"], body["userId"], body["protected"]) == ("DOMAIN", "jdoe", False)
    by_type = {a["licenseType"]: a for a in body["allocations"]}
    assert by_type["professional"]["daysInactive"] == 40.5
    assert by_type["professional"]["evaluation"]["action"] == "release"
    assert by_type["professional"]["releasableAt"] == "2026-11-05T00:00:00.000Z"  # lastUsed + 30 days
    assert by_type["analyzer"]["evaluation"]["action"] == "keep"
    assert by_type["analyzer"]["releasableAt"] == "2026-12-27T12:00:00.000Z"  # lastUsed + 45 days
    # one user lookup and one allocation read per type
    assert api.qrs.calls == ["users domain\\JDOE", "allocations professional", "allocations analyzer"]


def test_protected_user_shows_the_rule_and_no_release_date(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "boss", tags=("vip-user",), professional=90)
    status, body = api.call("GET", "/v4/licenses/user/boss")
    assert status == 200
    assert body["protected"] is True and body["protections"] == ["exclusions.tags: vip-user"]
    allocation = body["allocations"][0]
    assert allocation["releasableAt"] is None
    assert allocation["evaluation"] == {"action": "protected", "reason": "exclusions.tags: vip-user"}


def test_bare_id_in_two_directories_is_409_naming_them(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "sam", professional=50)
    api.qrs.add_user("OTHER", "sam", analyzer=50)
    status, body = api.call("GET", "/v4/licenses/user/sam")
    assert status == 409 and body["userDirectories"] == ["DOMAIN", "OTHER"]
    assert "DOMAIN" in body["message"] and "OTHER" in body["message"]
    status, body = api.call("GET", "/v4/licenses/user/sam", {"userDirectory": ["other"]})
    assert status == 200 and body["userDirectory"] == "OTHER"


@pytest.mark.parametrize(("path", "query", "fragment"), [
    ("/v4/licenses/user/nobody", None, "no user nobody"),
    ("/v4/licenses/user/DOMAIN%5Cidle", None, "has no access allocated"),
])
def test_unknown_user_or_no_license_is_404(api: Harness, path: str, query: Any, fragment: str) -> None:
    api.qrs.add_user("DOMAIN", "idle")
    status, body = api.call("GET", path, query)
    assert status == 404 and fragment in body["message"]


def test_delete_releases_through_the_executor_with_the_callers_identity(api: Harness, tmp_path: Path) -> None:
    api.qrs.add_user("DOMAIN", "jdoe", professional=40, analyzer=2)
    status, body = api.call("DELETE", user_path("DOMAIN", "jdoe"), {"licenseType": ["professional"]})
    assert status == 200
    assert body["dryRun"] is False and body["released"] == 1
    assert body["caller"] == "arn:aws:iam::123456789012:user/admin" and body["runId"] == "api-req-1"
    assert [a["action"] for a in body["allocations"]] == ["release"]
    assert len(api.qrs.deleted) == 1 and len(api.qrs.allocs) == 1  # the analyzer allocation stays
    kinds = [(r["kind"], r["actor"], r.get("open")) for r in api.audit.records()]
    assert kinds == [("release-intent", "arn:aws:iam::123456789012:user/admin", False),
                     ("release-outcome", "arn:aws:iam::123456789012:user/admin", None)]
    assert api.notices.sent == [([api.qrs.deleted[0]], "arn:aws:iam::123456789012:user/admin")]


def test_delete_of_a_protected_user_is_409_unless_forced(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "boss", tags=("VIP-User",), professional=2)
    status, body = api.call("DELETE", user_path("DOMAIN", "boss"))
    assert status == 409 and body["protections"] == ["exclusions.tags: VIP-User"]
    assert "force=true" in body["message"] and api.qrs.deleted == []
    refused = api.audit.records()  # the refusal is audited as a decision with the caller
    assert [(r["kind"], r["action"], r["actor"]) for r in refused] == [
        ("decision", "protected", "arn:aws:iam::123456789012:user/admin")]
    status, body = api.call("DELETE", user_path("DOMAIN", "boss"), {"force": ["true"]},
                            identity={"caller": "AIDAEXAMPLE"})
    assert status == 200 and body["released"] == 1 and body["caller"] == "AIDAEXAMPLE"
    assert "force overrides exclusions.tags: VIP-User" in body["allocations"][0]["reason"]
    assert len(api.qrs.deleted) == 1


def test_dry_run_configuration_releases_nothing(tmp_path: Path) -> None:
    api = Harness(tmp_path, _config(dryRun=True))
    api.qrs.add_user("DOMAIN", "jdoe", professional=40)
    status, body = api.call("DELETE", user_path("DOMAIN", "jdoe"), identity={})
    assert status == 200 and body["dryRun"] is True and body["released"] == 0
    assert body["caller"] == "unknown"
    assert [a["action"] for a in body["allocations"]] == ["would-release"]
    assert api.qrs.deleted == [] and api.notices.sent == []
    assert [(r["kind"], r["action"], r["actor"], r["dryRun"]) for r in api.audit.records()] == [
        ("decision", "would-release", "unknown", True)]


def test_an_allocation_gone_before_the_delete_is_skipped(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "jdoe", professional=40)
    original = api.qrs.allocation

    def vanish(license_type: LicenseType, allocation_id: str) -> Allocation:
        api.qrs.allocs.pop(allocation_id, None)
        return original(license_type, allocation_id)

    api.qrs.allocation = vanish  # type: ignore[method-assign]
    status, body = api.call("DELETE", user_path("DOMAIN", "jdoe"))
    assert status == 200 and body["released"] == 0
    assert body["allocations"][0]["action"] == "skip" and "already released" in body["allocations"][0]["reason"]


def test_a_failed_delete_is_a_502_listing_the_outcome(api: Harness) -> None:
    api.qrs.add_user("DOMAIN", "jdoe", professional=40)

    def refuse(license_type: LicenseType, allocation_id: str) -> None:
        raise QrsUnavailable("DELETE", "/qrs/license/professionalaccesstype/x", 503, "Service Unavailable")

    api.qrs.delete_allocation = refuse  # type: ignore[method-assign]
    status, body = api.call("DELETE", user_path("DOMAIN", "jdoe"))
    assert status == 502 and "failed" in body["message"] and body["released"] == 0
    assert body["allocations"][0]["action"] == "failed" and "HTTP 503" in body["allocations"][0]["reason"]
    assert [r["action"] for r in api.audit.records()] == ["release", "failed"]  # intent, then the failed outcome


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("DELETE", "/v4/licenses/user/jdoe", {"licenceType": ["analyzer"]}, (400, "unknown query parameter(s): licence")),
    ("DELETE", "/v4/licenses/user/jdoe", {"userDirectory": ["A", "B"]}, (422, "userDirectory")),
    ("DELETE", "/v4/licenses/user/jdoe", {"licenseType": ["analyzer", "professional"]}, (422, "licenseType")),
    ("DELETE", "/v4/licenses/user/jdoe", {"licenseType": ["tokens"]}, (422, "licenseType")),
    ("DELETE", "/v4/licenses/user/jdoe", {"force": ["maybe"]}, (422, "force")),
    ("GET", "/v4/licenses/user/jdoe", {"userDirectory": [""]}, (422, "userDirectory")),
    ("GET", "/v4/licenses/user/A%5CB%5Cc", None, (400, "more than one backslash")),
    ("GET", "/v4/licenses/user/%5Cjdoe", None, (400, "user directory is empty")),
    ("GET", "/v4/licenses/user/DOMAIN%5C%20", None, (400, "userId is empty")),
    ("GET", "/v4/licenses/user/%FF", None, (400, "not URL-encoded UTF-8")),
    ("GET", "/v4/licenses/user/a%00b", None, (400, "control")),
    ("GET", "/v4/licenses/user/" + "x" * 300, None, (400, "longer than 255")),
    ("GET", "/v4/licenses/user/D%5Cx", {"userDirectory": ["E"]}, (400, "contradicts")),
    ("GET", "/v4/licenses/user/DOMAIN\\jdoe", None, (400, "must be URL-encoded")),
    ("GET", "/v4/licenses/status", {"verbose": ["1"]}, (400, "unknown query parameter(s): verbose")),
    ("POST", "/v4/licenses/status", None, (405, "use GET")),
    ("GET", "/v4/licenses", None, (404, "no such route")),
])
def test_bad_input_is_a_4xx_with_a_message(api: Harness, method: str, path: str, query: Any,
                                           expected: tuple[int, str]) -> None:
    status, body = api.call(method, path, query)
    assert (status, expected[1] in body["message"]) == (expected[0], True), body
    assert api.qrs.calls == []  # rejected before QRS is asked


@pytest.mark.parametrize(("failure", "status", "fragment"), [
    (QrsTlsError("GET /qrs/license/accesstypeoverview: TLS handshake failed: CERTIFICATE_VERIFY_FAILED"), 502,
     "certificate problem"),
    (QrsUnreachable("GET /qrs/x: cannot reach https://127.0.0.1:1"), 503, "QRS is unreachable"),
    (QrsTimeout("GET /qrs/x: no answer within 1 s"), 504, "did not answer in time"),
])
def test_qrs_trouble_is_a_clear_5xx(api: Harness, failure: Exception, status: int, fragment: str) -> None:
    api.qrs.fail = failure
    got, body = api.call("GET", "/v4/licenses/status")
    assert got == status and fragment in body["message"]


def test_a_tls_failure_drops_the_client_so_a_rotated_secret_is_read_again(api: Harness) -> None:
    built: list[int] = []
    api.backend._client_factory = lambda _: built.append(1) or api.qrs  # type: ignore[assignment,func-returns-value]
    api.qrs.fail = QrsTlsError("handshake failed")
    assert api.call("GET", "/v4/licenses/status")[0] == 502
    api.qrs.fail = None
    assert api.call("GET", "/v4/licenses/status")[0] == 200
    assert len(built) == 2


def test_an_unexpected_failure_is_a_json_500_without_details(api: Harness) -> None:
    api.qrs.fail = RuntimeError("secret=hunter2")
    status, body = api.call("GET", "/v4/licenses/status")
    assert status == 500 and "hunter2" not in body["message"] and "RuntimeError" in body["message"]


def test_user_lookup_with_automatic_release_off_shows_a_dry_run(tmp_path: Path) -> None:
    api = Harness(tmp_path, _config(enable=False))
    api.qrs.add_user("DOMAIN", "jdoe", professional=40.5)
    status, body = api.call("GET", user_path("DOMAIN", "jdoe"))
    assert status == 200
    (allocation,) = body["allocations"]
    assert allocation["evaluation"]["action"] == "would-release"
    assert allocation["releasableAt"] is None  # nothing releases it automatically


# --- failures of the outside world: 502/503/504 with a message, never a 500 -----------------------------------

AWS_OUTAGES = [
    (ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "Requested resource not found"}},
                 "PutItem"), 502, "DynamoDB table butler-audit: PutItem: ResourceNotFoundException"),
    (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "Query"), 502,
     "DynamoDB table butler-audit: Query: AccessDeniedException"),
    (ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"),
     503, "DynamoDB table butler-audit"),
    (ClientError({"Error": {"Code": "AuthorizationError", "Message": "no"}}, "Publish"), 502, "AWS Publish"),
    (EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com/"), 503,
     "DynamoDB table butler-audit"),
    (ReadTimeoutError(endpoint_url="https://sns.eu-west-1.amazonaws.com/"), 504, "AWS ReadTimeoutError"),
    (NoCredentialsError(), 502, "Unable to locate credentials"),
    (NoRegionError(), 502, "region"),
]


@pytest.mark.parametrize(("failure", "status", "fragment"), [
    (QrsBadAnswer("GET /qrs/license/accesstypeoverview", "not JSON"), 502, "malformed answer"),
    (QrsInvalidId("GET /qrs/license/professionalaccesstype/{id}", "x'y"), 502, "is not a GUID"),
    (SecretError("secret butler/qrs-certificates: access denied (AccessDeniedException)"), 502,
     "secret butler/qrs-certificates: access denied"),
    (CertificateError("secret butler/qrs-certificates: client.pem (or clientCert) is missing or not PEM"), 502,
     "client.pem"),
    (InfluxWriteError("InfluxDB write failed: HTTP 401"), 502, "InfluxDB"),
    *AWS_OUTAGES,
])
def test_outside_failures_are_a_clear_5xx_never_a_500(api: Harness, monkeypatch: pytest.MonkeyPatch,
                                                      failure: Exception, status: int, fragment: str) -> None:
    monkeypatch.setenv("AUDIT_TABLE", "butler-audit")
    monkeypatch.delenv("LOCK_TABLE", raising=False)
    api.qrs.fail = failure
    got, body = api.call("GET", "/v4/licenses/status")
    assert (got, fragment in body["message"]) == (status, True), body
    assert "\n" not in body["message"]


def test_a_release_whose_influxdb_token_secret_cannot_be_read_is_a_502_naming_it(
        tmp_path: Path, mocked_aws: None) -> None:
    secret = f"butler/missing-token-{uuid.uuid4()}"  # a name no other test's secret cache holds
    config = parse({"Butler": {**_config().model_dump(include={"licenseManagement"}, exclude_unset=True),
                               "influxDb": {"enable": True, "version": 2, "org": "corp", "bucket": "qlik",
                                            "tokenSecretId": secret}}})
    api = Harness(tmp_path, config)
    api.backend = Backend(lambda: config, clock=lambda: NOW, client_factory=lambda _: api.qrs,
                          sinks_factory=lambda config, audit_file: RequestSinks(api.audit, None,
                                                                                wiring.influx_writer(config)))
    api.app = create_app(api.backend)
    api.qrs.add_user("DOMAIN", "jdoe", professional=40)
    status, body = api.call("DELETE", user_path("DOMAIN", "jdoe"))
    assert status == 502 and body["message"].startswith(f"secret {secret}: not found")
    assert api.qrs.deleted == []
