"""Certificates laid out like a Qlik Sense export (root.pem, server.pem/server_key.pem, client.pem/client_key.pem).

Generated once per directory (EC P-256: fast) and reused afterwards; the server demands a client certificate
signed by root.pem.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FILES = ("root.pem", "server.pem", "server_key.pem", "client.pem", "client_key.pem")


class CertError(RuntimeError):
    """The certificate directory is unusable (e.g. holds only part of a set)."""


@dataclass(frozen=True)
class CertPaths:
    directory: Path

    @property
    def root(self) -> Path:
        return self.directory / "root.pem"

    @property
    def server(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server_key.pem"

    @property
    def client(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client_key.pem"


def ensure_certs(directory: str | Path, server_name: str | None = None) -> CertPaths:
    """Reuse the set in `directory`, or write a fresh one when it holds none."""
    paths = CertPaths(Path(directory))
    paths.directory.mkdir(parents=True, exist_ok=True)
    present = [name for name in FILES if (paths.directory / name).exists()]
    if len(present) == len(FILES):
        return paths
    if present:
        missing = ", ".join(name for name in FILES if name not in present)
        raise CertError(f"{paths.directory} holds an incomplete certificate set (missing {missing})")
    _generate(paths, server_name)
    return paths


def server_context(paths: CertPaths) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(paths.server, paths.server_key)
    context.load_verify_locations(paths.root)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _generate(paths: CertPaths, server_name: str | None) -> None:
    host = server_name or "localhost"
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{host}-CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if server_name and server_name != "localhost":
        names.insert(0, x509.DNSName(server_name))
    server_key, server = _leaf(ca, ca_key, host, ExtendedKeyUsageOID.SERVER_AUTH, names)
    client_key, client = _leaf(ca, ca_key, "QlikClient", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    _write(paths.root, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(paths.server, server.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(paths.server_key, _key_pem(server_key), 0o600)
    _write(paths.client, client.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(paths.client_key, _key_pem(client_key), 0o600)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    start = datetime.now(UTC) - timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
    )


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName] | None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, ca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with `mode` from the start (a key is never readable by others, even briefly)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    with os.fdopen(handle, "wb") as out:
        out.write(data)
        os.fchmod(out.fileno(), mode)
    os.replace(temp, path)
