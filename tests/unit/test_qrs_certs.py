"""Certificates: the PEMs are checked when the client is built, naming the file (or the secret's key) to fix and
never the content; PEMs from a secret go to a private folder that leaves no private key behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from butler.qrs import QrsClient, certs
from butler.qrs.certs import CertificateError, CertificateFiles, check, from_secret, secret_payload
from qrs_simulator import ensure_certs

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_certs(tmp_path_factory.mktemp("export")).directory


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_certs(tmp_path_factory.mktemp("other")).directory


@pytest.fixture
def private_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh process-wide state for ``from_secret``, its folders under ``tmp_path``."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(certs, "_folder", None)
    monkeypatch.setattr(certs, "_materialized", {})
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    return tmp_path


def files(cert: Path, key: Path, root: Path) -> CertificateFiles:
    return CertificateFiles(cert, key, root)


def refused(files: CertificateFiles) -> str:
    with pytest.raises(CertificateError) as error:
        check(files)
    message = str(error.value)
    assert "BEGIN" not in message and "\n" not in message
    return message


def test_an_export_passes(export: Path) -> None:
    check(files(export / "client.pem", export / "client_key.pem", export / "root.pem"))


def test_a_file_that_is_not_pem_is_named(export: Path, tmp_path: Path) -> None:
    junk = tmp_path / "client.pem"
    junk.write_text("MIIB-this-is-not-pem\n")
    message = refused(files(junk, export / "client_key.pem", export / "root.pem"))
    assert message == f"Butler.qrs.certificates.clientCert ({junk}): not a PEM certificate"
    message = refused(files(export / "client.pem", export / "client_key.pem", junk))
    assert message.startswith("Butler.qrs.certificates.rootCa (") and "MIIB" not in message


def test_swapped_certificate_and_key_are_named(export: Path) -> None:
    message = refused(files(export / "client_key.pem", export / "client.pem", export / "root.pem"))
    assert message.endswith("client_key.pem): not a PEM certificate (it holds a private key)")
    message = refused(files(export / "client.pem", export / "client.pem", export / "root.pem"))
    assert message.startswith("Butler.qrs.certificates.clientKey (") and "(it holds a certificate)" in message


def test_a_key_of_another_export_names_both_files(export: Path, other: Path) -> None:
    message = refused(files(export / "client.pem", other / "client_key.pem", export / "root.pem"))
    assert message == (f"Butler.qrs.certificates.clientKey ({other / 'client_key.pem'}) does not belong to "
                       f"Butler.qrs.certificates.clientCert ({export / 'client.pem'}): take both from the same "
                       "Qlik Sense certificate export")


def test_a_key_with_a_password_is_named(export: Path, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key((export / "client_key.pem").read_bytes(), password=None)
    locked = tmp_path / "client_key.pem"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"pw")))
    assert "protected by a password" in refused(files(export / "client.pem", locked, export / "root.pem"))


def test_a_missing_file_is_named(export: Path, tmp_path: Path) -> None:
    message = refused(files(export / "client.pem", export / "client_key.pem", tmp_path / "root.pem"))
    assert message == f"Butler.qrs.certificates.rootCa ({tmp_path / 'root.pem'}): cannot read the file " \
                      "(No such file or directory)"


def test_the_client_checks_before_any_request(export: Path, other: Path) -> None:
    with pytest.raises(CertificateError, match="does not belong to"):
        QrsClient("https://127.0.0.1:9", files(export / "client.pem", other / "client_key.pem", export / "root.pem"))


# --- from a secret -----------------------------------------------------------------------------------------------


def test_secret_pems_go_to_a_private_folder_reused_while_unchanged(export: Path, private_folders: Path) -> None:
    first = from_secret("butler/qrs", secret_payload(export))
    assert first.secret_id == "butler/qrs"
    assert first.client_key.read_text() == (export / "client_key.pem").read_text()
    for path in (first.client_cert, first.client_key, first.root_ca):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (first.client_key.parent, first.client_key.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert first.client_key.parent.parent.parent == private_folders
    assert from_secret("butler/qrs", secret_payload(export)) is first
    check(first)


def test_a_rotated_secret_rewrites_the_same_files(export: Path, other: Path, private_folders: Path) -> None:
    first = from_secret("butler/qrs", secret_payload(export))
    rotated = from_secret("butler/qrs", secret_payload(other))
    assert rotated.client_key == first.client_key
    assert rotated.client_key.read_text() == (other / "client_key.pem").read_text()
    assert not list(rotated.client_key.parent.glob("*.partial"))


def test_problems_of_secret_pems_name_the_secret_key(export: Path, other: Path, private_folders: Path) -> None:
    payload = json.loads(secret_payload(export))
    payload["client_key.pem"] = json.loads(secret_payload(other))["client_key.pem"]
    mixed = from_secret("butler/qrs", json.dumps(payload))
    with pytest.raises(CertificateError) as error:
        check(mixed)
    assert str(error.value).startswith("client_key.pem of secret butler/qrs does not belong to client.pem of secret "
                                       "butler/qrs")


@pytest.mark.parametrize(("change", "says"), [
    (lambda p: p.pop("root.pem"), "secret butler/qrs: no root.pem (or rootCa) key"),
    (lambda p: p.update({"client_key.pem": "hunter2-not-a-pem"}), "secret butler/qrs: client_key.pem is not PEM text"),
    (lambda p: p.update({"client.pem": None}), "secret butler/qrs: client.pem is not PEM text"),
])
def test_a_secret_missing_a_pem_or_holding_another_value_names_the_key(
        export: Path, private_folders: Path, change: object, says: str) -> None:
    payload = json.loads(secret_payload(export))
    change(payload)  # type: ignore[operator]
    with pytest.raises(CertificateError) as error:
        from_secret("butler/qrs", json.dumps(payload))
    assert str(error.value) == says
    assert "hunter2" not in str(error.value)


def test_the_config_key_names_are_read_too(export: Path, private_folders: Path) -> None:
    payload = {"clientCert": (export / "client.pem").read_text(), "clientKey": (export / "client_key.pem").read_text(),
               "rootCa": (export / "root.pem").read_text()}
    check(from_secret("butler/qrs", json.dumps(payload)))


@pytest.mark.parametrize("text", ["-----BEGIN PRIVATE KEY-----", "[1, 2]", ""])
def test_a_secret_that_is_not_a_json_object_is_refused_without_its_content(text: str, private_folders: Path) -> None:
    with pytest.raises(CertificateError) as error:
        from_secret("butler/qrs", text)
    assert str(error.value).startswith("secret butler/qrs: not ") and "BEGIN" not in str(error.value)


def _run(script: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout.strip()


SCRIPT = """
import os, sys
from pathlib import Path
from butler.qrs.certs import from_secret, secret_payload
files = from_secret("butler/qrs", secret_payload(Path(sys.argv[1] if len(sys.argv) > 1 else {export!r})))
print(files.client_key)
{ending}
"""


def test_the_private_key_is_removed_when_the_process_exits(export: Path, tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path)}
    env_without_lambda = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(export=str(export), ending="")], cwd=ROOT,
                            env={**env_without_lambda, **env}, capture_output=True, text=True, timeout=60, check=True)
    key = Path(result.stdout.strip())
    assert key.is_relative_to(tmp_path) and key.name == "client_key.pem"
    assert not key.exists() and not list(tmp_path.iterdir())  # no qrs-certs-* left behind


def test_in_lambda_one_folder_per_container_is_reused(export: Path, tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "butler-evaluate"}
    killed = _run(SCRIPT.format(export=str(export), ending="os._exit(0)"), env)  # a runtime killed: no atexit
    folder = tmp_path / f"butler-qrs-certs-{os.getuid()}"
    assert Path(killed).is_relative_to(folder) and Path(killed).exists()
    again = _run(SCRIPT.format(export=str(export), ending="os._exit(0)"), env)
    assert again == killed and [p.name for p in tmp_path.iterdir()] == [folder.name]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_in_lambda_a_folder_prepared_by_someone_else_is_refused(
        export: Path, private_folders: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "butler-evaluate")
    elsewhere = private_folders / "elsewhere"
    elsewhere.mkdir()
    (private_folders / f"butler-qrs-certs-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(CertificateError, match="is not a private folder of this user"):
        from_secret("butler/qrs", secret_payload(export))
    assert not list(elsewhere.iterdir())
