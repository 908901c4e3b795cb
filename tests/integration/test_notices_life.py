"""Issue 12 end to end: warnings, the notice period, release notices, reinstatement and holds, against the QRS
simulator (mutual TLS), a real SMTP server (aiosmtpd), and moto (the DynamoDB audit table, SES). Time moves by the
injected clock (``run_evaluate(now=...)``); the simulator keeps real time, so allocations were last used 60 days
before the real now and the evaluations happen in that past."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests

from butler import wiring
from butler.api import Backend, create_app
from butler.licenses.evaluate import EvaluationReport
from butler.licenses.model import iso
from butler.sinks.audit import create_table
from butler_dev.notices_demo import Inbox, smtp_server

ROOT = Path(__file__).parents[2]
REAL_NOW = datetime.now(UTC).replace(microsecond=0)
T0 = REAL_NOW - timedelta(days=60)  # the last use of every allocation
TABLE = "butler-audit-notices"
ADMIN = "qlik-admins@corp.example"
SENDER = "qlik-licenses@corp.example"
HUB = "https://qlik.corp.example/hub"


def stamp(moment: datetime) -> str:
    return str(iso(moment))


def person(user_id: str, address: str | None) -> dict[str, Any]:
    fields = {"email": address} if address else {}
    return {"userDirectory": "CORP", "userId": user_id, "name": user_id.title(), **fields,
            "license": {"type": "professional", "createdDate": stamp(T0 - timedelta(days=200)),
                        "lastUsed": stamp(T0)}}


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as server:  # the demo's: one local SMTP server for both
        yield server


@pytest.fixture
def table(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    create_table(TABLE)
    monkeypatch.setenv("AUDIT_TABLE", TABLE)
    return TABLE


def policy(smtp_port: int | None = None, *, via: str = "smtp", require: bool = True) -> dict[str, Any]:
    mail: dict[str, Any] = {"enable": True, "via": via, "from": SENDER, "hubUrl": HUB, "adminAddresses": [ADMIN]}
    if via == "smtp":
        mail["smtp"] = {"host": "127.0.0.1", "port": smtp_port}
    else:
        mail["ses"] = {"region": "eu-west-1"}
    return {"licenseManagement": {
        "enable": True, "dryRun": False, "maxReleasePercent": 100, "abortAbovePercent": 100,
        "release": {"professional": {"inactivityDays": 30}, "analyzer": {"inactivityDays": 45}},
        "notifications": {"warnDaysBefore": 7, "requireWarning": require, "email": mail},
    }}


def evaluate(config: Path, at: datetime) -> dict[str, str]:
    report: EvaluationReport = wiring.run_evaluate(wiring.load_config(config), now=at, actor="tester")
    assert report.failed == 0
    return {d.user_id: d.action for d in report.decisions} | {f"{d.user_id}:reason": d.reason
                                                               for d in report.decisions}


def holders(sim: Any) -> set[str]:
    state = requests.get(f"{sim.url}/__sim/state", cert=sim.client_cert, verify=sim.ca_file, timeout=30).json()
    return {a["user"]["userId"] for a in state["allocations"] if a["user"] and not a["quarantined"]}


def call(app: Any, method: str, path: str, query: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One request through the API's resolver, as API Gateway delivers it (an IAM caller)."""
    event = {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": {"Accept": "application/json"},
             "multiValueHeaders": {"Accept": ["application/json"]},
             "queryStringParameters": query or None,
             "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
             "pathParameters": {"proxy": path[1:]},
             "requestContext": {"requestId": f"req-{method}", "stage": "prod", "httpMethod": method, "path": path,
                                "identity": {"userArn": "arn:aws:iam::123456789012:user/qlik-admin"}},
             "body": None, "isBase64Encoded": False}
    answer = app.resolve(event, None)
    return answer["statusCode"], json.loads(answer["body"])


