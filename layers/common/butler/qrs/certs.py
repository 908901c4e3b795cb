"""QRS client certificates: local PEM files, or a Secrets Manager secret written once per container.

The secret is JSON holding the three PEMs of a Qlik Sense certificate export, under the export's file names
(``client.pem``, ``client_key.pem``, ``root.pem``) or the config's key names (``clientCert``, ``clientKey``,
``rootCa``). ``requests`` wants files, so the PEMs go to a private temp directory (0700, files 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from butler.config import Config

_NAMES = {"client_cert": ("client.pem", "clientCert"), "client_key": ("client_key.pem", "clientKey"),
          "root_ca": ("root.pem", "rootCa")}
_materialized: dict[str, CertificateFiles] = {}


@dataclass(frozen=True)
class CertificateFiles:
    client_cert: Path
    client_key: Path
    root_ca: Path


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


def from_secret(secret_id: str, secret_string: str) -> CertificateFiles:
    """Write the secret's PEMs to a private directory; reuse it while the secret's content is unchanged."""
    try:
        data: Any = json.loads(secret_string)
    except json.JSONDecodeError:
        raise CertificateError(f"secret {secret_id}: not JSON") from None
    pems: dict[str, str] = {}
    for field, names in _NAMES.items():
        value = next((data[n] for n in names if isinstance(data, dict) and isinstance(data.get(n), str)), None)
        if not value or "-----BEGIN" not in value:
            raise CertificateError(f"secret {secret_id}: {names[0]} (or {names[1]}) is missing or not PEM")
        pems[field] = value
    cache_key = f"{secret_id}:{hash(secret_string)}"
    if cache_key in _materialized:
        return _materialized[cache_key]
    folder = Path(tempfile.mkdtemp(prefix="qrs-certs-"))  # mkdtemp makes it 0700
    paths = {}
    for field, pem in pems.items():
        path = folder / _NAMES[field][0]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        paths[field] = path
    files = CertificateFiles(**paths)
    _materialized[cache_key] = files
    return files


def secret_payload(folder: Path) -> str:
    """The secret JSON for a folder of exported PEMs (for the demo, tests and the deploy guide)."""
    return json.dumps({names[0]: (folder / names[0]).read_text() for names in _NAMES.values()})
