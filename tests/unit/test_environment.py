"""The functions' environment (butler.environment): typed, defaulted, and a bad variable named in one line, by the
model, the wiring, the CLI and each handler's first invocation."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from butler import wiring
from butler.cli import EXIT_CONFIG, main
from butler.config import ConfigError, load
from butler.environment import VARIABLES, Environment, InvalidEnvironment, environment
from butler.observability import logger
from tests.support.lambda_harness import Context, load_handler

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "config" / "butler.yaml"
NOT_A_NUMBER = "input should be a valid integer, unable to parse string as an integer"
BAD_RETENTION = "environment variable AUDIT_RETENTION_DAYS='-1': input should be greater than or equal to 1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_every_variable_is_optional_with_its_default() -> None:
    env = Environment.from_mapping({})
    assert env.butler_config == "config/butler.yaml"
    assert env.model_dump() == {"butler_config": "config/butler.yaml", "qrs_host": None, "qrs_port": None,
                                "qrs_secret_id": None, "qrs_server_name": None, "audit_table": None,
                                "audit_retention_days": None, "lock_table": None, "notify_topic_arn": None}
    assert set(VARIABLES) == {"BUTLER_CONFIG", "QRS_HOST", "QRS_PORT", "QRS_SECRET_ID", "QRS_SERVER_NAME",
                              "AUDIT_TABLE", "AUDIT_RETENTION_DAYS", "LOCK_TABLE", "NOTIFY_TOPIC_ARN"}


def test_values_are_typed_and_empty_ones_are_unset() -> None:
    """The template passes "" for a stack parameter left empty: that is "use the file's value"."""
    env = Environment.from_mapping({"QRS_PORT": "4243", "AUDIT_RETENTION_DAYS": " 30 ", "QRS_HOST": "",
                                    "BUTLER_CONFIG": "", "QRS_SERVER_NAME": "  ", "AUDIT_TABLE": "butler-audit",
                                    "UNRELATED": "x"})
    assert (env.qrs_port, env.audit_retention_days, env.audit_table) == (4243, 30, "butler-audit")
    assert (env.qrs_host, env.qrs_server_name, env.butler_config) == (None, None, "config/butler.yaml")


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("QRS_PORT", "abc", NOT_A_NUMBER),
    ("QRS_PORT", "0", "input should be greater than or equal to 1"),
    ("QRS_PORT", "65536", "input should be less than or equal to 65535"),
    ("AUDIT_RETENTION_DAYS", "-1", "input should be greater than or equal to 1"),
    ("AUDIT_RETENTION_DAYS", "3651", "input should be less than or equal to 3650"),
    ("AUDIT_RETENTION_DAYS", "ten", NOT_A_NUMBER),
])
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str, reason: str) -> None:
    with pytest.raises(InvalidEnvironment) as raised:
        Environment.from_mapping({name: value})
    assert str(raised.value) == f"environment variable {name}={value!r}: {reason}"
    assert isinstance(raised.value, ConfigError) and raised.value.problems == [str(raised.value)]


def test_each_bad_variable_has_its_line() -> None:
    with pytest.raises(InvalidEnvironment) as raised:
        Environment.from_mapping({"QRS_PORT": "x", "AUDIT_RETENTION_DAYS": "0", "QRS_HOST": "qlik"})
    assert [line.split("=")[0] for line in raised.value.problems] == [
        "environment variable QRS_PORT", "environment variable AUDIT_RETENTION_DAYS"]


def test_os_environ_is_read_once_and_again_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    first = environment()
    assert environment() is first and environment(os.environ) is first
    monkeypatch.setenv("QRS_PORT", "4243")
    assert environment().qrs_port == 4243
    monkeypatch.setenv("QRS_PORT", "no")
    with pytest.raises(InvalidEnvironment, match=r"^environment variable QRS_PORT='no': "):
        environment()
    assert environment({"QRS_PORT": "1"}).qrs_port == 1  # a given mapping, as the tests of the wiring pass


def test_the_wiring_reads_the_model() -> None:
    env = {"BUTLER_CONFIG": str(CONFIG), "QRS_HOST": "qlik-node-2", "QRS_PORT": "4243", "QRS_SERVER_NAME": ""}
    config = wiring.load_config(env=env)
    assert (config.Butler.qrs.host, config.Butler.qrs.port) == ("qlik-node-2", 4243)
    assert config.Butler.qrs.serverName == load(CONFIG).Butler.qrs.serverName
    with pytest.raises(InvalidEnvironment, match=r"^environment variable QRS_PORT='4242x': "):
        wiring.load_config(env={**env, "QRS_PORT": "4242x"})
    with pytest.raises(InvalidEnvironment, match=r"^environment variable AUDIT_RETENTION_DAYS='-1': "):
        wiring.audit_sink(config, env={"AUDIT_TABLE": "butler-audit", "AUDIT_RETENTION_DAYS": "-1"})
    assert wiring.notifier(env={"NOTIFY_TOPIC_ARN": ""}) is None


def test_the_cli_prints_the_line_as_a_configuration_problem(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QRS_PORT", "abc")
    assert main(["status", "--config", str(CONFIG)]) == EXIT_CONFIG
    assert capsys.readouterr().err == f"environment variable QRS_PORT='abc': {NOT_A_NUMBER}\n"


@pytest.mark.parametrize("function", ["collect", "evaluate"])
def test_a_bad_variable_fails_the_first_invocation_naming_it(function: str, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    logs = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", logs)
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "-1")
    app = load_handler(function)  # the imports read nothing
    with pytest.raises(InvalidEnvironment) as raised:
        app.handler({}, Context())
    assert str(raised.value) == BAD_RETENTION
    (failure,) = [json.loads(line) for line in logs.getvalue().splitlines() if '"ERROR"' in line]
    assert failure["message"] in ("license collection failed", "license evaluation failed")
    assert BAD_RETENTION in failure["exception"]
    assert ('"CollectorSuccess":[0.0]' in capsys.readouterr().out) is (function == "collect")  # the heartbeat


def test_a_bad_variable_is_the_apis_500_naming_it(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    event = json.loads((ROOT / "tests/integration/api/events/rest_proxy_iam.json").read_text())
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "-1")
    answer = load_handler("api").handler(event, Context())
    assert answer["statusCode"] == 500 and json.loads(answer["body"])["problems"] == [BAD_RETENTION]
