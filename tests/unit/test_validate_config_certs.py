"""`validate-config FILE` checks the local certificate files (`qrs.certificates`): exit 2 naming the key."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from butler import checks
from butler import config as cfg
from butler.cli import main
from qrs_simulator.certs import ensure_certs

KEYS = {"clientCert": "client.pem", "clientKey": "client_key.pem", "rootCa": "root.pem"}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config folder with a Qlik-like certificate export in certs/ and butler.yaml naming it relatively."""
    ensure_certs(tmp_path / "certs")
    write_config(tmp_path)
    return tmp_path


def write_config(folder: Path, **files: str) -> Path:
    certificates = {key: files.get(key, f"certs/{name}") for key, name in KEYS.items()}
    path = folder / "butler.yaml"
    path.write_text(yaml.safe_dump({"Butler": {"qrs": {"host": "127.0.0.1", "certificates": certificates}}}))
    return path


def validate(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate-config", str(folder / "butler.yaml")])
    return code, capsys.readouterr().out.splitlines()


def test_a_matching_export_is_ok(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate(site, capsys) == (0, ["ok"])


def test_a_key_of_another_export_does_not_match(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = ensure_certs(site / "other")
    shutil.copy(other.client_key, site / "certs" / "client_key.pem")
    assert validate(site, capsys) == (2, [
        "Butler.qrs.certificates.clientKey: certs/client_key.pem does not match Butler.qrs.certificates.clientCert"])


def test_missing_files_are_named_with_where_they_were_looked_for(site: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_config(site, clientCert="certs/nope.pem", rootCa="certs/gone.pem")
    code, lines = validate(site, capsys)
    assert code == 2
    assert lines == [
        f"Butler.qrs.certificates.clientCert: certs/nope.pem does not exist (looked for {site / 'certs/nope.pem'})",
        f"Butler.qrs.certificates.rootCa: certs/gone.pem does not exist (looked for {site / 'certs/gone.pem'})"]


def test_files_that_are_not_what_their_key_says(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "certs" / "notes.txt").write_text("not a certificate\n")
    write_config(site, clientCert="certs/notes.txt", clientKey="certs/client.pem", rootCa="certs/client_key.pem")
    code, lines = validate(site, capsys)
    assert code == 2
    assert lines == ["Butler.qrs.certificates.clientCert: certs/notes.txt is not a PEM certificate",
                     "Butler.qrs.certificates.clientKey: certs/client.pem is not a PEM private key",
                     "Butler.qrs.certificates.rootCa: certs/client_key.pem is not a PEM certificate"]


def test_an_encrypted_key_is_named(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = site / "certs" / "client_key.pem"
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"secret")))
    assert validate(site, capsys) == (2, [
        "Butler.qrs.certificates.clientKey: certs/client_key.pem is encrypted; export the certificates without a "
        "password"])


def test_an_expired_client_certificate_is_named(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = serialization.load_pem_private_key((site / "certs" / "client_key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "QlikClient")])
    start = datetime.now(UTC) - timedelta(days=400)
    expired = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(start).not_valid_after(start + timedelta(days=365))
               .sign(key, hashes.SHA256()))
    (site / "certs" / "client.pem").write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    code, lines = validate(site, capsys)
    assert code == 2
    assert lines == [f"Butler.qrs.certificates.clientCert: certs/client.pem expired on "
                     f"{start + timedelta(days=365):%Y-%m-%d}"]


def test_a_secret_instead_of_files_is_not_read_without_check_connection(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "butler.yaml").write_text("Butler:\n  qrs:\n    secretId: butler/qrs-certificates\n")
    assert validate(tmp_path, capsys) == (0, ["ok"])


def test_the_check_is_a_function_other_commands_can_use(site: Path) -> None:
    config = cfg.load(site / "butler.yaml")
    assert checks.certificate_problems(config) == []
    (site / "certs" / "root.pem").unlink()
    assert checks.certificate_problems(config) == [
        f"Butler.qrs.certificates.rootCa: certs/root.pem does not exist (looked for {site / 'certs/root.pem'})"]