def test_a_user_is_warned_kept_through_the_notice_released_notified_and_reinstated(
        sim_factory: Callable[..., Any], write_config: Callable[..., Path], smtp: tuple[int, Inbox],
        table: str) -> None:
    port, inbox = smtp
    sim = sim_factory(scenario={"licenses": {"professional": {"total": 5}, "analyzer": {"total": 5}},
                                "users": [person("jdoe", "jdoe@corp.example"), person("nomail", None)]})
    config = write_config(sim, policy(port))

    # threshold minus 7 days (the scheduled run an hour later): one warning each, nothing released
    warned = evaluate(config, T0 + timedelta(days=23, hours=1))
    assert warned["jdoe"] == warned["nomail"] == "warn"
    [warning] = inbox.to("jdoe@corp.example")
    release_day = (T0 + timedelta(days=30, hours=1)).date().isoformat()
    assert warning["Subject"] == f"Qlik Sense: your Professional license will be released on {release_day}"
    text = warning.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "open any app in Qlik Sense before" in text and HUB in text
    [digest] = inbox.to(ADMIN)  # the user without an address: through the administrators
    assert "CORP\\nomail" in digest.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # the next day: no second warning (the same period of inactivity)
    assert evaluate(config, T0 + timedelta(days=24, hours=1))["jdoe"] == "keep"
    assert len(inbox.messages) == 2

    # at the threshold the notice has not run out: not released
    at_threshold = evaluate(config, T0 + timedelta(days=30))
    assert at_threshold["jdoe"] == "notice-pending" and release_day in at_threshold["jdoe:reason"]
    assert holders(sim) == {"jdoe", "nomail"}

    # after it: released, and told so
    after = evaluate(config, T0 + timedelta(days=30, hours=2))
    assert after["jdoe"] == after["nomail"] == "release"
    assert holders(sim) == set()
    [notice] = [m for m in inbox.to("jdoe@corp.example") if "was released" in str(m["Subject"])]
    assert notice["Subject"] == "Qlik Sense: your Professional license was released"
    records = wiring.audit_sink(wiring.load_config(config)).records_for_user("CORP", "jdoe")
    sends = [(r["kind"], r.get("template"), r.get("status") or r.get("outcome")) for r in records
             if r["kind"] in ("warning", "mail")]
    assert ("warning", "warning", "sent") in sends and ("mail", "release", "sent") in sends

    # reinstated through the API: the type we released, audited with the caller
    app = create_app(Backend(lambda: wiring.load_config(config)))
    path = "/v4/licenses/user/" + quote("CORP\\jdoe", safe="")
    status, body = call(app, "POST", f"{path}/reinstate")
    assert status == 200 and body["licenseType"] == "professional" and body["undoes"]
    assert body["caller"] == "arn:aws:iam::123456789012:user/qlik-admin"
    assert "jdoe" in holders(sim)
    status, body = call(app, "POST", f"{path}/reinstate")
    assert status == 409 and "already holds" in body["message"]
    status, body = call(app, "POST", "/v4/licenses/user/" + quote("CORP\\nomail", safe="") + "/reinstate",
                        {"licenseType": "analyzer"})  # not released by us as analyzer: allocated anyway
    assert status == 200 and body["undoes"] is None


def test_a_user_who_comes_back_after_the_warning_is_never_released_on_it(
        sim_factory: Callable[..., Any], write_config: Callable[..., Path], smtp: tuple[int, Inbox],
        table: str) -> None:
    port, inbox = smtp
    sim = sim_factory(scenario={"licenses": {"professional": {"total": 5}},
                                "users": [person("back", "b@corp.example")]})
    config = write_config(sim, policy(port))
    assert evaluate(config, T0 + timedelta(days=23, hours=1))["back"] == "warn"
    came_back = T0 + timedelta(days=25)
    sim.patch_users([{"userDirectory": "CORP", "userId": "back", "lastUsed": stamp(came_back)}])

    assert evaluate(config, T0 + timedelta(days=31))["back"] == "keep"
    # long after: a new period of inactivity, past its threshold, still needs its own warning first
    later = evaluate(config, came_back + timedelta(days=31))
    assert later["back"] == "warn" and "not warned for this inactivity period" in later["back:reason"]
    assert holders(sim) == {"back"}
    assert len(inbox.to("b@corp.example")) == 2


def test_switching_warnings_on_releases_nobody_on_the_first_run_and_ses_sends_the_warning(
        sim_factory: Callable[..., Any], write_config: Callable[..., Path], table: str) -> None:
    ses = boto3.client("ses", region_name="eu-west-1")
    ses.verify_email_identity(EmailAddress=SENDER)
    sim = sim_factory(scenario={"licenses": {"professional": {"total": 5}},
                                "users": [person("idle", "idle@corp.example")]})
    config = write_config(sim, policy(via="ses"))
    first = evaluate(config, REAL_NOW)  # 60 days idle, never warned
    assert first["idle"] == "warn" and holders(sim) == {"idle"}
    from moto.ses.models import ses_backends

    account = boto3.client("sts", region_name="eu-west-1").get_caller_identity()["Account"]
    [sent] = ses_backends[account]["eu-west-1"].sent_messages
    assert sent.destinations["ToAddresses"] == ["idle@corp.example"] and "will be released on" in sent.subject
    assert evaluate(config, REAL_NOW + timedelta(days=3))["idle"] == "notice-pending"
    assert evaluate(config, REAL_NOW + timedelta(days=7, minutes=1))["idle"] == "release"

    # holds in DynamoDB: the HOLDS partition holds exactly the holds set
    audit = wiring.audit_sink(wiring.load_config(config))
    app = create_app(Backend(lambda: wiring.load_config(config)))
    path = "/v4/licenses/user/" + quote("CORP\\idle", safe="")
    until = (REAL_NOW + timedelta(days=30)).date().isoformat()
    assert call(app, "PUT", f"{path}/hold", {"until": until})[0] == 200
    assert [(h["userId"], h["until"]) for h in audit.holds()] == [("idle", until)]
    assert call(app, "DELETE", f"{path}/hold")[0] == 200
    assert audit.holds() == []
    assert [r["action"] for r in audit.records_for_user("CORP", "idle") if r["kind"] == "hold-change"] == \
        ["set", "remove"]


