"""Shared fixtures: a QRS simulator over real mutual TLS, and configuration files pointing at it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from moto import mock_aws

if TYPE_CHECKING:
    from qrs_simulator import Simulator


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_data(sim: Simulator, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Butler config reaching ``sim`` with its exported certificates; ``extra`` is merged under Butler."""
    port = int(sim.url.rsplit(":", 1)[1])
    certs = Path(sim.certs_dir)
    base = {
        "qrs": {
            "host": "127.0.0.1",
            "port": port,
            "certificates": {
                "clientCert": str(certs / "client.pem"),
                "clientKey": str(certs / "client_key.pem"),
                "rootCa": str(certs / "root.pem"),
            },
            "retries": 3,
        }
    }
    return {"Butler": deep_merge(base, extra or {})}


@pytest.fixture
def sim_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Simulator]]:
    """Start simulators (scenario dict or synthetic users); all are stopped after the test."""
    from qrs_simulator import Simulator

    started: list[Simulator] = []

    def start(**kwargs: Any) -> Simulator:
        kwargs.setdefault("certs_dir", tmp_path_factory.mktemp("certs"))
        sim = Simulator(**kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config for a simulator; returns its path."""

    def write(sim: Simulator, extra: dict[str, Any] | None = None, name: str = "butler.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config_data(sim, extra), sort_keys=False))
        return path

    return write


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS with fake credentials and no endpoint override (create boto3 clients inside)."""
    for name, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN", "AUDIT_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield
