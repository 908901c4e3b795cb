"""The API's errors: each carries its HTTP status and a message an administrator can act on.

QRS failures map to 502/503/504 with a message naming the problem (a certificate problem, QRS unreachable, ...);
the messages come from ``butler.qrs.errors`` and ``butler.qrs.certs``, which never include certificate content.
"""

from __future__ import annotations

from typing import Any

from butler.qrs import errors as qrs_errors
from butler.qrs.certs import CertificateError


class ApiError(Exception):
    """An answer other than 2xx: ``status``, a one-line ``message`` and optional structured ``details``."""

    status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.details}


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class BadGateway(ApiError):
    status = 502


class ServiceUnavailable(ApiError):
    status = 503


class GatewayTimeout(ApiError):
    status = 504


def from_qrs(exc: Exception) -> ApiError:
    """The answer for a failure talking to QRS (or reading the certificates it needs)."""
    if isinstance(exc, CertificateError):
        return BadGateway(f"QRS certificate problem: {exc}")
    if isinstance(exc, qrs_errors.QrsTlsError):
        return BadGateway(f"QRS certificate problem (check Butler.qrs.certificates and serverName): {exc}")
    if isinstance(exc, qrs_errors.QrsTimeout):
        return GatewayTimeout(f"QRS did not answer in time: {exc}")
    if isinstance(exc, qrs_errors.QrsUnreachable):
        return ServiceUnavailable(f"QRS is unreachable: {exc}")
    if isinstance(exc, qrs_errors.QrsAuthError):
        return BadGateway(f"QRS refused the service account (Butler.qrs.userHeader) or certificate: {exc}")
    if isinstance(exc, qrs_errors.QrsUnavailable):
        return ServiceUnavailable(f"QRS is unavailable: {exc}")
    return BadGateway(f"QRS answered with an error: {exc}")
