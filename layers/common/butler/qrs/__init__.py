"""Qlik Sense Repository Service (QRS): client, models, filters, certificates and errors."""

from butler.qrs.certs import CertificateFiles
from butler.qrs.client import QrsClient
from butler.qrs.errors import (
    QrsAuthError,
    QrsBadAnswer,
    QrsError,
    QrsHttpError,
    QrsInvalidId,
    QrsNoAnswer,
    QrsNotFound,
    QrsTimeout,
    QrsTlsError,
    QrsUnavailable,
    QrsUnreachable,
)

__all__ = [
    "CertificateFiles",
    "QrsAuthError",
    "QrsBadAnswer",
    "QrsClient",
    "QrsError",
    "QrsHttpError",
    "QrsInvalidId",
    "QrsNoAnswer",
    "QrsNotFound",
    "QrsTimeout",
    "QrsTlsError",
    "QrsUnavailable",
    "QrsUnreachable",
]
