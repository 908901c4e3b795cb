"""The QRS client against the simulator over real mutual TLS: bulk reads, re-reads by id in batches, e-mail,
errors that name what to fix, retries (never of a DELETE), ids that are not GUIDs never sent, certificates."""

from __future__ import annotations

import json
import os
import socket
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
from butler.qrs import (
    QrsClient,
    QrsHttpError,
    QrsInvalidId,
    QrsNoAnswer,
    QrsTimeout,
    QrsTlsError,
    QrsUnavailable,
    QrsUnreachable,
)
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


def test_allocations_by_id_and_gone(site: Any) -> None:
    client = client_for(site)
    first = client.allocations("analyzer")[0]
    assert [a.id for a in client.allocations_by_id("analyzer", [first.id])] == [first.id]
    assert client.allocations_by_id("analyzer", ["00000000-0000-4000-8000-000000000000"]) == []


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
    with pytest.raises(QrsTlsError) as error:
        client_for(site, server_name="qlik-node-1.corp.example", retries=0).about()
    assert str(error.value) == ("GET /qrs/about: the QRS server certificate is not issued to "
                                "'qlik-node-1.corp.example' (it is issued to localhost, 127.0.0.1): set "
                                "Butler.qrs.serverName to the name it is issued to (the Qlik Sense server's machine "
                                "name)")


