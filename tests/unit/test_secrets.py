"""Secrets never appear in messages: a Secrets Manager read fails as one line naming the secret and the cause, and
an InfluxDB error text carries no password, token, Authorization header or credential query parameter."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base
from botocore.stub import Stubber
from moto import mock_aws

from butler import wiring
from butler.config import InfluxDb
from butler.secrets import SecretError, get_secret
from butler.sinks.influx import InfluxWriteError, make_point, redact, writer_from_config

PASSWORD, TOKEN = "s3cr3t-Pa55/word", "tok-8c1f0e7e2b9a4d6f"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No AWS settings from the machine (files, endpoint, metadata), fake credentials, a region; no cached client
    (Powertools keeps its provider, and the boto3 client in it, in a module dict: emptied before and after)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    base.DEFAULT_PROVIDERS.clear()
    yield monkeypatch
    base.DEFAULT_PROVIDERS.clear()


def failure(secret_id: str) -> str:
    with pytest.raises(SecretError) as error:
        get_secret(secret_id)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_secret_is_read_and_cached(aws_env: pytest.MonkeyPatch) -> None:
    with mock_aws():
        client = boto3.client("secretsmanager")
        client.create_secret(Name="butler/influxdb", SecretString=PASSWORD)
        assert get_secret("butler/influxdb") == PASSWORD
        client.update_secret(SecretId="butler/influxdb", SecretString="rotated")
        assert get_secret("butler/influxdb") == PASSWORD  # cached for max_age


def test_not_found(aws_env: pytest.MonkeyPatch) -> None:
    with mock_aws():
        assert failure("butler/missing") == "secret butler/missing: not found (ResourceNotFoundException)"


def test_a_binary_secret_is_refused(aws_env: pytest.MonkeyPatch) -> None:
    with mock_aws():
        boto3.client("secretsmanager").create_secret(Name="butler/binary", SecretBinary=b"\x00\x01")
        assert failure("butler/binary") == "secret butler/binary: holds a binary value, not text (SecretString)"


def test_no_region(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.delenv("AWS_REGION")
    aws_env.delenv("AWS_DEFAULT_REGION")
    assert failure("butler/qrs-certificates") == \
        "secret butler/qrs-certificates: no AWS region configured (set AWS_REGION)"


def test_no_credentials(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    assert failure("butler/qrs-certificates") == "secret butler/qrs-certificates: no AWS credentials"


def test_access_denied(aws_env: pytest.MonkeyPatch) -> None:
    client = boto3.client("secretsmanager")
    stubber = Stubber(client)
    stubber.add_client_error("get_secret_value", service_error_code="AccessDeniedException",
                             service_message="User: arn:aws:sts::123456789012:assumed-role/x is not authorized")
    stubber.activate()
    aws_env.setitem(base.DEFAULT_PROVIDERS, "secrets", parameters.SecretsProvider(boto3_client=client))
    assert failure("butler/qrs-certificates") == "secret butler/qrs-certificates: access denied (AccessDeniedException)"


def test_endpoint_unreachable(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    aws_env.setenv("AWS_MAX_ATTEMPTS", "1")
    aws_env.setenv("AWS_RETRY_MODE", "standard")
    assert failure("butler/qrs-certificates").startswith("secret butler/qrs-certificates: Secrets Manager is "
                                                         "unreachable")


def test_wiring_delegates(aws_env: pytest.MonkeyPatch) -> None:
    with mock_aws(), pytest.raises(SecretError, match=r"^secret butler/nope: not found"):
        wiring.get_secret("butler/nope")


# --- InfluxDB error texts ----------------------------------------------------------------------------------------


class EchoServer:
    """Answers every request with ``status`` and a body quoting the request line and its headers, as a careless
    proxy or server error page does."""

    def __init__(self, status: int) -> None:
        owner = self
        self.status = status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                quoted = f"{self.requestline} " + " ".join(f"{k}: {v}" for k, v in self.headers.items())
                body = json.dumps({"error": f"refused {quoted}", "message": f"refused {quoted}"}).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer(401)
    yield server
    server.server.shutdown()
    server.server.server_close()


def failed_write(settings: InfluxDb, token: str | None = None) -> str:
    writer = writer_from_config(settings, token=token)
    try:
        with pytest.raises(InfluxWriteError) as error:
            writer.write([make_point("license_usage", {"license_type": "professional"}, {"total": 1})])
    finally:
        with contextlib.suppress(Exception):
            writer.close()
    return str(error.value)


def test_a_v1_write_error_carries_no_credentials(echo: EchoServer) -> None:
    settings = InfluxDb(enable=True, host="127.0.0.1", port=echo.port, username="butler", password=PASSWORD)
    message = failed_write(settings)
    assert message.startswith(f"InfluxDB http://127.0.0.1:{echo.port} database butler_metrics refused the write: "
                              "HTTP 401 refused POST /write?db=butler_metrics")
    assert "Authorization: ***" in message  # the echo was there, its value is not
    for secret in (PASSWORD, "Pa55", "YnV0bGVyOnMzY3IzdC1QYTU1L3dvcmQ=", "Basic YnV0"):
        assert secret not in message


def test_a_v2_write_error_carries_no_token(echo: EchoServer) -> None:
    settings = InfluxDb(enable=True, version=2, host="127.0.0.1", port=echo.port, org="o", bucket="b", token=TOKEN)
    message = failed_write(settings)
    assert message.startswith(f"InfluxDB http://127.0.0.1:{echo.port} bucket b refused the write: HTTP 401 refused")
    assert TOKEN not in message and "8c1f0e7e" not in message


@pytest.mark.parametrize(("text", "gone"), [
    ("GET /query?db=x&u=butler&p=hunter2&q=SELECT", "hunter2"),
    ("GET /write?token=abcdef123456", "abcdef123456"),
    ("see http://butler:hunter2@influx:8086/write", "hunter2"),
    ('{"headers": {"Authorization": "Token abcdef123456"}}', "abcdef123456"),
    ("Authorization=Bearer abcdef123456", "abcdef123456"),
])
def test_credential_shapes_are_redacted(text: str, gone: str) -> None:
    assert gone not in redact(text)


def test_known_credentials_are_redacted_in_any_encoding() -> None:
    assert redact("pw=a%2Fb c a/b d a%2Fb", ["a/b"]) == "pw=*** c *** d ***"
