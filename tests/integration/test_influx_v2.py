"""The InfluxDB 2.x writer (influxdb-client's synchronous write API): the exact request, errors, the token secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from butler import wiring
from butler.config import InfluxDb, parse
from butler.sinks.influx import InfluxV2Writer, InfluxWriteError, make_point, token_from_secret, writer_from_config
from tests.integration.conftest import CaptureServer

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "tok-0123456789abcdef=="


def settings(port: int, **extra: Any) -> InfluxDb:
    return InfluxDb.model_validate({"enable": True, "version": 2, "host": "127.0.0.1", "port": port,
                                    "org": "qlik ops", "bucket": "butler", "token": TOKEN, **extra})


def usage_point(total: int = 5) -> Any:
    return make_point("license_usage", {"license_type": "professional"}, {"total": total}, NOW)


def test_write_request_is_exactly_the_v2_api(capture_server: CaptureServer) -> None:
    writer = writer_from_config(settings(capture_server.port), default_tags={"site": "eu-1"})
    assert isinstance(writer, InfluxV2Writer)
    assert writer.write([usage_point()]) == 1
    writer.close()
    (request,) = capture_server.requests
    assert request.path == "/api/v2/write"
    assert request.query == {"org": ["qlik ops"], "bucket": ["butler"], "precision": ["s"]}
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.body == b"license_usage,license_type=professional,site=eu-1 total=5i 1780315200"


def test_batches_are_separate_requests(capture_server: CaptureServer) -> None:
    writer = writer_from_config(settings(capture_server.port, batchSize=2))
    assert writer.write([usage_point(n) for n in range(5)]) == 5
    assert [len(r.body.splitlines()) for r in capture_server.requests] == [2, 2, 1]


def test_a_refused_write_raises_without_the_token(capture_server: CaptureServer) -> None:
    capture_server.status = 401
    capture_server.body = b'{"code":"unauthorized","message":"unauthorized access"}'
    writer = writer_from_config(settings(capture_server.port))
    with pytest.raises(InfluxWriteError, match="HTTP 401 unauthorized access") as caught:
        writer.write([usage_point()])
    assert TOKEN not in str(caught.value)
    assert caught.value.written == 0


def test_a_slow_server_is_a_write_error(capture_server: CaptureServer) -> None:
    capture_server.delay = 2.0
    writer = writer_from_config(settings(capture_server.port, timeoutSeconds=0.3))
    with pytest.raises(InfluxWriteError, match=r"no answer within 0\.3 s"):
        writer.write([usage_point()])


@pytest.mark.parametrize(("secret", "token"), [(TOKEN, TOKEN), (json.dumps({"token": TOKEN}), TOKEN)])
def test_token_secret_formats(secret: str, token: str) -> None:
    assert token_from_secret("butler/influx", secret) == token


@pytest.mark.parametrize("secret", ["", "{}", '{"token": 5}'])
def test_bad_token_secrets_name_the_secret_not_the_content(secret: str) -> None:
    with pytest.raises(InfluxWriteError, match="secret butler/influx"):
        token_from_secret("butler/influx", secret)


@pytest.fixture
def aws(mocked_aws: None) -> None:
    """AWS from moto (tests/conftest.py)."""


def test_wiring_reads_the_token_from_secrets_manager(aws: None, capture_server: CaptureServer) -> None:
    boto3.client("secretsmanager").create_secret(Name="butler/influx-token", SecretString=json.dumps({"token": TOKEN}))
    config = parse({"Butler": {"influxDb": {"enable": True, "version": 2, "host": "127.0.0.1",
                                            "port": capture_server.port, "org": "o", "bucket": "b",
                                            "tokenSecretId": "butler/influx-token"}}})
    writer = wiring.influx_writer(config)
    assert writer is not None
    writer.write([usage_point()])
    assert capture_server.requests[0].headers["Authorization"] == f"Token {TOKEN}"


def test_wiring_gives_no_writer_when_influxdb_is_disabled() -> None:
    assert wiring.influx_writer(parse({"Butler": {"influxDb": {"enable": False, "version": 2}}})) is None