def test_wrong_ca_is_a_tls_error_without_secrets(site: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    from qrs_simulator import Simulator

    other = Simulator(users=10, seed=1, certs_dir=tmp_path_factory.mktemp("other-ca"))
    other.start()
    try:
        mixed = CertificateFiles(certs(site).client_cert, certs(site).client_key, certs(other).root_ca)
        with pytest.raises(QrsTlsError) as error:
            QrsClient(site.url, mixed, retries=0).about()
        message = str(error.value)
        assert "BEGIN" not in message and "xrfkey" not in message
        assert message.startswith("GET /qrs/about: the QRS server certificate does not verify against "
                                  f"Butler.qrs.certificates.rootCa ({certs(other).root_ca}) (")
        assert message.endswith("): give the root.pem of this Qlik Sense site's certificate export, and check "
                                "Butler.qrs.serverName")
        foreign = CertificateFiles(certs(other).client_cert, certs(other).client_key, certs(site).root_ca)
        # TLS 1.3: the refusal is an "unknown CA" alert, or a bare close when the alert loses the race
        with pytest.raises(QrsTlsError, match=r"refused the client certificate Butler\.qrs\.certificates"
                                              r"\.clientCert \(.*client\.pem\)"):
            QrsClient(site.url, foreign, retries=0).about()
    finally:
        other.stop()


def test_unreachable_and_timeout(sim_factory: Callable[..., Any]) -> None:
    slow = sim_factory(users=10, seed=1, latency_ms=1500)
    with pytest.raises(QrsTimeout) as timeout:
        client_for(slow, read_timeout=0.3, retries=0).about()
    assert str(timeout.value) == f"GET /qrs/about: no answer from {slow.url} within Butler.qrs.readTimeout (0.3 s)"
    assert timeout.value.setting == "Butler.qrs.readTimeout"
    with pytest.raises(QrsUnreachable) as unreachable:
        QrsClient("https://127.0.0.1:9", certs(slow), retries=0, connect_timeout=1).about()
    assert str(unreachable.value) == ("GET /qrs/about: cannot connect to https://127.0.0.1:9 (Connection refused): "
                                      "check Butler.qrs.host and Butler.qrs.port")


def test_a_connect_timeout_names_its_setting(site: Any) -> None:
    """Not "no answer within 120 s": the 0.3 s connect time-out expired (twice, with one retry)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        backlog = [socket.socket() for _ in range(4)]  # a full backlog: further connections are never accepted
        for sock in backlog:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        try:
            with pytest.raises(QrsTimeout) as error:
                QrsClient(f"https://127.0.0.1:{port}", certs(site), retries=1, connect_timeout=0.3).about()
        finally:
            for sock in backlog:
                sock.close()
    assert str(error.value) == (f"GET /qrs/about: no connection to https://127.0.0.1:{port} within "
                                "Butler.qrs.connectTimeout (0.3 s) (tried 2 times)")
    assert error.value.setting == "Butler.qrs.connectTimeout"


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
    client.server_license()
    client.user_count()
    users = client.users()
    client.users_by_id([users[0].id])
    client.users_named(users[0].userId, users[0].userDirectory)
    for license_type in ("professional", "analyzer"):
        allocation = client.allocations(license_type)[0]
        client.allocations_by_id(license_type, [allocation.id])
        client.allocations_of_user(license_type, users[0].id)
        client.delete_allocation(license_type, allocation.id)
    allowed = {(method.upper(), path.lower()) for path, ops in SPEC["paths"].items() for method in ops}
    called = {(key.split(" ")[0], key.split(" ")[1].removeprefix("/qrs")) for key in stats(sim)}
    assert len(called) == 10
    assert called <= allowed, called - allowed


# --- re-reads by id, e-mail, ids that are not GUIDs, DELETE sent once ----------------------------------------------


def test_allocations_by_id_in_batches_of_50(site: Any) -> None:
    client = client_for(site)
    held = client.allocations("professional")
    wanted = [a.id for a in held[:120]]
    gone = "00000000-0000-4000-8000-000000000000"
    before = stats(site).get("GET /qrs/license/professionalaccesstype/full", 0)
    found = client.allocations_by_id("professional", [*wanted, gone, "not-a-guid", wanted[0].upper()])
    assert stats(site)["GET /qrs/license/professionalaccesstype/full"] - before == 3  # 121 GUIDs: 50 + 50 + 21
    assert sorted(a.id for a in found) == sorted(wanted)  # the vanished one is simply absent
    assert {a.licenseType for a in found} == {"professional"} and all(a.problem is None for a in found)
    by_id = {a.id: a for a in held}
    assert all(a == by_id[a.id] for a in found)
    assert client.allocations_by_id("analyzer", []) == []


def test_users_by_id_in_batches_with_email(site: Any) -> None:
    client = client_for(site)
    state = sim_state(site)["users"]
    wanted = [u["id"] for u in state[:75]]
    before = stats(site).get("POST /qrs/user/table", 0)
    found = client.users_by_id([*wanted, "x' or id ne '"], with_email=True)
    assert stats(site)["POST /qrs/user/table"] - before == 2
    emails = {u["id"]: next((a["attributeValue"] for a in u["attributes"] if a["attributeType"].lower() == "email"),
                            None) for u in state}
    assert sorted(u.id for u in found) == sorted(wanted)
    assert {u.id: u.email for u in found} == {i: emails[i] for i in wanted}
    assert any(u.email for u in found)
    assert all(u.email is None for u in client.users_by_id(wanted[:5]))  # the column only when asked for


def test_find_users_reads_email(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(scenario={"licenses": {"professional": {"total": 1}, "analyzer": {"total": 1}},
                                "users": [{"userDirectory": "CORP", "userId": "jdoe", "email": "Jane.Doe@corp.example"},
                                          {"userDirectory": "CORP", "userId": "noemail"}]})
    client = client_for(sim)
    assert {u.userId: u.email for u in client.find_users("userDirectory eq 'CORP'")} == {
        "jdoe": "Jane.Doe@corp.example", "noemail": None}
    assert {u.userId: u.email for u in client.users(with_email=True)} == {
        "jdoe": "Jane.Doe@corp.example", "noemail": None}


@pytest.mark.parametrize("bad_id", ["", "x", "../../user/full", "00000000-0000-4000-8000-000000000000/../x",
                                    "{00000000-0000-4000-8000-000000000000}"])
def test_an_id_that_is_not_a_guid_is_never_sent(site: Any, bad_id: str) -> None:
    client = client_for(site)
    before = stats(site)
    with pytest.raises(QrsInvalidId) as error:
        client.allocations_of_user("professional", bad_id)
    assert str(error.value).startswith("GET /qrs/license/professionalaccesstype/full: id ")
    with pytest.raises(QrsInvalidId, match="is not a GUID; nothing was sent to QRS"):
        client.delete_allocation("analyzer", bad_id)
    assert client.allocations_by_id("professional", [bad_id]) == []
    assert client.users_by_id([bad_id]) == []
    assert stats(site) == before


def test_the_count_is_asked_only_when_a_page_is_full(site: Any) -> None:
    before = stats(site).get("GET /qrs/user/count", 0)
    client_for(site).users()  # one page of 20,000: no count
    assert stats(site).get("GET /qrs/user/count", 0) == before
    client_for(site, page_size=300).users()  # four pages: the count once, to bound them
    assert stats(site)["GET /qrs/user/count"] - before == 1


def test_a_delete_is_never_resent(sim_factory: Callable[..., Any]) -> None:
    sim = sim_factory(users=50, seed=2)
    client = client_for(sim, retries=4)
    allocation = client.allocations("professional")[0]
    sim.fault_rate = 1.0  # every request: a 503 or a dropped connection
    for _ in range(6):
        with pytest.raises((QrsUnavailable, QrsNoAnswer)):
            client.delete_allocation("professional", allocation.id)
    with pytest.raises((QrsUnavailable, QrsNoAnswer)):
        client.allocations_by_id("professional", [allocation.id])
    counts = stats(sim)
    assert counts["DELETE /qrs/license/professionalaccesstype/{id}"] == 6  # each sent once
    assert counts["GET /qrs/license/professionalaccesstype/full"] == 1 + 5  # the listing, then a read: 1 + 4 retries
