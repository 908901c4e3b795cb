"""Building the adapters from the configuration and the environment: one place, shared by the Lambda
handlers, the CLI and the demo.

Environment variables (all optional):
- ``BUTLER_CONFIG``: the YAML file (Lambda: ``config/butler.yaml`` beside the handler).
- ``QRS_HOST``, ``QRS_PORT``, ``QRS_SECRET_ID``, ``QRS_SERVER_NAME``: deployment parameters that override the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from butler import config as config_module
from butler.config import Config
from butler.qrs import QrsClient
from butler.qrs.certs import CertificateFiles, from_files, from_secret

_ENV_OVERRIDES = {
    "QRS_HOST": "Butler.qrs.host",
    "QRS_PORT": "Butler.qrs.port",
    "QRS_SECRET_ID": "Butler.qrs.secretId",
    "QRS_SERVER_NAME": "Butler.qrs.serverName",
}
SECRET_MAX_AGE_SECONDS = 300  # a rotated certificate secret is picked up within five minutes


def load_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """The configuration file, with the deployment's environment overrides applied."""
    file = path or env.get("BUTLER_CONFIG") or "config/butler.yaml"
    overrides: dict[str, Any] = {dotted: env[name] for name, dotted in _ENV_OVERRIDES.items() if env.get(name)}
    if "Butler.qrs.secretId" in overrides:
        overrides["Butler.qrs.certificates"] = None
    return config_module.load(file, overrides)


def get_secret(secret_id: str) -> str:
    """A Secrets Manager secret's string, cached for a few minutes per container (Powertools parameters)."""
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS))


def certificates(config: Config) -> CertificateFiles:
    secret_id = config.Butler.qrs.secretId
    if secret_id:
        return from_secret(secret_id, get_secret(secret_id))
    return from_files(config)


def qrs_client(config: Config, pool_size: int | None = None) -> QrsClient:
    qrs = config.Butler.qrs
    return QrsClient(
        f"https://{qrs.host}:{qrs.port}",
        certificates(config),
        qrs.userHeader,
        server_name=qrs.serverName,
        connect_timeout=qrs.connectTimeout,
        read_timeout=qrs.readTimeout,
        retries=qrs.retries,
        page_size=qrs.pageSize,
        pool_size=pool_size or max(8, config.Butler.licenseManagement.concurrency),
    )
