"""``python -m butler demo``: the whole pipeline on this machine, with nothing outside it.

A simulated 2,000-user Qlik Sense site (the QRS simulator over mutual TLS), a moto server holding the audit
table, the certificate secret and the notice topic, and Debian's InfluxDB when ``influxd`` is installed. The real
Lambda handlers are invoked with real EventBridge Scheduler and API Gateway event payloads (``events/``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import yaml

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
TABLE, SECRET, REGION = "butler-audit", "butler/qrs-certificates", "eu-west-1"


class Context:
    """The LambdaContext attributes Powertools reads."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
        self.aws_request_id = f"demo-{name}-{int(time.time() * 1000)}"


def say(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 100 - len(title)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_handler(name: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location(f"{name}_app", ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[..., Any] = module.handler
    return handler


def invoke(name: str, event: dict[str, Any]) -> Any:
    """Call a handler; EMF metric lines it prints are counted, not shown."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        result = load_handler(name)(event, Context(f"butler-{name}"))
    emf = [line for line in captured.getvalue().splitlines() if '"_aws"' in line]
    names = sorted({m["Name"] for line in emf for d in json.loads(line)["_aws"]["CloudWatchMetrics"]
                    for m in d["Metrics"]})
    if names:
        print(f"   (CloudWatch EMF metrics: {', '.join(names)})")
    return result


def api_event(method: str, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    """The recorded API Gateway REST proxy event (IAM auth), pointed at another route."""
    event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / "api-rest-proxy-iam.json").read_text()))
    route = "/v4/licenses/status" if path.endswith("/status") else "/v4/licenses/user/{userId}"
    event.update(httpMethod=method, path=path, resource=route, queryStringParameters=query or None,
                 multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
                 pathParameters=None if route.endswith("/status") else {"userId": path.rsplit("/", 1)[1]})
    event["requestContext"].update(httpMethod=method, resourcePath=route, path=f"/api{path}")
    return event


@contextlib.contextmanager
def aws(workdir: Path) -> Iterator[str]:
    """A moto server on loopback, with the environment pointing boto3 at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
                      AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo")  # noqa: S106 (moto)
    try:
        yield endpoint
    finally:
        server.stop()


@contextlib.contextmanager
def influxdb(workdir: Path) -> Iterator[str | None]:
    spec = importlib.util.spec_from_file_location("influxd_support", ROOT / "tests" / "support" / "influxd.py")
    if shutil.which("influxd") is None or spec is None or spec.loader is None:
        print("influxd is not installed: skipping the InfluxDB part (apt-get install influxdb brings it)")
        yield None
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    url, stop = module.start_influxd(workdir / "influxdb")
    module.create_database(url, "butler_metrics")
    try:
        yield url
    finally:
        stop()


def write_config(workdir: Path, influx_url: str | None) -> Path:
    host, port = (influx_url or "http://127.0.0.1:8086").removeprefix("http://").rsplit(":", 1)
    data = {"Butler": {
        "qrs": {"host": "127.0.0.1", "port": 4242, "secretId": SECRET},
        "influxDb": {"enable": influx_url is not None, "version": 1, "host": host, "port": int(port),
                     "database": "butler_metrics"},
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
    import boto3

    from butler.qrs.certs import secret_payload
    from butler.sinks.audit import create_table

    create_table(TABLE)
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=secret_payload(certs_dir))
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="butler-release-notices")["TopicArn"]
    queue = sqs.create_queue(QueueName="notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    os.environ.update(AUDIT_TABLE=TABLE, NOTIFY_TOPIC_ARN=topic, POWERTOOLS_METRICS_NAMESPACE="QlikLicenseButler")
    return str(queue)


def show_table(report: dict[str, Any], per_action: int = 4) -> None:
    summary = report.get("summary", {})
    print("   summary: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    if report.get("capExceeded"):
        print(f"   capExceeded: true (the breaker would stop a live run: {report.get('capReason')})")
    for action in ("would-release", "release", "deferred", "protected", "skip"):
        for d in [d for d in report.get("decisions", []) if d["action"] == action][:per_action]:
            user = f"{d['userDirectory']}\\{d['userId']}"
            print(f"   {user:<30} {d['licenseType']:<12} {d['daysInactive']!s:>7} days  {action:<13} {d['reason']}")


def run() -> int:
    from butler.cli import main as cli
    from qrs_simulator import Simulator

    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the demo prints its own story; warnings still show
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="butler-demo-"))
    say("1. A simulated Qlik Sense site: 2,000 users, QRS over mutual TLS")
    with Simulator(users=2000, seed=42, certs_dir=workdir / "certs") as sim, aws(workdir), \
            influxdb(workdir) as influx_url:
        print(f"   QRS simulator at {sim.url}; moto (DynamoDB, Secrets Manager, SNS) on loopback")
        queue = provision(Path(sim.certs_dir))
        config = write_config(workdir, influx_url)
        os.environ.update(BUTLER_CONFIG=str(config), QRS_PORT=str(sim.port))
        print(f"   config: {config} (certificates from the Secrets Manager secret {SECRET})")

        say("2. collect: the collect function on its EventBridge Scheduler event")
        collected = invoke("collect", json.loads((EVENTS / "scheduler-collect.json").read_text()))
        print("   " + json.dumps(collected)[:400])
        if influx_url:
            show_influx(influx_url)

        say("3. evaluate, dry run: who would be released, and why not the others")
        event = json.loads((EVENTS / "scheduler-evaluate.json").read_text())
        dry = run_cli_json(cli, ["evaluate", "--config", str(config), "--dry-run", "--json"])
        show_table(dry)

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
    shutil.rmtree(workdir, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.1f} s")
    return 0


def run_cli_json(cli: Callable[[list[str]], int], argv: list[str]) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(argv)
    if code != 0:
        raise RuntimeError(f"butler {' '.join(argv)} exited {code}")
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


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
    spec = importlib.util.spec_from_file_location("influxd_support", ROOT / "tests" / "support" / "influxd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    query = ('SELECT last("allocated") as allocated, last("available") as available FROM "license_usage" '
             'WHERE time >= now() - 24h GROUP BY "license_type"')
    print(f"   InfluxDB: {query}")
    for series in module.query(url, query, db="butler_metrics"):
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
