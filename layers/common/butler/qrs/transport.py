"""What sits under the QRS client's session: which calls may be resent, the server name to verify, and transport
failures turned into QRS errors that name the setting or file to fix.

Only GET and the read-only ``POST .../table`` are ever resent. urllib3 resends a failed connection whatever the
method; ``OnlyRetried`` stops that too, so a DELETE is sent exactly once and its caller re-reads to learn what
happened.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError as Urllib3ConnectTimeout
from urllib3.exceptions import NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatch

from butler.qrs import errors
from butler.qrs.certs import CertificateFiles

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

# OpenSSL reasons meaning the server refused our client certificate.
_CLIENT_REFUSED = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "CERTIFICATE_UNKNOWN", "ACCESS_DENIED",
                   "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED")


class OnlyRetried(Retry):
    """A Retry that resends nothing (not even after a failed connection) for a method outside ``allowed_methods``."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if method is not None and method.upper() not in (self.allowed_methods or ()):
            spent = self.new(total=0, connect=0, read=0, other=0, status=0)  # raises at once: exhausted
            return super(OnlyRetried, spent).increment(method, url, response, error, _pool, _stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def retry(retries: int, methods: frozenset[str]) -> Retry:
    return OnlyRetried(total=retries, connect=retries, read=retries, status=retries, other=retries,
                       backoff_factor=0.2, status_forcelist=(502, 503, 504), allowed_methods=methods,
                       raise_on_status=False, respect_retry_after_header=False)


class QrsAdapter(HTTPAdapter):
    """Verifies the server certificate against ``server_name`` (Qlik issues it to the machine name)."""

    def __init__(self, server_name: str | None, **kwargs: Any) -> None:
        self._server_name = server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._server_name:
            kwargs["server_hostname"] = self._server_name
            kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class Target:
    """What the messages name: where QRS is, the files and settings that decide how we reach it."""

    base_url: str
    certificates: CertificateFiles
    server_name: str | None
    connect_timeout: float
    read_timeout: float
    retries: int


def transport_error(call: str, exc: BaseException, target: Target, *, retried: bool) -> errors.QrsError:
    """One line for a request that got no HTTP answer; never urllib3's text (it holds the URL and its xrfkey)."""
    chain = list(_causes(exc))
    tries = f" (tried {target.retries + 1} times)" if retried and target.retries else ""
    mismatch = next((e for e in chain if isinstance(e, HostnameMismatch)), None)
    if mismatch is not None:
        return errors.QrsTlsError(f"{call}: {_name_problem(mismatch, target)}")
    tls = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    if tls is not None:
        return errors.QrsTlsError(f"{call}: {_tls_problem(tls, target)}")
    if isinstance(exc, requests.exceptions.SSLError):
        return errors.QrsTlsError(f"{call}: TLS handshake with {target.base_url} failed ({_os_reason(chain)})")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return errors.QrsBadAnswer(call, "the answer was cut off (the connection broke while the body was read)")
    # A TLS handshake that stalls is reported as a read time-out, but it is the connect time-out that expired.
    handshake = any(isinstance(e, TimeoutError) and "handshake" in str(e) for e in chain)
    if handshake or any(isinstance(e, Urllib3ConnectTimeout) and not isinstance(e, NewConnectionError) for e in chain):
        return errors.QrsTimeout(f"{call}: no connection to {target.base_url} within Butler.qrs.connectTimeout "
                                 f"({target.connect_timeout:g} s){tries}", "Butler.qrs.connectTimeout")
    if any(isinstance(e, ReadTimeoutError) for e in chain) or isinstance(exc, requests.exceptions.ReadTimeout):
        return errors.QrsTimeout(f"{call}: no answer from {target.base_url} within Butler.qrs.readTimeout "
                                 f"({target.read_timeout:g} s){tries}", "Butler.qrs.readTimeout")
    if any(isinstance(e, NewConnectionError) for e in chain):
        return errors.QrsUnreachable(f"{call}: cannot connect to {target.base_url} ({_os_reason(chain)}): check "
                                     f"Butler.qrs.host and Butler.qrs.port{tries}")
    return errors.QrsUnreachable(f"{call}: the connection to {target.base_url} was dropped without an answer "
                                 f"({_os_reason(chain)}){tries}")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (args, urllib3's ``reason``, ``__cause__``, ``__context__``), outermost first."""
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        queue.extend(e for e in inner if isinstance(e, BaseException))


def _os_reason(chain: list[BaseException]) -> str:
    """The operating system's words (``Connection refused``), else the innermost error's type name."""
    text = next((e.strerror for e in chain if isinstance(e, OSError) and e.strerror), None)
    return text or next((type(e).__name__ for e in reversed(chain)
                         if not type(e).__module__.startswith(("requests", "urllib3"))), type(chain[0]).__name__)


def _name_problem(mismatch: BaseException, target: Target) -> str:
    name = target.server_name or target.base_url.split("://", 1)[-1].rsplit(":", 1)[0]
    peer = getattr(mismatch, "_peer_cert", None) or {}
    names = [value for _, value in peer.get("subjectAltName", ())] if isinstance(peer, dict) else []
    issued = f" (it is issued to {', '.join(names[:4])})" if names else ""
    return (f"the QRS server certificate is not issued to {name!r}{issued}: set Butler.qrs.serverName to the name "
            "it is issued to (the Qlik Sense server's machine name)")


def _tls_problem(tls: ssl.SSLError, target: Target) -> str:
    files = target.certificates
    reason = str(tls.reason or "")
    detail = (getattr(tls, "verify_message", None) or reason or type(tls).__name__).strip()
    if isinstance(tls, ssl.SSLCertVerificationError) and "mismatch" in detail:  # OpenSSL's own host check
        return _name_problem(tls, target)
    if isinstance(tls, ssl.SSLCertVerificationError):
        return (f"the QRS server certificate does not verify against {files.describe('root_ca')} ({detail}): give "
                "the root.pem of this Qlik Sense site's certificate export, and check Butler.qrs.serverName")
    if reason == "KEY_VALUES_MISMATCH":
        return f"{files.describe('client_key')} does not belong to {files.describe('client_cert')}"
    if any(part in reason for part in _CLIENT_REFUSED):
        return (f"QRS refused the client certificate {files.describe('client_cert')} ({detail}): give the client.pem "
                "and client_key.pem of this Qlik Sense site's certificate export")
    if isinstance(tls, ssl.SSLEOFError | ssl.SSLZeroReturnError) or "EOF" in reason:
        # TLS 1.3 checks our certificate after the handshake seems done: a refusal may arrive as a bare close.
        return (f"QRS closed the connection during the TLS handshake ({detail}): it most likely refused the client "
                f"certificate {files.describe('client_cert')}; give the client.pem and client_key.pem of this Qlik "
                "Sense site's certificate export")
    return f"TLS handshake with {target.base_url} failed ({detail})"
