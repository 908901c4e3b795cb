"""Failures of the outside world end the command with one line and exit 1, never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import set_initial_no_auth_action_count

from butler import wiring
from butler.cli import main
from butler.qrs import QrsUnreachable
from butler.qrs.errors import QrsBadAnswer
from butler.secrets import SecretError
from butler.sinks.audit import TABLE_SCHEMA
from butler.sinks.influx import InfluxWriteError
from butler_dev.moto_server import moto_endpoint as moto_server_env


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "table not found"}}, "PutItem"),
        QrsUnreachable("GET /qrs/license/professionalaccesstype/full: cannot reach https://qlik:4242"),
        InfluxWriteError("InfluxDB write failed: HTTP 500"),
        SecretError("secret butler/qrs-certificates: access denied (AccessDeniedException)"),
        QrsBadAnswer("GET /qrs/license/professionalaccesstype/full", "not JSON"),
    ],
)
def test_operational_errors_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], error: Exception) -> None:
    config = tmp_path / "butler.yaml"
    config.write_text("Butler:\n  licenseManagement:\n    enable: true\n")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(wiring, "run_evaluate", fail)
    assert main(["evaluate", "--config", str(config), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and len(captured.err.splitlines()) == 1
    assert "Traceback" not in captured.err


def test_a_bug_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "butler.yaml"
    config.write_text("Butler: {}\n")

    def bug(*args: Any, **kwargs: Any) -> None:
        raise KeyError("programming error")

    monkeypatch.setattr(wiring, "run_evaluate", bug)
    with pytest.raises(KeyError):
        main(["evaluate", "--config", str(config)])


def test_audit_user_needs_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "butler.yaml"
    config.write_text("Butler: {}\n")
    assert main(["audit", "--config", str(config), "--user", "jdoe", "--audit-file", str(tmp_path / "a")]) == 2
    assert "DIRECTORY\\userid" in capsys.readouterr().err


# --- from a separate process, as an administrator runs them: one line on stderr, never a traceback -----------


def butler(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("AUDIT_TABLE", "LOCK_TABLE", "AWS_ENDPOINT_URL")}
    return subprocess.run([sys.executable, "-m", "butler", *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})}, cwd=cwd)


def one_line_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "butler.yaml"
    path.write_text("Butler: {}\n")
    return path


def audit_file(folder: Path, releases: int) -> Path:
    """A JSON Lines audit trail of one run with ``releases`` released allocations, all within the last day."""
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    records = [{"kind": "release-outcome", "runId": "run-1", "at": at, "actor": "test", "dryRun": False,
                "allocationId": str(uuid.UUID(int=n)), "licenseType": "professional", "userDirectory": "CORP",
                "userId": f"user{n}", "action": "release", "reason": "inactive"} for n in range(releases)]
    path = folder / "audit.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("port", ["80000", "-1", "65536"])
def test_serve_on_an_impossible_port_is_exit_2_naming_it(config: Path, port: str) -> None:
    message = one_line_failure(butler("serve", "--config", str(config), "--port", port), 2)
    assert f"--port {port}" in message


def test_serve_on_a_taken_port_is_exit_1_naming_it(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = one_line_failure(butler("serve", "--config", str(config), "--port", str(port)), 1)
    assert f"127.0.0.1:{port}" in message and "in use" in message


def test_audit_without_its_file_says_so(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "audit.jsonl"
    message = one_line_failure(butler("audit", "--config", str(config), "--audit-file", str(missing)), 1)
    assert f"no audit file at {missing}" in message
    default = one_line_failure(butler("audit", "--config", str(config), "--days", "3", cwd=tmp_path), 1)
    assert str(tmp_path / "butler-audit.jsonl") in default  # the default file, named where it was looked for


def test_audit_of_an_unknown_run_says_there_are_no_records(config: Path, tmp_path: Path) -> None:
    trail = audit_file(tmp_path, 2)
    message = one_line_failure(butler("audit", "--config", str(config), "--audit-file", str(trail), "--run", "r9"), 1)
    assert "no audit records for run r9" in message
    known = butler("audit", "--config", str(config), "--audit-file", str(trail), "--run", "run-1")
    assert known.returncode == 0 and len(known.stdout.splitlines()) == 2


def test_audit_of_a_file_that_is_not_json_lines_says_so(config: Path, tmp_path: Path) -> None:
    trail = audit_file(tmp_path, 1)
    trail.write_text(trail.read_text() + '{"kind": "release-outc')  # a write cut short
    message = one_line_failure(butler("audit", "--config", str(config), "--audit-file", str(trail)), 1)
    assert f"{trail}: a line is not JSON" in message


@pytest.mark.parametrize("days", ["0", "-3", "nan", "inf", "1e9"])
def test_audit_days_must_be_a_positive_number(config: Path, tmp_path: Path, days: str) -> None:
    trail = audit_file(tmp_path, 1)
    message = one_line_failure(butler("audit", "--config", str(config), "--audit-file", str(trail), "--days", days), 2)
    assert "--days" in message


def test_a_reader_that_stops_early_ends_the_command_quietly(config: Path, tmp_path: Path) -> None:
    trail = audit_file(tmp_path, 3000)  # far more than a pipe buffer holds
    command = (f"set -o pipefail; {sys.executable} -m butler audit --config {config} --audit-file {trail} "
               f"--days 2 2>{tmp_path / 'stderr'} | head -1")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout)["userDirectory"] == "CORP"
    assert result.returncode == 1  # the output was not all delivered
    assert (tmp_path / "stderr").read_text() == ""


@pytest.fixture
def moto_endpoint() -> Iterator[dict[str, str]]:
    with moto_server_env() as env:
        yield env


def test_audit_from_a_missing_dynamodb_table_names_it(config: Path, moto_endpoint: dict[str, str]) -> None:
    result = butler("audit", "--config", str(config), "--run", "r1", env={**moto_endpoint, "AUDIT_TABLE": "gone"})
    message = one_line_failure(result, 1)
    assert message.startswith("error: DynamoDB table gone: Query: ResourceNotFoundException")


@set_initial_no_auth_action_count(3)  # the three set-up calls below; every later call is checked against IAM
def test_audit_refused_by_iam_names_the_table(config: Path, mocked_aws: None, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    setup = boto3.session.Session()
    setup.client("dynamodb").create_table(
        TableName="audit", **{k: v for k, v in TABLE_SCHEMA.items() if k != "TimeToLiveSpecification"})
    setup.client("iam").create_user(UserName="reader")  # no policy: may do nothing
    key = setup.client("iam").create_access_key(UserName="reader")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    monkeypatch.setenv("AUDIT_TABLE", "audit")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # the reader's credentials, not the set-up's
    assert main(["audit", "--config", str(config), "--user", "CORP\\jdoe"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("error: DynamoDB table audit: Query:") and "AccessDenied" in captured.err
