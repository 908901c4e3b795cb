"""The /v4 license API: one resolver (``create_app``) behind API Gateway and ``butler serve``."""

from butler.api.backend import Backend
from butler.api.routes import create_app

__all__ = ["Backend", "create_app"]
