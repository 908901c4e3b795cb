"""``python -m butler demo``: the whole pipeline on this machine, with nothing outside it.

A simulated 2,000-user Qlik Sense site (the QRS simulator over mutual TLS), a moto server holding the audit
table, the certificate secret and the notice topic, and Debian's InfluxDB when ``influxd`` is installed. The real
Lambda handlers are invoked with real EventBridge Scheduler and API Gateway event payloads (``events/``), through
the same harness as the handler tests (``butler_dev.lambda_harness``).

Lives outside the Lambda layer; ``butler.cli`` imports it only when ``demo`` is asked for, and it never imports
``butler.cli``: it calls the services the CLI calls.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from butler_dev import influxd, notices_demo
from butler_dev.lambda_harness import Context, load_event, load_handler, notice_inbox
from butler_dev.moto_server import moto_server

TABLE, SECRET = "butler-audit", "butler/qrs-certificates"
INFLUX_DB = "butler_metrics"


def say(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 100 - len(title)))


def invoke(name: str, event: dict[str, Any]) -> Any:
    """Call a handler; EMF metric lines it prints are counted, not shown."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        result = load_handler(name).handler(event, Context.for_function(f"butler-{name}"))
    emf = [line for line in captured.getvalue().splitlines() if '"_aws"' in line]
    names = sorted({m["Name"] for line in emf for d in json.loads(line)["_aws"]["CloudWatchMetrics"]
                    for m in d["Metrics"]})
    if names:
        print(f"   (CloudWatch EMF metrics: {', '.join(names)})")
    return result


def api_event(method: str, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    """The recorded API Gateway REST proxy event (IAM auth), pointed at another route."""
    event = copy.deepcopy(load_event("api-rest-proxy-iam"))
    route = "/v4/licenses/status" if path.endswith("/status") else "/v4/licenses/user/{userId}"
    event.update(httpMethod=method, path=path, resource=route, queryStringParameters=query or None,
                 multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
                 pathParameters=None if route.endswith("/status") else {"userId": path.rsplit("/", 1)[1]})
    event["requestContext"].update(httpMethod=method, resourcePath=route, path=f"/api{path}")
    return event


@contextlib.contextmanager
def influxdb(workdir: Path) -> Iterator[str | None]:
    if influxd.influxd_binary() is None:
        print("influxd is not installed: skipping the InfluxDB part (apt-get install influxdb brings it)")
        yield None
        return
    url, stop = influxd.start_influxd(workdir / "influxdb")
    influxd.create_database(url, INFLUX_DB)
    try:
        yield url
    finally:
        stop()


def write_config(workdir: Path, influx_url: str | None) -> Path:
    host, port = (influx_url or "http://127.0.0.1:8086").removeprefix("http://").rsplit(":", 1)
    data = {"Butler": {
        "qrs": {"host": "127.0.0.1", "port": 4242, "secretId": SECRET},
        "influxDb": {"enable": influx_url is not None, "version": 1, "host": host, "port": int(port),
                     "database": INFLUX_DB},
        "licenseMonitoring": {"enable": True, "tags": {"site": "demo"},
                              "costs": {"professional": 40, "analyzer": 15}},
        "licenseManagement": {
            "enable": True, "dryRun": False, "logLevel": "warning",
            "release": {"professional": {"inactivityDays": 90}, "analyzer": {"inactivityDays": 120}},
            "quarantine": {"gracePeriod": 7},
            "exclusions": {"tags": ["VIP-User", "Always-Licensed"], "userDirectories": ["SERVICE_ACCOUNTS"],
                           "customProperties": [{"name": "LicenseProtection", "value": "Keep"}]},
            "maxReleasesPerRun": 100, "maxReleasePercent": 25, "abortAbovePercent": 10,
        },
    }}
    path = workdir / "butler.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def provision(certs_dir: Path) -> str:
    """The stack's AWS resources in moto: the audit table, the certificate secret, the notice topic (with a queue
    subscribed to read the notices back); returns that queue's URL."""
    import boto3

    from butler.qrs.certs import secret_payload
    from butler.sinks.audit import create_table

    create_table(TABLE)
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=secret_payload(certs_dir))
    topic, queue = notice_inbox("butler-release-notices", "notices")
    os.environ.update(AUDIT_TABLE=TABLE, NOTIFY_TOPIC_ARN=topic, POWERTOOLS_METRICS_NAMESPACE="QlikLicenseButler")
    return queue


