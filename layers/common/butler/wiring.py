"""Building the adapters from the configuration and the environment: one place, shared by the Lambda
handlers, the CLI and the demo.

Environment variables (all optional):
- ``BUTLER_CONFIG``: the YAML file (Lambda: ``config/butler.yaml`` beside the handler).
- ``QRS_HOST``, ``QRS_PORT``, ``QRS_SECRET_ID``, ``QRS_SERVER_NAME``: deployment parameters that override the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from butler import config as config_module
from butler.config import Config
from butler.qrs import QrsClient
from butler.qrs.certs import CertificateFiles, from_files, from_secret

if TYPE_CHECKING:
    from butler.licenses.collect import CollectionSummary
    from butler.licenses.evaluate import EvaluationReport
    from butler.lock import RunLock
    from butler.sinks.audit import AuditTrail
    from butler.sinks.influx import InfluxWriter
    from butler.sinks.notify import Notifier

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


def influx_writer(config: Config) -> InfluxWriter | None:
    """The InfluxDB writer (None when ``influxDb.enable`` is false); a 2.x token from ``tokenSecretId`` wins."""
    settings = config.Butler.influxDb
    if not settings.enable:
        return None
    from butler.sinks.influx import token_from_secret, writer_from_config

    token = None
    if settings.version == 2 and settings.tokenSecretId:
        token = token_from_secret(settings.tokenSecretId, get_secret(settings.tokenSecretId))
    return writer_from_config(settings, token=token, default_tags=config.Butler.licenseMonitoring.tags)


def run_collect(config: Config, *, now: datetime | None = None) -> CollectionSummary:
    """One license collection with adapters built from the config: the collect function and ``butler collect``."""
    from butler.licenses.collect import run_collection

    monitoring = config.Butler.licenseMonitoring
    if not monitoring.enable:
        return run_collection(config, None, None, now=now)
    client = qrs_client(config)
    influx = influx_writer(config) if monitoring.storeInInfluxDb else None
    try:
        return run_collection(config, client, influx, now=now)
    finally:
        client.close()
        if influx is not None:
            influx.close()


# --- evaluation: audit trail, notices, run lock ----------------------------------------------------------------
# AUDIT_TABLE: DynamoDB audit table (else a JSON Lines file); NOTIFY_TOPIC_ARN: SNS topic for release notices;
# LOCK_TABLE: DynamoDB table of the run lock (defaults to AUDIT_TABLE; else a local file lock).

DEFAULT_AUDIT_FILE = "./butler-audit.jsonl"


def audit_sink(config: Config, audit_file: str | None = None, env: Mapping[str, str] = os.environ) -> AuditTrail:
    """DynamoDB when ``AUDIT_TABLE`` is set (``AWS_ENDPOINT_URL`` honoured by boto3), else JSON Lines."""
    from butler.sinks.audit import DynamoDbAuditSink, JsonLinesAuditSink

    settings = config.Butler.licenseManagement.auditLog
    table = env.get("AUDIT_TABLE")
    if table:
        retention = int(env.get("AUDIT_RETENTION_DAYS") or settings.retentionDays)  # the stack's parameter wins
        return DynamoDbAuditSink(table, retention_days=retention, include_user_details=settings.includeUserDetails)
    return JsonLinesAuditSink(audit_file or DEFAULT_AUDIT_FILE, include_user_details=settings.includeUserDetails)


def notifier(env: Mapping[str, str] = os.environ) -> Notifier | None:
    """SNS release notices when ``NOTIFY_TOPIC_ARN`` is set."""
    from butler.sinks.notify import SnsNotifier

    topic = env.get("NOTIFY_TOPIC_ARN")
    return SnsNotifier(topic) if topic else None


def run_lock(config: Config, name: str = "evaluate", env: Mapping[str, str] = os.environ) -> RunLock:
    """A DynamoDB lock (``LOCK_TABLE`` or ``AUDIT_TABLE``), else a file lock per QRS site in the temp folder."""
    import tempfile

    from butler.lock import DynamoDbLock, FileLock

    table = env.get("LOCK_TABLE") or env.get("AUDIT_TABLE")
    if table:
        return DynamoDbLock(table, name)
    qrs = config.Butler.qrs
    return FileLock(Path(tempfile.gettempdir()) / f"butler-{name}-{qrs.host}-{qrs.port}.lock", name)


def run_evaluate(config: Config, *, dry_run: bool | None = None, audit_file: str | None = None,
                 actor: str = "scheduler", now: datetime | None = None) -> EvaluationReport:
    """One evaluation under the run lock (raises ``butler.lock.LockBusy``): the evaluate function and CLI."""
    from butler.licenses.evaluate import run_evaluation

    audit = audit_sink(config, audit_file)
    with run_lock(config, "evaluate"):
        client = qrs_client(config)
        influx = influx_writer(config)
        try:
            return run_evaluation(config, client, audit=audit, notifier=notifier(), influx=influx, dry_run=dry_run,
                                  now=now, actor=actor)
        finally:
            client.close()
            if influx is not None:
                influx.close()
