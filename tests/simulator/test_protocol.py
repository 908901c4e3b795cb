"""Transport and protocol: mutual TLS, certificates, xrfkey, X-Qlik-User, status codes, count, keep-alive."""

from __future__ import annotations

import http.client
import os
import ssl
import stat
from pathlib import Path

import pytest
import requests
from cryptography import x509

from qrs_simulator import XRF_FAILURE, Simulator, ensure_certs
from qrs_simulator.certs import FILES, CertError

from .conftest import QLIK_USER, XRFKEY, Qrs


def test_client_without_certificate_is_refused(scenario_sim: Simulator) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(
            f"{scenario_sim.url}/qrs/about",
            params={"xrfkey": XRFKEY},
            verify=scenario_sim.ca_file,
            headers={"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER},
            timeout=10,
        )


def test_client_certificate_of_another_ca_is_refused(scenario_sim: Simulator, tmp_path: Path) -> None:
    other = ensure_certs(tmp_path / "other")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(
            f"{scenario_sim.url}/qrs/about",
            params={"xrfkey": XRFKEY},
            verify=scenario_sim.ca_file,
            cert=(str(other.client), str(other.client_key)),
            headers={"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER},
            timeout=10,
        )


def test_certificates_are_written_once_and_reused(tmp_path: Path) -> None:
    paths = ensure_certs(tmp_path / "certs", server_name="qlik-node-1.corp.example")
    before = {name: (paths.directory / name).read_bytes() for name in FILES}
    assert ensure_certs(tmp_path / "certs") == paths
    assert before == {name: (paths.directory / name).read_bytes() for name in FILES}
    for key in (paths.server_key, paths.client_key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    server = x509.load_pem_x509_certificate(paths.server.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "qlik-node-1.corp.example"} <= set(names.get_values_for_type(x509.DNSName))
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    root = x509.load_pem_x509_certificate(paths.root.read_bytes())
    assert server.issuer == root.subject


def test_incomplete_certificate_set_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "root.pem").write_text("x")
    with pytest.raises(CertError, match="incomplete"):
        ensure_certs(tmp_path)


@pytest.mark.parametrize(
    ("query_key", "header_key"),
    [
        (None, None),
        (XRFKEY, None),
        (None, XRFKEY),
        (XRFKEY, "ABCDEFGHIJKLMNOP"),
        ("short", "short"),
        ("abcdefghijklmno!", "abcdefghijklmno!"),
    ],
)
def test_xrfkey_is_required_and_must_match(qrs: Qrs, query_key: str | None, header_key: str | None) -> None:
    headers = {"X-Qlik-User": QLIK_USER}
    if header_key is not None:
        headers["X-Qlik-Xrfkey"] = header_key
    params = {"xrfkey": query_key} if query_key is not None else {}
    response = requests.get(
        f"{qrs.sim.url}/qrs/about",
        params=params,
        headers=headers,
        cert=qrs.sim.client_cert,
        verify=qrs.sim.ca_file,
        timeout=10,
    )
    assert response.status_code == 400
    assert response.text == XRF_FAILURE
    assert response.headers["Content-Type"].startswith("text/plain")


def test_xrfkey_header_name_is_case_insensitive(qrs: Qrs) -> None:
    response = requests.get(
        f"{qrs.sim.url}/qrs/about",
        params={"xrfkey": XRFKEY},
        cert=qrs.sim.client_cert,
        headers={"x-qlik-xrfkey": XRFKEY, "x-qlik-user": QLIK_USER},
        verify=qrs.sim.ca_file,
        timeout=10,
    )
    assert response.status_code == 200


def test_qlik_user_header_is_required(qrs: Qrs) -> None:
    response = requests.get(
        f"{qrs.sim.url}/qrs/about",
        params={"xrfkey": XRFKEY},
        headers={"X-Qlik-Xrfkey": XRFKEY},
        cert=qrs.sim.client_cert,
        verify=qrs.sim.ca_file,
        timeout=10,
    )
    assert response.status_code == 403
    assert "X-Qlik-User" in response.text


def test_count_answers_an_object(qrs: Qrs) -> None:
    assert qrs.get("license/professionalaccesstype/count") == {"value": 3}
    assert qrs.get("license/analyzeraccesstype/count") == {"value": 2}
    assert qrs.get("user/count") == {"value": 9}
    assert qrs.get("user/count", filter="userDirectory eq 'DOMAIN'") == {"value": 7}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "user/6f1c2d7e-0000-4000-8000-000000000000", 404),
        ("GET", "license/professionalaccesstype/6f1c2d7e-0000-4000-8000-000000000000", 404),
        ("DELETE", "license/analyzeraccesstype/6f1c2d7e-0000-4000-8000-000000000000", 404),
        ("GET", "user/not-a-guid", 404),
        ("GET", "nosuchthing", 404),
        ("GET", "license/professionalaccesstype/6f1c2d7e/full", 404),
        ("DELETE", "user/full", 405),
        ("POST", "about", 405),
        ("GET", "user/table", 405),
        ("DELETE", "user/6f1c2d7e-0000-4000-8000-000000000000", 405),
        ("POST", "tag", 405),
    ],
)
def test_error_statuses(qrs: Qrs, method: str, path: str, status: int) -> None:
    response = qrs.request(method, path)
    assert response.status_code == status
    assert response.text


def test_paths_are_case_insensitive(qrs: Qrs) -> None:
    assert qrs.get("License/ProfessionalAccessType/Count") == {"value": 3}


def test_keep_alive_reuses_one_connection(qrs: Qrs) -> None:
    context = ssl.create_default_context(cafile=qrs.sim.ca_file)
    context.load_cert_chain(*qrs.sim.client_cert)
    conn = http.client.HTTPSConnection("127.0.0.1", qrs.sim.port, context=context, timeout=10)
    sockets = set()
    for path in ("about", "user/count", "license/professionalaccesstype/full", "nosuchthing", "about"):
        conn.request("GET", f"/qrs/{path}?xrfkey={XRFKEY}", headers={"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER})
        response = conn.getresponse()
        body = response.read()
        assert response.getheader("Content-Length") == str(len(body))
        assert not response.will_close
        sockets.add(id(conn.sock))
    conn.close()
    assert len(sockets) == 1


def test_control_endpoints_need_the_client_certificate(scenario_sim: Simulator) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{scenario_sim.url}/__sim/stats", verify=scenario_sim.ca_file, timeout=10)