def show_table(report: dict[str, Any], per_action: int = 4) -> None:
    summary = report.get("summary", {})
    print("   summary: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    if report.get("capExceeded"):
        print(f"   capExceeded: true (the breaker would stop a live run: {report.get('capReason')})")
    for action in ("would-release", "release", "deferred", "protected", "skip"):
        for d in [d for d in report.get("decisions", []) if d["action"] == action][:per_action]:
            user = f"{d['userDirectory']}\\{d['userId']}"
            print(f"   {user:<30} {d['licenseType']:<12} {d['daysInactive']!s:>7} days  {action:<13} {d['reason']}")


def dry_run(config: Path) -> dict[str, Any]:
    """``butler evaluate --dry-run --json``, through the services the CLI calls."""
    from butler.wiring import cli_actor, load_config, run_evaluate

    report: dict[str, Any] = run_evaluate(load_config(config), dry_run=True, actor=cli_actor()).to_json()
    return report


def run() -> int:
    from qrs_simulator import Simulator

    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the demo prints its own story; warnings still show
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="butler-demo-"))
    say("1. A simulated Qlik Sense site: 2,000 users, QRS over mutual TLS")
    with Simulator(users=2000, seed=42, certs_dir=workdir / "certs") as sim, moto_server(), \
            influxdb(workdir) as influx_url:
        print(f"   QRS simulator at {sim.url}; moto (DynamoDB, Secrets Manager, SNS) on loopback")
        queue = provision(Path(sim.certs_dir))
        config = write_config(workdir, influx_url)
        os.environ.update(BUTLER_CONFIG=str(config), QRS_PORT=str(sim.port))
        print(f"   config: {config} (certificates from the Secrets Manager secret {SECRET})")

        say("2. collect: the collect function on its EventBridge Scheduler event")
        collected = invoke("collect", load_event("scheduler-collect"))
        print("   " + json.dumps(collected)[:400])
        if influx_url:
            show_influx(influx_url)

        say("3. evaluate, dry run: who would be released, and why not the others")
        event = load_event("scheduler-evaluate")
        show_table(dry_run(config))

        say("4. evaluate, live, with a breaker set to 10%: more candidates than that look like bad data")
        result = invoke("evaluate", event)
        print(f"   status: {result.get('status')}  {result.get('aborted') or ''}")

        say("5. evaluate, live, breaker at 90%: the throttles release the 100 longest idle, the rest are deferred")
        raise_breaker(config)
        result = invoke("evaluate", event)
        print(f"   status: {result.get('status')}  summary: {result.get('summary')}")
        show_notices(queue)

        say("6. the /v4 API through the api function (API Gateway REST proxy events, IAM caller)")
        status = invoke("api", api_event("GET", "/v4/licenses/status"))
        print(f"   GET /v4/licenses/status -> {status['statusCode']}: {status['body'][:300]}")
        holder = pick_holder(sim)
        target = quote(f"{holder['userDirectory']}\\{holder['userId']}", safe="")
        info = invoke("api", api_event("GET", f"/v4/licenses/user/{target}"))
        print(f"   GET /v4/licenses/user/{target} -> {info['statusCode']}: {info['body'][:400]}")
        refused = invoke("api", api_event("DELETE", f"/v4/licenses/user/{target}"))
        print(f"   DELETE /v4/licenses/user/{target} -> {refused['statusCode']}: {refused['body'][:300]}")
        deleted = invoke("api", api_event("DELETE", f"/v4/licenses/user/{target}", {"force": "true"}))
        print(f"   DELETE /v4/licenses/user/{target}?force=true -> {deleted['statusCode']}: {deleted['body'][:400]}")

        say("7. the audit trail, read back from DynamoDB")
        show_audit()

        say("8. tell users first: a warning, the notice period, the release and its notice, a reinstatement")
        notices_demo.run(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.1f} s")
    return 0


def raise_breaker(config: Path) -> None:
    data = yaml.safe_load(config.read_text())
    data["Butler"]["licenseManagement"].update(abortAbovePercent=90)
    config.write_text(yaml.safe_dump(data, sort_keys=False))


def pick_holder(sim: Any) -> dict[str, Any]:
    """A VIP-tagged user who still holds a license, to show the 409 and a forced release."""
    state = sim_json(sim, "/__sim/state")
    vip = {u["id"] for u in state["users"] if any(t["name"] == "VIP-User" for t in u["tags"] or [])}
    held = [a["user"] for a in state["allocations"] if not a["quarantined"]]
    return dict(next((u for u in held if u["id"] in vip), held[0]))


def sim_json(sim: Any, path: str) -> Any:
    import requests

    return requests.get(f"{sim.url}{path}", cert=sim.client_cert, verify=sim.ca_file, timeout=30).json()


def show_influx(url: str) -> None:
    query = ('SELECT last("allocated") as allocated, last("available") as available FROM "license_usage" '
             'WHERE time >= now() - 24h GROUP BY "license_type"')
    print(f"   InfluxDB: {query}")
    for series in influxd.query(url, query, db=INFLUX_DB):
        values = dict(zip(series["columns"], series["values"][0], strict=False))
        print(f"     {series['tags']['license_type']:<18} allocated={values['allocated']} "
              f"available={values['available']}")


def show_notices(queue: str) -> None:
    import boto3

    messages = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=3).get("Messages", [])
    for message in messages[:2]:
        body = json.loads(message["Body"])
        print(f"   SNS notice: {body.get('Subject')}: {body.get('Message', '')[:160]!r}")


def show_audit() -> None:
    import boto3

    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE)
    deserialize = boto3.dynamodb.types.TypeDeserializer().deserialize
    items = [{k: deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]
    kinds: dict[str, int] = {}
    for item in items:
        kinds[str(item.get("kind"))] = kinds.get(str(item.get("kind")), 0) + 1
    print("   records by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    releases = [i for i in items if i.get("kind") == "release-outcome"][:3]
    for item in releases:
        print(f"   {item.get('at')} {item.get('actor')}: {item.get('userDirectory')}\\{item.get('userId')} "
              f"{item.get('licenseType')} -> {item.get('action')} ({item.get('reason')})")
    api = [i for i in items if str(i.get("actor", "")).startswith("arn:aws:iam")][:1]
    for item in api:
        print(f"   by the API caller {item.get('actor')}: {item.get('kind')} {item.get('action')}")


if __name__ == "__main__":
    sys.exit(run())
