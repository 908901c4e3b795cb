"""Checks beyond the configuration's schema: the QRS certificate files, and one QRS read.

``validate-config`` runs them; other commands may too. Each problem is one line that starts with the key path
to fix (the certificates' text is never printed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from butler.config import Config, ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class PemFile:
    """One PEM file: ``key`` starts its problem lines, ``shown`` is the file as the administrator named it,
    ``ref`` is how another file's problem refers to it."""

    key: str
    shown: str
    path: Path
    ref: str


class CheckFailed(Exception):
    """The connection check failed; the message is the one line to print."""


def certificate_problems(config: Config) -> list[str]:
    """Problems of the local certificate files (``Butler.qrs.certificates``); none when a secret is used."""
    certificates = config.Butler.qrs.certificates
    if certificates is None:
        return []

    def pem(key: str, value: str) -> PemFile:
        key_path = f"Butler.qrs.certificates.{key}"
        return PemFile(key_path, value, config.resolve(value), key_path)

    return pem_problems(pem("clientCert", certificates.clientCert), pem("clientKey", certificates.clientKey),
                        pem("rootCa", certificates.rootCa))


def pem_problems(client_cert: PemFile, client_key: PemFile, root_ca: PemFile) -> list[str]:
    """Each file readable and PEM, the certificates current, and the client key the client certificate's."""
    problems: list[str] = []
    certs = _load(client_cert, "certificate", x509.load_pem_x509_certificates, problems)
    key = _load(client_key, "private key", lambda data: serialization.load_pem_private_key(data, None), problems)
    roots = _load(root_ca, "certificate", x509.load_pem_x509_certificates, problems)
    problems += _expired(client_cert, certs[:1] if certs else []) + _expired(root_ca, roots or [])
    if certs and key is not None and _spki(certs[0].public_key()) != _spki(key.public_key()):
        problems.append(f"{client_key.key}: {client_key.shown} does not match {client_cert.ref}")
    return problems


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _expired(pem: PemFile, certs: list[x509.Certificate]) -> list[str]:
    now = datetime.now(UTC)
    ends = sorted(c.not_valid_after_utc for c in certs if c.not_valid_after_utc < now)
    return [f"{pem.key}: {pem.shown} expired on {ends[0]:%Y-%m-%d}"] if ends else []


def _load(pem: PemFile, kind: str, parse: Callable[[bytes], T], problems: list[str]) -> T | None:
    """``parse`` of the file's content, or None with the reason appended to ``problems``."""
    try:
        data = pem.path.read_bytes()
    except FileNotFoundError:
        where = "" if str(pem.path) == pem.shown else f" (looked for {pem.path})"
        problems.append(f"{pem.key}: {pem.shown} does not exist{where}")
        return None
    except OSError as exc:
        problems.append(f"{pem.key}: cannot read {pem.shown} ({exc.strerror or type(exc).__name__})")
        return None
    try:
        return parse(data)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        problems.append(f"{pem.key}: {pem.shown} is encrypted; export the certificates without a password")
    except (ValueError, UnsupportedAlgorithm):
        problems.append(f"{pem.key}: {pem.shown} is not a PEM {kind}")
    return None


# --- the connection ---------------------------------------------------------------------------------------------


def check_connection(config: Config) -> str:
    """Read the certificates (files or secret) and make one QRS read, as a run would; the line to print on
    success. Raises CheckFailed with one line saying what failed (ConfigError when nothing says how to connect)."""
    from butler.wiring import certificates, qrs_client

    qrs = config.Butler.qrs
    if qrs.certificates is None and qrs.secretId is None:
        raise ConfigError(["Butler.qrs: connecting needs certificates (local PEM files) or secretId (Secrets Manager)"])
    source = "Butler.qrs.secretId" if qrs.secretId else "Butler.qrs.certificates"
    try:
        files = certificates(config)
    except Exception as exc:  # a diagnostic: whatever the secret or files did, one line (no traceback)
        raise CheckFailed(f"{source}: {_text(exc)}") from None
    if qrs.secretId:
        shown = f"secret {qrs.secretId}"
        problems = pem_problems(PemFile(source, f"client.pem of {shown}", files.client_cert, "its client.pem"),
                                PemFile(source, f"client_key.pem of {shown}", files.client_key, "its client_key.pem"),
                                PemFile(source, f"root.pem of {shown}", files.root_ca, "its root.pem"))
        if problems:
            raise CheckFailed("; ".join(problems))
    client = qrs_client(config)
    try:
        client.access_type_overview()
    except Exception as exc:  # QrsError's messages say what to fix; anything else is one line too
        raise CheckFailed(f"QRS at {qrs.host}:{qrs.port}: {_text(exc)}") from None
    finally:
        client.close()
    return f"connection ok: QRS at {qrs.host}:{qrs.port} answered"


def _text(exc: Exception) -> str:
    text = re.sub(r" \(_ssl\.c:\d+\)?", "", str(exc)).strip()  # OpenSSL's source line helps no administrator
    return text.splitlines()[0] if text else type(exc).__name__
