"""The QRS client against the simulator over real mutual TLS: bulk reads, errors, retries, certificates."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws

from butler import wiring
from butler.qrs import QrsClient, QrsHttpError, QrsNotFound, QrsTimeout, QrsTlsError, QrsUnreachable
from butler.qrs.certs import CertificateFiles, secret_payload
from tests.conftest import config_data

ROOT = Path(__file__).parents[2]


def certs(sim: Any) -> CertificateFiles:
    folder = Path(sim.certs_dir)
    return CertificateFiles(folder / "client.pem", folder / "client_key.pem", folder / "root.pem")


def client_for(sim: Any, **kwargs: Any) -> QrsClient:
    return QrsClient(sim.url, certs(sim), **kwargs)


def stats(sim: Any) -> dict[str, int]:
    response = requests.get(f"{sim.url}/__sim/stats", cert=(str(certs(sim).client_cert), str(certs(sim).client_key)),
                            verify=str(certs(sim).root_ca), timeout=10)
    counts: dict[str, int] = response.json()["requests"]
    return counts


def sim_state(sim: Any) -> dict[str, Any]:
    c = certs(sim)
    state: dict[str, Any] = requests.get(f"{sim.url}/__sim/state", cert=(str(c.client_cert), str(c.client_key)),
                                         verify=str(c.root_ca), timeout=30).json()
    return state


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from qrs_simulator import Simulator

    sim = Simulator(users=1000, seed=7, certs_dir=tmp_path_factory.mktemp("site-certs"))
    sim.start()
    yield sim
    sim.stop()


def test_allocations_in_one_request_per_type(site: Any) -> None:
    client = client_for(site)
    before = stats(site)
    professional, analyzer = client.allocations("professional"), client.allocations("analyzer")
    after = stats(site)
    state = sim_state(site)
    assert len(professional) == sum(1 for a in state["allocations"] if a["type"] == "professional")
    assert len(analyzer) == sum(1 for a in state["allocations"] if a["type"] == "analyzer")
    assert {a.licenseType for a in professional} == {"professional"}
    assert {a.licenseType for a in analyzer} == {"analyzer"}
    for key in ("GET /qrs/license/professionalaccesstype/full", "GET /qrs/license/analyzeraccesstype/full"):
        assert after.get(key, 0) - before.get(key, 0) == 1
    assert client.allocation_count("professional") == len(professional)


def test_users_come_in_table_pages(site: Any) -> None:
    client = client_for(site, page_size=300)
    before = stats(site).get("POST /qrs/user/table", 0)
    users = client.users()
    assert stats(site)["POST /qrs/user/table"] - before == 4  # 1000 users, pages of 300
    state = sim_state(site)
    assert len(users) == len(state["users"]) == 1000
    by_id = {u["id"]: u for u in state["users"]}
    for user in users:
        raw = by_id[user.id]
        assert (user.userDirectory, user.userId, user.blacklisted) == (raw["userDirectory"], raw["userId"],
                                                                      raw["blacklisted"])
        assert sorted(t.name for t in user.tags) == sorted(t["name"] for t in raw["tags"])
        assert sorted((p.definition.name, p.value) for p in user.customProperties) == sorted(
            (p["definition"]["name"], p["value"]) for p in raw["customProperties"])


def test_find_users_by_filter_is_case_insensitive(site: Any) -> None:
    client = client_for(site)
    some = sim_state(site)["users"][3]
    found = client.find_users(f"userDirectory eq '{some['userDirectory'].lower()}' and userId eq '{some['userId']}'")
    assert [u.id for u in found] == [some["id"]]


def test_one_allocation_and_not_found(site: Any) -> None:
    client = client_for(site)
    first = client.allocations("analyzer")[0]
    assert client.allocation("analyzer", first.id).id == first.id
    with pytest.raises(QrsNotFound):
        client.allocation("analyzer", "00000000-0000-4000-8000-000000000000")


def test_malformed_filter_carries_qrs_text(site: Any) -> None:
    with pytest.raises(QrsHttpError) as error:
        client_for(site).allocations("professional", "user.userDirectory eq 'unterminated")
    assert error.value.status == 400
    assert error.value.text


def test_ignores_requests_ca_bundle(site: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bogus = tmp_path / "bundle.pem"
    bogus.write_text("not a certificate\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert client_for(site).access_type_overview().professionalAccess.total > 0


def test_server_name_to_verify(site: Any) -> None:
    assert client_for(site, server_name="localhost").about()
    with pytest.raises(QrsTlsError):
        client_for(site, server_name="qlik-node-1.corp.example", retries=0).about()


def test_wrong_ca_is_a_tls_error_without_secrets(site: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    from qrs_simulator import Simulator

    other = Simulator(users=10, seed=1, certs_dir=tmp_path_factory.mktemp("other-ca"))
    other.start()
    try:
        mixed = CertificateFiles(certs(site).client_cert, certs(site).client_key, certs(other).root_ca)
        with pytest.raises(QrsTlsError) as error:
            QrsClient(site.url, mixed, retries=0).about()
        assert "BEGIN" not in str(error.value) and "xrfkey" not in str(error.value)
    finally:
        other.stop()


def test_unreachable_and_timeout(sim_factory: Callable[..., Any]) -> None:
    slow = sim_factory(users=10, seed=1, latency_ms=1500)
    with pytest.raises(QrsTimeout):
        client_for(slow, read_timeout=0.3, retries=0).about()
    with pytest.raises(QrsUnreachable):
        QrsClient("https://127.0.0.1:9", certs(slow), retries=0, connect_timeout=1).about()


def test_retries_ride_out_faults(sim_factory: Callable[..., Any]) -> None:
    flaky = sim_factory(users=200, seed=3, fault_rate=0.3)
    client = client_for(flaky, retries=10)
    for _ in range(5):
        assert len(client.allocations("professional")) > 0
        assert len(client.users()) == 200


def test_certificates_from_secrets_manager(site: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        payload = secret_payload(Path(site.certs_dir))
        boto3.client("secretsmanager").create_secret(Name="butler/qrs", SecretString=payload)
        data = config_data(site)
        data["Butler"]["qrs"].pop("certificates")
        data["Butler"]["qrs"]["secretId"] = "butler/qrs"
        file = tmp_path / "butler.yaml"
        file.write_text(json.dumps(data))
        config = wiring.load_config(file, env={})
        files = wiring.certificates(config)
        assert stat.S_IMODE(os.stat(files.client_key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(files.client_key.parent).st_mode) == 0o700
        assert wiring.qrs_client(config).access_type_overview().analyzerAccess.total > 0


def test_status_command_matches_simulator_state(tmp_path: Path) -> None:
    certs_dir = tmp_path / "certs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qrs_simulator", "--port", "0", "--certs-dir", str(certs_dir), "--users", "1000",
         "--seed", "11"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY https://127.0.0.1:")
        sim = type("Sim", (), {"url": line.split()[1], "certs_dir": certs_dir})()
        config = tmp_path / "butler.yaml"
        config.write_text(json.dumps(config_data(sim)))
        out = subprocess.run([sys.executable, "-m", "butler", "status", "--config", str(config)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        status = json.loads(out)
        state = sim_state(sim)
    finally:
        proc.terminate()
        proc.wait(10)
    for license_type in ("professional", "analyzer"):
        held = [a for a in state["allocations"] if a["type"] == license_type]
        allocated = sum(1 for a in held if not a["quarantined"])
        quarantined = sum(1 for a in held if a["quarantined"])
        block = status[license_type]
        assert (block["allocated"], block["quarantined"]) == (allocated, quarantined)
        assert block["available"] == max(0, block["total"] - allocated - quarantined)
        assert block["utilization"] == round(100 * allocated / block["total"], 2)
    assert set(status["analyzerCapacity"]) >= {"allocatedMinutes", "usedMinutes", "unavailableMinutes"}


def test_status_command_reports_unreachable_qrs(tmp_path: Path) -> None:
    sim = type("Sim", (), {"url": "https://127.0.0.1:9", "certs_dir": tmp_path})()
    for name in ("client.pem", "client_key.pem", "root.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    config = tmp_path / "butler.yaml"
    data = config_data(sim, {"qrs": {"retries": 0, "connectTimeout": 1}})
    config.write_text(json.dumps(data))
    result = subprocess.run([sys.executable, "-m", "butler", "status", "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_users_only_ids_keeps_just_those(site: Any) -> None:
    client = client_for(site, page_size=300)
    wanted = {u["id"] for u in sim_state(site)["users"][::97]}
    before = stats(site).get("POST /qrs/user/table", 0)
    users = client.users(only_ids=wanted)
    assert {u.id for u in users} == wanted
    assert stats(site)["POST /qrs/user/table"] - before == 4  # still every page, but only the wanted are parsed


SPEC = json.loads((ROOT / "tests" / "simulator" / "qrs-spec-license-user-subset.json").read_text())


def test_the_client_calls_only_paths_the_spec_lists(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(users=120, seed=5)
    client = client_for(sim)
    client.about()
    client.access_type_overview()
    client.analyzer_time_usage()
    client.user_count()
    users = client.users()
    client.find_users(f"userId eq '{users[0].userId}'")
    for license_type in ("professional", "analyzer"):
        allocation = client.allocations(license_type)[0]
        client.allocation_count(license_type)
        client.allocation(license_type, allocation.id)
        client.delete_allocation(license_type, allocation.id)
    allowed = {(method.upper(), path.lower()) for path, ops in SPEC["paths"].items() for method in ops}
    called = {(key.split(" ")[0], key.split(" ")[1].removeprefix("/qrs")) for key in stats(sim)}
    assert len(called) == 14
    assert called <= allowed, called - allowed
