"""Qlik Sense Repository Service (QRS): client, models, filters, certificates and errors.

The errors and models are imported eagerly (pure); the client and certificates lazily, so that the pure core
(``butler.licenses``), which speaks QRS's vocabulary, never loads an HTTP library by importing it.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from butler.qrs.certs import CertificateFiles
    from butler.qrs.client import QrsClient

_LAZY = {"QrsClient": "butler.qrs.client", "CertificateFiles": "butler.qrs.certs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'butler.qrs' has no attribute {name!r}")


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
