"""The InfluxDB 1.x password from Secrets Manager (``influxDb.passwordSecretId``), read through wiring.get_secret
like the 2.x token."""

from __future__ import annotations

from typing import Any

import pytest

from butler import config as cfg
from butler import wiring
from butler.sinks import influx as influx_module
from butler.sinks.influx import InfluxWriteError

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:butler/influxdb-AbCdEf"


def config(**influx: Any) -> cfg.Config:
    return cfg.parse({"Butler": {"influxDb": {"enable": True, "version": 1, "username": "butler", **influx}}})


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The settings the writer is built with, and the secrets read."""
    seen: dict[str, Any] = {"secrets": []}

    def writer_from_config(settings: cfg.InfluxDb, **kwargs: Any) -> str:
        seen["settings"] = settings
        return "writer"

    monkeypatch.setattr(influx_module, "writer_from_config", writer_from_config)
    return seen


def secret(monkeypatch: pytest.MonkeyPatch, seen: dict[str, Any], text: str) -> None:
    def get_secret(secret_id: str) -> str:
        seen["secrets"].append(secret_id)
        return text

    monkeypatch.setattr(wiring, "get_secret", get_secret)


@pytest.mark.parametrize(("text", "password"), [
    ("s3cret-pw", "s3cret-pw"), ("  s3cret-pw\n", "s3cret-pw"),
    ('{"username": "butler", "password": "s3cret-pw"}', "s3cret-pw"),
    ("{s3cret-pw", "{s3cret-pw"),  # a generated password may start with a brace
])
def test_the_password_comes_from_the_secret(monkeypatch: pytest.MonkeyPatch, built: dict[str, Any],
                                            text: str, password: str) -> None:
    secret(monkeypatch, built, text)
    assert wiring.influx_writer(config(passwordSecretId=SECRET)) == "writer"
    assert built["secrets"] == [SECRET]
    assert built["settings"].password == password


def test_no_secret_is_read_without_password_secret_id(monkeypatch: pytest.MonkeyPatch,
                                                      built: dict[str, Any]) -> None:
    secret(monkeypatch, built, "unused")
    wiring.influx_writer(config(password="inline"))
    assert built["secrets"] == [] and built["settings"].password == "inline"


@pytest.mark.parametrize("text", ["", "  ", '{"user": "butler"}', '{"password": 42}'])
def test_an_unusable_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, built: dict[str, Any],
                                             text: str) -> None:
    secret(monkeypatch, built, text)
    with pytest.raises(InfluxWriteError) as error:
        wiring.influx_writer(config(passwordSecretId=SECRET))
    assert str(error.value).startswith(f"secret {SECRET}: ")
