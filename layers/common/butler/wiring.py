"""Building the adapters from the configuration and the environment: one place, shared by the Lambda
handlers, the CLI and the demo.

Environment variables (all optional):
- ``BUTLER_CONFIG``: the YAML file (Lambda: ``config/butler.yaml`` beside the handler).
- ``QRS_HOST``, ``QRS_PORT``, ``QRS_SECRET_ID``, ``QRS_SERVER_NAME``: deployment parameters that override the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
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
    from butler.licenses.holds import Holds
    from butler.licenses.model import LicenseSource
    from butler.licenses.on_request import OnRequest, RequestSinks
    from butler.licenses.planning import ForecastAnswer
    from butler.lock import RunLock
    from butler.sinks.audit import AuditTrail
    from butler.sinks.influx import InfluxWriter
    from butler.sinks.notify import Notifier
    from butler.sinks.user_notices import MailNotices

_ENV_OVERRIDES = {
    "QRS_HOST": "Butler.qrs.host",
    "QRS_PORT": "Butler.qrs.port",
    "QRS_SECRET_ID": "Butler.qrs.secretId",
    "QRS_SERVER_NAME": "Butler.qrs.serverName",
}
SECRET_MAX_AGE_SECONDS = 300  # a rotated certificate secret is picked up within five minutes


def load_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """The configuration file, with the deployment's environment overrides applied."""
    from butler.environment import environment

    variables = environment(env).model_dump(by_alias=True)  # validated: a bad one raises, naming it
    file = path or variables["BUTLER_CONFIG"]
    overrides: dict[str, Any] = {dotted: variables[name] for name, dotted in _ENV_OVERRIDES.items()
                                 if variables[name] is not None}
    if "Butler.qrs.secretId" in overrides:
        overrides["Butler.qrs.certificates"] = None
    return config_module.load(file, overrides)


def get_secret(secret_id: str) -> str:
    """A Secrets Manager secret's string, cached for a few minutes per container; ``butler.secrets.SecretError``
    (one line naming the secret and the cause) when it cannot be read."""
    from butler.secrets import get_secret as read_secret

    return read_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS)


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
    """The InfluxDB writer (None when ``influxDb.enable`` is false). Credentials from Secrets Manager: the 2.x
    token (``tokenSecretId``) wins over ``token``; the 1.x password (``passwordSecretId``) is the bare string, or
    JSON with a ``password`` key (the console's key/value form)."""
    settings = config.Butler.influxDb
    if not settings.enable:
        return None
    import json

    from butler.sinks.influx import InfluxWriteError, token_from_secret, writer_from_config

    token = None
    if settings.version == 2 and settings.tokenSecretId:
        token = token_from_secret(settings.tokenSecretId, get_secret(settings.tokenSecretId))
    if settings.version == 1 and settings.passwordSecretId:
        text = get_secret(settings.passwordSecretId).strip()
        try:  # a generated password may well start with "{": only a JSON object is read as one
            data = json.loads(text)
        except ValueError:
            data = None
        password = data.get("password") if isinstance(data, dict) else text
        if not isinstance(password, str) or not password:
            raise InfluxWriteError(f"secret {settings.passwordSecretId}: empty, or JSON without a 'password' string")
        settings = settings.model_copy(update={"password": password})
    return writer_from_config(settings, token=token, default_tags=config.Butler.licenseMonitoring.tags)


def run_collect(config: Config, *, now: datetime | None = None, audit_file: str | None = None) -> CollectionSummary:
    """One license collection with adapters built from the config: the collect function and ``butler collect``.
    The daily snapshots go to the audit store when there is one: ``AUDIT_TABLE``, or ``audit_file`` (the CLI's
    ``--audit-file``; never a file nobody asked for)."""
    from butler.environment import environment
    from butler.licenses.collect import run_collection

    monitoring = config.Butler.licenseMonitoring
    if not monitoring.enable:
        return run_collection(config, None, None, now=now)
    history = audit_sink(config, audit_file) if environment().audit_table or audit_file else None
    client = qrs_client(config)
    influx = influx_writer(config) if monitoring.storeInInfluxDb else None
    try:
        return run_collection(config, client, influx, now=now, history=history)
    finally:
        client.close()
        if influx is not None:
            influx.close()


def run_forecast(config: Config, *, audit: AuditTrail | None = None, audit_file: str | None = None,
                 horizon_days: int = 180, now: datetime | None = None) -> ForecastAnswer:
    """Capacity planning (``butler forecast``, the API, the collect function's ``DaysToExhaustion``): InfluxDB's
    ``license_usage`` when it is the history, else the audit store's snapshots; releases from the audit store."""
    from datetime import UTC

    from butler.licenses.planning import plan_capacity, reads_influx

    store = audit or audit_sink(config, audit_file)
    writer = influx_writer(config) if reads_influx(config) else None
    try:
        reader = None
        if writer is not None:  # reads_influx: version 1 only
            from butler.sinks.influx import InfluxV1Writer

            reader = writer if isinstance(writer, InfluxV1Writer) else None
        return plan_capacity(config, audit=store, usage=reader, now=now or datetime.now(UTC),
                             horizon_days=horizon_days)
    finally:
        if writer is not None:
            writer.close()