def run_cli(*args: str, audit: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN", "AWS_ENDPOINT_URL")}
    return subprocess.run([sys.executable, "-m", "butler", *args, "--audit-file", str(audit)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=60)


def test_holds_protect_until_their_date_and_not_after(sim_factory: Callable[..., Any],
                                                      write_config: Callable[..., Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)
    sim = sim_factory(scenario={"licenses": {"professional": {"total": 5}, "analyzer": {"total": 5}},
                                "users": [person("away", None), person("other", None),
                                          {"userDirectory": "CORP", "userId": "free"}]})
    config = write_config(sim, {"licenseManagement": {"enable": True, "maxReleasePercent": 100,
                                                      "abortAbovePercent": 100}})
    audit = tmp_path / "audit.jsonl"
    until = (REAL_NOW + timedelta(days=10)).date().isoformat()
    done = run_cli("hold", "CORP\\away", "--until", until, "--reason", "parental leave", "--config", str(config),
                   audit=audit)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["until"] == until
    listed = run_cli("holds", "--config", str(config), audit=audit)
    assert [h["userId"] for h in json.loads(listed.stdout)] == ["away"]
    assert run_cli("hold", "CORP\\away", "--until", "2001-01-01", "--config", str(config),
                   audit=audit).returncode == 2
    assert run_cli("hold", "CORP\\nobody", "--until", until, "--config", str(config), audit=audit).returncode == 1

    def decide(at: datetime) -> Any:
        report = wiring.run_evaluate(wiring.load_config(config), audit_file=str(audit), now=at, dry_run=True)
        return {d.user_id: d for d in report.decisions}

    before = decide(REAL_NOW + timedelta(days=9))["away"]
    assert before.action == "protected"
    assert before.reason.startswith(f"hold: until {until} by cli:") and before.reason.endswith("(parental leave)")
    assert decide(REAL_NOW + timedelta(days=10, hours=1))["away"].action == "would-release"

    # the API shows it, lifts it, and sets it again; each change audited with its caller
    app = create_app(Backend(lambda: wiring.load_config(config), audit_file=str(audit)))
    path = "/v4/licenses/user/" + quote("CORP\\away", safe="")
    status, body = call(app, "GET", path)
    assert status == 200 and body["hold"]["until"] == until and body["protected"] is True
    assert call(app, "DELETE", f"{path}/hold")[0] == 200
    assert call(app, "DELETE", f"{path}/hold")[0] == 404
    assert decide(REAL_NOW)["away"].action == "would-release"
    status, body = call(app, "PUT", f"{path}/hold", {"until": until, "reason": "project on pause"})
    assert status == 200 and body["by"] == "arn:aws:iam::123456789012:user/qlik-admin"
    assert call(app, "PUT", f"{path}/hold", {"until": "yesterday"})[0] == 400
    assert decide(REAL_NOW)["away"].reason.endswith("(project on pause)")
    assert run_cli("hold", "CORP\\away", "--remove", "--config", str(config), audit=audit).returncode == 0
    changes = [r for r in json.loads("[" + ",".join(audit.read_text().splitlines()) + "]")
               if r["kind"] == "hold-change"]
    assert [c["action"] for c in changes] == ["set", "remove", "set", "remove"]
    assert changes[1]["actor"].startswith("arn:aws:iam::") and changes[3]["actor"].startswith("cli:")

    # reinstate from the command line: nothing of ours to undo -> exit 1 with the reason; a named type allocates
    refused = run_cli("reinstate", "CORP\\free", "--config", str(config), audit=audit)
    assert refused.returncode == 1 and "no release" in refused.stderr
    held = run_cli("reinstate", "CORP\\away", "--config", str(config), audit=audit)
    assert held.returncode == 1 and "already holds a professional" in held.stderr
    anyway = run_cli("reinstate", "CORP\\free", "--license-type", "analyzer", "--config", str(config), audit=audit)
    assert anyway.returncode == 0 and json.loads(anyway.stdout)["undoes"] is None
    live = wiring.run_evaluate(wiring.load_config(config), audit_file=str(audit), now=REAL_NOW)
    assert {d.user_id for d in live.decisions if d.action == "release"} == {"away", "other"}
    back = run_cli("reinstate", "CORP\\away", "--config", str(config), audit=audit)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["licenseType"] == "professional"
    again = run_cli("reinstate", "CORP\\away", "--license-type", "professional", "--config", str(config), audit=audit)
    assert again.returncode == 1 and "already holds" in again.stderr
