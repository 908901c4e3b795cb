"""The API's errors: each carries its HTTP status and a message an administrator can act on.

Failures of the outside world are 502/503/504, never 500: QRS (errors, malformed answers, time-outs), the QRS
certificates, Secrets Manager, InfluxDB and the AWS APIs. The messages come from ``butler.qrs.errors``,
``butler.qrs.certs`` and ``butler.secrets``, which never include certificate or secret content.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from butler.licenses.model import Refusal, ReleaseFailed, UserNotFound
from butler.qrs import errors as qrs_errors
from butler.qrs.certs import CertificateError
from butler.secrets import SecretError

# AWS error codes that mean "try again later" rather than "refused".
_AWS_BUSY = frozenset({"ThrottlingException", "Throttling", "ProvisionedThroughputExceededException",
                       "RequestLimitExceeded", "TooManyRequestsException", "ServiceUnavailable",
                       "ServiceUnavailableException", "InternalServerError", "InternalFailure",
                       "InternalServiceError", "InternalServiceErrorException"})
_DYNAMODB_OPERATIONS = frozenset({"PutItem", "BatchWriteItem", "GetItem", "DeleteItem", "UpdateItem", "Query",
                                  "Scan", "DescribeTable", "BatchGetItem", "TransactWriteItems"})


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
    if isinstance(exc, qrs_errors.QrsBadAnswer):
        return BadGateway(f"QRS gave a malformed answer: {exc}")
    if isinstance(exc, qrs_errors.QrsInvalidId):  # the API sends only ids QRS gave it: QRS's answer was wrong
        return BadGateway(f"QRS gave an unusable id: {exc}")
    return BadGateway(f"QRS answered with an error: {exc}")


def from_domain(exc: Exception) -> ApiError | None:
    """The answer for a request the core refused: 404 (no such user or license), 409 (ambiguous or protected),
    502 (a release failed); None for anything else."""
    if not isinstance(exc, Refusal):
        return None
    kind: type[ApiError] = (NotFound if isinstance(exc, UserNotFound)
                            else BadGateway if isinstance(exc, ReleaseFailed) else Conflict)
    return kind(exc.message, exc.details)


def from_outside(exc: Exception) -> ApiError | None:
    """The answer for a failure outside this service (QRS, certificates, secrets, InfluxDB, AWS); None for
    anything else, which is a bug (a 500)."""
    if isinstance(exc, qrs_errors.QrsError | CertificateError):
        return from_qrs(exc)
    if isinstance(exc, SecretError):
        return BadGateway(one_line(str(exc)))  # names the secret and the cause, never the value
    if isinstance(exc, BotoCoreError | ClientError):
        return from_aws(exc)
    from butler.sinks.influx import InfluxWriteError  # here: influxdb_client is slow to import on a cold start

    if isinstance(exc, InfluxWriteError):
        return BadGateway(one_line(f"InfluxDB: {exc}"))
    return None


def from_aws(exc: BotoCoreError | ClientError) -> ApiError:
    """503 when AWS is busy or out of reach, 504 when it did not answer in time, else 502 (refused, not found)."""
    message = aws_message(exc)
    if isinstance(exc, ReadTimeoutError):
        return GatewayTimeout(message)
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return ServiceUnavailable(message)
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _AWS_BUSY:
        return ServiceUnavailable(message)
    return BadGateway(message)


def aws_message(exc: BotoCoreError | ClientError, table: str | None = None) -> str:
    """One line naming what failed. ``table``: the DynamoDB table the caller used; without it a DynamoDB
    operation's failure names the configured tables (``AUDIT_TABLE``, ``LOCK_TABLE``)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        dynamodb = exc.operation_name in _DYNAMODB_OPERATIONS
        text = f"{exc.operation_name}: {error.get('Code', 'error')}: {error.get('Message') or 'no message'}"
    else:
        dynamodb, text = "dynamodb" in str(exc).lower(), f"{type(exc).__name__}: {exc}"
    tables = [table] if table else sorted({os.environ.get(n) or "" for n in ("AUDIT_TABLE", "LOCK_TABLE")} - {""})
    if tables and (table or dynamodb):
        return one_line(f"DynamoDB table {' or '.join(tables)}: {text}")
    return one_line(f"AWS {text}")


def one_line(text: str, limit: int = 500) -> str:
    """On one line; an XML or HTML error page reduced to its words."""
    return qrs_errors.one_line(text, limit)
