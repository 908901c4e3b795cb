"""Tracing and the handlers' metrics (butler.observability): subsegments around QRS, DynamoDB and InfluxDB calls, the
handlers wrapped by Powertools' Tracer without their responses, tracing off (and the X-Ray SDK never imported)
outside Lambda, and the api's request count."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from butler import observability, wiring
from butler.config import ConfigError
from butler.observability import subsegment, traced, tracing_enabled
from butler.sinks.audit import DynamoDbAuditSink, create_table
from butler.sinks.influx import InfluxWriter, make_point
from tests.support.lambda_harness import Context, load_handler

ROOT = Path(__file__).parents[2]
FUNCTIONS = ("collect", "evaluate", "api")


@dataclass
class Segment:
    name: str
    annotations: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations[key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata[key] = value


@dataclass
class Recorder:
    """A tracer provider that keeps the subsegments opened, in order."""

    segments: list[Segment] = field(default_factory=list)

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[Segment]:
        self.segments.append(segment := Segment(str(name)))
        yield segment

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Tracing on, into a Recorder: the package's tracer enabled, its provider replaced."""
    recorder = Recorder()
    tracer = observability.get_tracer()
    monkeypatch.setattr(tracer, "provider", recorder)
    monkeypatch.setattr(tracer, "disabled", False)
    return recorder


def test_tracing_follows_powertools_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE", "POWERTOOLS_TRACE_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing_enabled()  # tests, the CLI
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    assert tracing_enabled()
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert not tracing_enabled()
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    assert not tracing_enabled()


def test_off_nothing_is_opened_and_the_tracer_is_disabled() -> None:
    assert observability.get_tracer().disabled  # LAMBDA_TASK_ROOT is not set in the tests
    with subsegment("qrs GET /qrs/about") as opened:
        assert opened is None
    assert traced("x")(lambda a, b=1: (a, b))(2, b=3) == (2, 3)


def _python(code: str, **env: str) -> str:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_", "POWERTOOLS_", "_X_AMZN"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, **env, "AWS_DEFAULT_REGION": "eu-west-1"}, check=True)
    return done.stdout.strip()


def test_the_x_ray_sdk_is_imported_only_when_tracing_is_on() -> None:
    load = ("import sys; from tests.support.lambda_harness import load_handler; app = load_handler('evaluate'); "
            "from butler.observability import tracer; import butler.cli, butler.wiring; "
            "print(tracer.disabled, 'aws_xray_sdk.core' in sys.modules, type(tracer.provider).__name__)")
    assert _python(load) == "True False _Untraced"
    assert _python(load, LAMBDA_TASK_ROOT="/var/task") == "False True AsyncAWSXRayRecorder"


def test_qrs_requests_are_subsegments_without_query_string_or_ids(recorder: Recorder, sim_factory: Callable[..., Any],
                                                                  write_config: Callable[..., Path]) -> None:
    sim = sim_factory(users=3)
    client = wiring.qrs_client(wiring.load_config(write_config(sim), env={}))
    try:
        client.about()
        client.allocations("professional", "user.userId eq 'x'")
        allocation_id = client.allocations("analyzer")[0].id
        client.delete_allocation("analyzer", allocation_id)
    finally:
        client.close()
    assert recorder.names == ["qrs GET /qrs/about", "qrs GET /qrs/license/professionalaccesstype/full",
                              "qrs GET /qrs/license/analyzeraccesstype/full",
                              "qrs DELETE /qrs/license/analyzeraccesstype/{id}"]
    assert not [s for s in recorder.segments if s.annotations or s.metadata]


def test_dynamodb_audit_writes_and_queries_are_subsegments(recorder: Recorder, mocked_aws: None) -> None:
    create_table("butler-audit")
    audit = DynamoDbAuditSink("butler-audit")
    run = {"kind": "run", "runId": "r1", "startedAt": "2026-01-05T02:00:00Z", "status": "running"}
    audit.write(run)
    audit.write_many([{**run, "status": "finished"}])
    assert [r["status"] for r in audit.records_for_run("r1")] == ["finished"]
    assert recorder.names == ["dynamodb write", "dynamodb write", "dynamodb query"]


def test_influxdb_writes_are_subsegments(recorder: Recorder) -> None:
    sent: list[str] = []

    class Sent(InfluxWriter):
        def _write_lines(self, lines: list[str], precision: str) -> None:
            sent.extend(lines)

        def close(self) -> None:
            pass

    writer = Sent("http://influx:8086/db")
    assert writer.write([make_point("license_usage", {"license_type": "analyzer"}, {"total": 20})]) == 1
    assert recorder.names == ["influxdb write"] and len(sent) == 1


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handlers_are_traced_without_their_response(function: str, recorder: Recorder,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUTLER_CONFIG", str(ROOT / "no-such-config.yaml"))
    event = json.loads((ROOT / "tests/integration/api/events/rest_proxy_iam.json").read_text()) \
        if function == "api" else {}
    handler = load_handler(function).handler
    if function == "api":
        assert handler(event, Context())["statusCode"] >= 500  # the api answers; the others raise
    else:
        with pytest.raises(ConfigError, match=r"no-such-config\.yaml"):
            handler(event, Context())
    (segment,) = recorder.segments
    assert segment.name == "## handler"
    assert set(segment.annotations) == {"ColdStart", "Service"}
    assert "handler response" not in segment.metadata


def test_the_api_counts_requests_by_route_and_status_class(mocked_aws: None, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BUTLER_CONFIG", str(ROOT / "no-such-config.yaml"))
    event = json.loads((ROOT / "tests/integration/api/events/rest_proxy_iam.json").read_text())
    capsys.readouterr()
    answer = load_handler("api").handler(event, Context())
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (blob,) = [b for b in blobs if "ApiRequests" in b]
    assert blob["ApiRequests"] == [1.0] and blob["service"] == observability.SERVICE
    assert blob["Route"] == f"{event['httpMethod']} {event['resource']}"
    assert blob["StatusClass"] == f"{answer['statusCode'] // 100}xx"
    (dimensions,) = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sorted(dimensions) == ["Route", "StatusClass", "service"]
