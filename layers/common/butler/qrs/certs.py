"""QRS client certificates: local PEM files, or a Secrets Manager secret written to a private folder.

The secret is JSON holding the three PEMs of a Qlik Sense certificate export, under the export's file names
(``client.pem``, ``client_key.pem``, ``root.pem``) or the config's key names (``clientCert``, ``clientKey``,
``rootCa``). ``requests`` wants files, so the PEMs go to a private folder (0700, files 0600): one per process,
removed at exit, or in Lambda one per container (a fixed name in /tmp, reused by the next runtime process).

``check`` parses the three files before any request (the ``cryptography`` package, imported only then), so a file
that is not PEM, or a key that does not belong to its certificate, is named in one line instead of surfacing as an
OpenSSL error at the first handshake. Messages name the file or the secret's key, never the content.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from butler.config import Config

FIELDS = ("client_cert", "client_key", "root_ca")
# field -> (the export's file name, the config's key name)
_NAMES = {"client_cert": ("client.pem", "clientCert"), "client_key": ("client_key.pem", "clientKey"),
          "root_ca": ("root.pem", "rootCa")}
_lock = threading.Lock()
_materialized: dict[str, tuple[str, CertificateFiles]] = {}  # secret id -> (content digest, files)
_folder: Path | None = None
_checked: set[tuple[tuple[str, int, int], ...]] = set()  # (path, mtime, size) of files already found sound


@dataclass(frozen=True)
class CertificateFiles:
    client_cert: Path
    client_key: Path
    root_ca: Path
    secret_id: str | None = None  # the Secrets Manager secret the files were written from, for messages

    def describe(self, field: str) -> str:
        """Where an administrator fixes ``field``: the secret's key, or the config key and its file."""
        export_name, key = _NAMES[field]
        if self.secret_id:
            return f"{export_name} of secret {self.secret_id}"
        return f"Butler.qrs.certificates.{key} ({getattr(self, field)})"


class CertificateError(Exception):
    """The certificate material is missing or malformed (the message names what, never the content)."""


def from_files(config: Config) -> CertificateFiles:
    certificates = config.Butler.qrs.certificates
    if certificates is None:
        raise CertificateError("Butler.qrs: give certificates (PEM files) or secretId")
    files = CertificateFiles(
        client_cert=config.resolve(certificates.clientCert),
        client_key=config.resolve(certificates.clientKey),
        root_ca=config.resolve(certificates.rootCa),
    )
    for key, path in (("clientCert", files.client_cert), ("clientKey", files.client_key), ("rootCa", files.root_ca)):
        if not path.is_file():
            raise CertificateError(f"Butler.qrs.certificates.{key}: no file at {path}")
    return files


# --- from a secret -----------------------------------------------------------------------------------------------


def from_secret(secret_id: str, secret_string: str) -> CertificateFiles:
    """Write the secret's PEMs to the private folder; reuse them while the secret's content is unchanged."""
    pems = _pems(secret_id, secret_string)
    digest = hashlib.sha256(secret_string.encode("utf-8")).hexdigest()
    with _lock:
        known = _materialized.get(secret_id)
        if known is not None and known[0] == digest and all(p.is_file() for p in _paths(known[1])):
            return known[1]
        folder = _private_folder() / hashlib.sha256(secret_id.encode("utf-8")).hexdigest()[:16]
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
        files = CertificateFiles(**{f: _write(folder / _NAMES[f][0], pems[f]) for f in FIELDS}, secret_id=secret_id)
        _materialized[secret_id] = (digest, files)
        return files


def _pems(secret_id: str, secret_string: str) -> dict[str, str]:
    expected = "expected a JSON object with client.pem, client_key.pem and root.pem"
    try:
        data: Any = json.loads(secret_string)
    except json.JSONDecodeError:
        raise CertificateError(f"secret {secret_id}: not JSON ({expected})") from None
    if not isinstance(data, dict):
        raise CertificateError(f"secret {secret_id}: not a JSON object ({expected})")
    pems: dict[str, str] = {}
    for field, names in _NAMES.items():
        present = [n for n in names if n in data]
        if not present:
            raise CertificateError(f"secret {secret_id}: no {names[0]} (or {names[1]}) key")
        value = data[present[0]]
        if not isinstance(value, str) or "-----BEGIN " not in value:
            raise CertificateError(f"secret {secret_id}: {present[0]} is not PEM text")
        pems[field] = value
    return pems


def _private_folder() -> Path:
    """This process's folder (Lambda: this container's, reused after a runtime restart); removed at exit."""
    global _folder
    if _folder is None:
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            _folder = _container_folder(Path(tempfile.gettempdir()) / f"butler-qrs-certs-{os.getuid()}")
        else:
            _folder = Path(tempfile.mkdtemp(prefix="qrs-certs-"))  # mkdtemp makes it 0700
        atexit.register(_remove, _folder, os.getpid())
    return _folder


def _container_folder(path: Path) -> Path:
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        info = path.lstat()  # not a symlink, ours: nobody else may have prepared it
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise CertificateError(f"{path} exists and is not a private folder of this user") from None
        path.chmod(0o700)
    return path


def _remove(folder: Path, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # a forked child must not remove its parent's files
        shutil.rmtree(folder, ignore_errors=True)


def _write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (0600) by an atomic rename, so a handshake never reads half a file."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
    return path


def _paths(files: CertificateFiles) -> list[Path]:
    return [getattr(files, field) for field in FIELDS]


def secret_payload(folder: Path) -> str:
    """The secret JSON for a folder of exported PEMs (for the demo, tests and the deploy guide)."""
    return json.dumps({names[0]: (folder / names[0]).read_text() for names in _NAMES.values()})


# --- checking the PEMs -------------------------------------------------------------------------------------------


def check(files: CertificateFiles) -> None:
    """Raise CertificateError naming the file to fix unless the three PEMs parse and the key fits the certificate."""
    fingerprint = tuple(_stat(files, field) for field in FIELDS)
    if fingerprint in _checked:
        return
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    certificate = _certificates(files, "client_cert")[0]
    key = _private_key(files)
    _certificates(files, "root_ca")
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise CertificateError(f"{files.describe('client_key')} does not belong to {files.describe('client_cert')}: "
                               "take both from the same Qlik Sense certificate export")
    _checked.add(fingerprint)


def _stat(files: CertificateFiles, field: str) -> tuple[str, int, int]:
    path: Path = getattr(files, field)
    try:
        info = path.stat()
    except OSError as exc:
        raise CertificateError(f"{files.describe(field)}: cannot read the file ({exc.strerror})") from None
    return str(path), info.st_mtime_ns, info.st_size


def _read(files: CertificateFiles, field: str) -> bytes:
    try:
        return Path(getattr(files, field)).read_bytes()
    except OSError as exc:
        raise CertificateError(f"{files.describe(field)}: cannot read the file ({exc.strerror})") from None


def _certificates(files: CertificateFiles, field: str) -> list[Any]:
    from cryptography import x509

    data = _read(files, field)
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        hint = " (it holds a private key)" if b"PRIVATE KEY-----" in data else ""
        raise CertificateError(f"{files.describe(field)}: not a PEM certificate{hint}")
    return found


def _private_key(files: CertificateFiles) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read(files, "client_key")
    try:
        return load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # the key is encrypted
        raise CertificateError(f"{files.describe('client_key')}: the key is protected by a password; export the "
                               "certificates without one") from None
    except (ValueError, UnsupportedAlgorithm):
        hint = " (it holds a certificate)" if b"CERTIFICATE-----" in data else ""
        raise CertificateError(f"{files.describe('client_key')}: not a PEM private key{hint}") from None