# --- evaluation: audit trail, notices, run lock ----------------------------------------------------------------
# AUDIT_TABLE: DynamoDB audit table (else a JSON Lines file); NOTIFY_TOPIC_ARN: SNS topic for run digests;
# LOCK_TABLE: DynamoDB table of the run lock (defaults to AUDIT_TABLE; else a local file lock).

DEFAULT_AUDIT_FILE = "./butler-audit.jsonl"


def cli_actor() -> str:
    """Who runs a command: ``cli:<os user>@<host>``, as the audit trail records it."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname() or 'unknown'}"


def audit_sink(config: Config, audit_file: str | None = None, env: Mapping[str, str] = os.environ) -> AuditTrail:
    """DynamoDB when ``AUDIT_TABLE`` is set (``AWS_ENDPOINT_URL`` honoured by boto3), else JSON Lines."""
    from butler.environment import environment
    from butler.sinks.audit import DynamoDbAuditSink, JsonLinesAuditSink

    settings = config.Butler.licenseManagement.auditLog
    variables = environment(env)
    table = variables.audit_table
    if table:
        retention = variables.audit_retention_days or settings.retentionDays  # the stack's parameter wins
        return DynamoDbAuditSink(table, retention_days=retention, include_user_details=settings.includeUserDetails)
    return JsonLinesAuditSink(audit_file or DEFAULT_AUDIT_FILE, include_user_details=settings.includeUserDetails)


def notifier(env: Mapping[str, str] = os.environ) -> Notifier | None:
    """The administrators' SNS run digest when ``NOTIFY_TOPIC_ARN`` is set."""
    from butler.environment import environment
    from butler.sinks.notify import SnsNotifier

    topic = environment(env).notify_topic_arn
    return SnsNotifier(topic) if topic else None


def run_lock(config: Config, name: str = "evaluate", env: Mapping[str, str] = os.environ) -> RunLock:
    """One lock per Qlik site (host resolved, port): DynamoDB (``LOCK_TABLE`` or ``AUDIT_TABLE``) with a
    heartbeat, else a file lock in the temp folder."""
    from butler.environment import environment
    from butler.lock import DynamoDbLock, FileLock, site_key

    site = site_key(config.Butler.qrs.host, config.Butler.qrs.port)
    variables = environment(env)
    table = variables.lock_table or variables.audit_table
    if table:
        return DynamoDbLock(table, f"{name}@{site}")
    return FileLock.for_site(name, site)


def run_evaluate(config: Config, *, dry_run: bool | None = None, audit_file: str | None = None,
                 actor: str = "scheduler", now: datetime | None = None) -> EvaluationReport:
    """One evaluation under the run lock (raises ``butler.lock.LockBusy``): the evaluate function and CLI."""
    from butler.licenses.evaluate import run_evaluation

    set_log_level(config)
    audit = audit_sink(config, audit_file)
    with run_lock(config, "evaluate") as lock:
        client = qrs_client(config)
        influx = influx_writer(config)
        try:
            return run_evaluation(config, client, audit=audit, notifier=notifier(), influx=influx, dry_run=dry_run,
                                  now=now, actor=actor, alive=lock.alive, mail=user_notices(config))
        finally:
            client.close()
            if influx is not None:
                influx.close()


def holds(config: Config, audit_file: str | None = None, client: LicenseSource | None = None) -> Holds:
    """Holds and reinstatement for the CLI (the API builds its own per container): the audit store, and QRS
    connected on first use."""
    from functools import cache

    from butler.licenses.holds import Holds
    from butler.licenses.release import utc_now

    qrs: Callable[[], LicenseSource] = (lambda: client) if client is not None else cache(lambda: qrs_client(config))
    return Holds(qrs, audit_sink(config, audit_file), config.Butler.licenseManagement, utc_now)


def user_notices(config: Config) -> MailNotices | None:
    """Mail to users and administrators (``notifications.email``); None when e-mail is off. The sender (and the
    SMTP password secret) is built on its first mail."""
    from butler.sinks.email import mailer_from_config
    from butler.sinks.user_notices import MailNotices

    email = config.Butler.licenseManagement.notifications.email
    if not email.enable:
        return None
    return MailNotices(lambda: mailer_from_config(email, get_secret), hub_url=email.hubUrl,
                       admin_addresses=email.adminAddresses)


def set_log_level(config: Config) -> None:
    """The log level of ``licenseManagement`` (``debug: true`` wins), set where the run is assembled."""
    from butler.observability import logger

    management = config.Butler.licenseManagement
    level = "warning" if management.logLevel == "warn" else management.logLevel
    logger.setLevel("DEBUG" if management.debug else level.upper())


def request_sinks(config: Config, audit_file: str | None = None) -> RequestSinks:
    """The audit trail, the administrators' digest and InfluxDB for releases on request (the api function and
    ``butler serve``)."""
    from butler.licenses.on_request import RequestSinks

    return RequestSinks(audit_sink(config, audit_file), notifier(), influx_writer(config))


def on_request(config: Config, client: LicenseSource) -> OnRequest:
    """One user on request (status, picture, release) for the CLI; the API keeps its own per container."""
    from butler.licenses.on_request import OnRequest
    from butler.licenses.release import utc_now

    return OnRequest(client, config.Butler.licenseManagement, utc_now)
