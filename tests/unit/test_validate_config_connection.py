"""`validate-config FILE --check-connection`, run as a separate process against the QRS simulator over mutual TLS
(and against a moto server for the Secrets Manager secret): `ok` plus a connection line, or one line saying
what failed and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import yaml

from butler.cli import main
from butler.qrs.certs import secret_payload
from butler_dev.moto_server import moto_endpoint as moto_server_env
from qrs_simulator.certs import ensure_certs
from tests.conftest import config_data
from tests.support.influxd import free_port

if TYPE_CHECKING:
    from qrs_simulator import Simulator

ROOT = Path(__file__).parents[2]


def check(config: Path, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    result = subprocess.run([sys.executable, "-m", "butler", "validate-config", str(config), "--check-connection"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    return result.returncode, result.stdout.splitlines(), result.stderr


@pytest.fixture
def sim(sim_factory: Callable[..., Simulator]) -> Simulator:
    return sim_factory(users=5, seed=1)


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def port_of(sim: Simulator) -> int:
    return int(sim.url.rsplit(":", 1)[1])


def test_a_reachable_qrs_is_ok(sim: Simulator, tmp_path: Path) -> None:
    code, lines, err = check(write(tmp_path / "butler.yaml", config_data(sim)))
    assert (code, err) == (0, "")
    assert lines == ["ok", f"connection ok: QRS at 127.0.0.1:{port_of(sim)} answered"]


def test_a_port_nobody_listens_on_is_one_line_and_exit_1(sim: Simulator, tmp_path: Path) -> None:
    port = free_port()
    code, lines, err = check(write(tmp_path / "butler.yaml", config_data(sim, {"qrs": {"port": port, "retries": 0}})))
    assert (code, err) == (1, "")
    (line,) = lines
    assert line.startswith(f"connection failed: QRS at 127.0.0.1:{port}: ")
    assert f"https://127.0.0.1:{port}" in line


def test_a_wrong_root_ca_fails_the_handshake(sim: Simulator, tmp_path: Path) -> None:
    other = ensure_certs(tmp_path / "other-site")
    data = config_data(sim, {"qrs": {"certificates": {"rootCa": str(other.root)}}})
    code, lines, err = check(write(tmp_path / "butler.yaml", data))
    assert (code, err) == (1, "")
    (line,) = lines
    assert line.startswith(f"connection failed: QRS at 127.0.0.1:{port_of(sim)}: ")
    assert "certificate" in line and "_ssl.c" not in line


def test_an_invalid_file_is_still_exit_2(sim: Simulator, tmp_path: Path) -> None:
    data = config_data(sim, {"qrs": {"certificates": {"clientKey": str(tmp_path / "missing.pem")}}})
    code, lines, _ = check(write(tmp_path / "butler.yaml", data))
    assert code == 2
    assert lines == [f"Butler.qrs.certificates.clientKey: {tmp_path / 'missing.pem'} does not exist"]


def test_no_certificate_source_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "butler.yaml").write_text("Butler:\n  qrs:\n    host: 127.0.0.1\n")
    assert main(["validate-config", str(tmp_path / "butler.yaml"), "--check-connection"]) == 2
    assert capsys.readouterr().out == ("Butler.qrs: connecting needs certificates (local PEM files) or secretId "
                                       "(Secrets Manager)\n")


# --- the certificates from Secrets Manager ----------------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[dict[str, str]]:
    """A moto server; the environment a child process needs to reach it."""
    with moto_server_env() as env:
        yield env


def secret_config(sim: Simulator, folder: Path, secret_id: str) -> Path:
    data = config_data(sim)
    data["Butler"]["qrs"].pop("certificates")
    data["Butler"]["qrs"]["secretId"] = secret_id
    return write(folder / "butler.yaml", data)


def create_secret(env: dict[str, str], name: str, value: str) -> None:
    client = boto3.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_secret(Name=name, SecretString=value)


def test_the_certificates_from_a_secret(sim: Simulator, tmp_path: Path, aws: dict[str, str]) -> None:
    create_secret(aws, "butler/qrs-certificates", secret_payload(sim.certs_dir))
    code, lines, err = check(secret_config(sim, tmp_path, "butler/qrs-certificates"), aws)
    assert (code, err) == (0, "")
    assert lines == ["ok", f"connection ok: QRS at 127.0.0.1:{port_of(sim)} answered"]


def test_a_missing_secret_is_one_line(sim: Simulator, tmp_path: Path, aws: dict[str, str]) -> None:
    code, lines, err = check(secret_config(sim, tmp_path, "butler/nothing-here"), aws)
    assert (code, err) == (1, "")
    (line,) = lines
    assert line.startswith("connection failed: Butler.qrs.secretId: ")


def test_a_secret_with_another_sites_key_is_named(sim: Simulator, tmp_path: Path, aws: dict[str, str]) -> None:
    other = ensure_certs(tmp_path / "other-site")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("client.pem", "root.pem"):
        (mixed / name).write_text((Path(sim.certs_dir) / name).read_text())
    (mixed / "client_key.pem").write_text(other.client_key.read_text())
    create_secret(aws, "butler/mixed", secret_payload(mixed))
    code, lines, _ = check(secret_config(sim, tmp_path, "butler/mixed"), aws)
    assert (code, lines) == (1, ["connection failed: Butler.qrs.secretId: client_key.pem of secret butler/mixed "
                                 "does not match its client.pem"])
