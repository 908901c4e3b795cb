"""The configuration -> ``sam deploy --parameter-overrides``: one source of truth for schedules and QRS settings.

``python -m butler sam-params --config config/butler.yaml`` prints ``Key="Value"`` pairs on one line, in the
format SAM CLI parses (values double-quoted, so ``cron(0 2 * * ? *)`` survives). With ``--samconfig`` the
chosen environment's ``parameter_overrides`` (network, alarm thresholds) come first and the configuration's
values win: a command-line ``--parameter-overrides`` replaces samconfig's instead of merging with it.

A deployed configuration never holds secrets: an inline InfluxDB token or password, or certificate/key files
in the folder that is packaged with the functions, is a configuration error. Secrets are named by their full
ARN (``tokenSecretId`` for InfluxDB 2.x, ``passwordSecretId`` for 1.x): the functions' IAM policy grants exactly
those.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from butler.config import Config, ConfigError
from butler.schedule import to_eventbridge

_INFLUX_SECRETS = {"InfluxTokenSecretArn": "tokenSecretId",  # InfluxDB 2.x token
                   "InfluxPasswordSecretArn": "passwordSecretId"}  # InfluxDB 1.x password
_SECRET_FILES = ("*.pem", "*.key", "*.p12", "*.pfx")  # what a certificate export or a private key looks like
_LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "warn": "WARNING", "error": "ERROR",
               "critical": "CRITICAL"}
# One ``Key=Value`` (or ``ParameterKey=Key,ParameterValue=Value``) pair as SAM CLI reads it: a bare value, or one
# quoted with backslash escapes.
_VALUE = r"""("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|(?:\\.|[^\s"'\\])+)"""
_PAIR = re.compile(r"(?:^|\s)([A-Za-z0-9]+)=" + _VALUE)
_LONG_PAIR = re.compile(r"(?:^|\s)ParameterKey=([A-Za-z0-9]+),ParameterValue=" + _VALUE)


def parameter_overrides(config: Config, config_file: Path, config_dir: Path) -> dict[str, str]:
    """The stack parameters the configuration decides; raises ConfigError naming the key path."""
    butler = config.Butler
    params = {
        "ConfigFile": _packaged_path(config_file, config_dir),
        "QrsHost": butler.qrs.host,
        "QrsPort": str(butler.qrs.port),
        "QrsServerName": butler.qrs.serverName or "",
        **_certificate_secret(butler.qrs.secretId),
        "CollectSchedule": _schedule("Butler.licenseMonitoring.collectInterval",
                                     butler.licenseMonitoring.collectInterval),
        "CollectScheduleState": _state(butler.licenseMonitoring.enable),
        "EvaluateSchedule": _schedule("Butler.licenseManagement.evaluation.frequency",
                                      butler.licenseManagement.evaluation.frequency),
        "EvaluateScheduleState": _state(butler.licenseManagement.enable),
        "LogLevel": "DEBUG" if butler.licenseManagement.debug else _LOG_LEVELS[butler.licenseManagement.logLevel],
        "AuditRetentionDays": str(butler.licenseManagement.auditLog.retentionDays),
        **_influx_secret(config),
        **_notice_params(config),
    }
    _refuse_secrets(config, config_dir)
    return params


def _schedule(key_path: str, text: str) -> str:
    try:
        return to_eventbridge(text)
    except ValueError as exc:
        raise ConfigError([f"{key_path}: {exc}"]) from None


def _state(enabled: bool) -> str:
    return "ENABLED" if enabled else "DISABLED"


def _packaged_path(config_file: Path, config_dir: Path) -> str:
    """The config's path inside the layer's config folder (the Lambda reads /opt/python/config/<this>)."""
    try:
        return config_file.resolve().relative_to(config_dir.resolve()).as_posix()
    except ValueError:
        raise ConfigError([f"{config_file}: a deployed configuration must live under {config_dir}/, "
                           "the folder packaged with the functions"]) from None


def _certificate_secret(secret_id: str | None) -> dict[str, str]:
    # A name: the stack creates the (empty) secret under it; an ARN: the stack uses that existing secret.
    if secret_id is None:
        return {}
    if secret_id.startswith("arn:"):
        return {"CertificateSecretArn": secret_id}
    return {"CertificateSecretArn": "", "CertificateSecretName": secret_id}


def _influx_secret(config: Config) -> dict[str, str]:
    """The ARNs of the InfluxDB secrets the functions may read ("" for none)."""
    influx = config.Butler.influxDb
    arns = {param: (getattr(influx, key) if influx.enable else None) or "" for param, key in _INFLUX_SECRETS.items()}
    problems = [f"Butler.influxDb.{key}: a deployment needs the secret's full ARN (the functions' IAM policy grants "
                "access by ARN)" for param, key in _INFLUX_SECRETS.items() if arns[param] and
                not arns[param].startswith("arn:")]
    if problems:
        raise ConfigError(problems)
    return arns


def _notice_params(config: Config) -> dict[str, str]:
    """What the functions need to send user notices: the SMTP password's secret, or the address SES sends as."""
    email = config.Butler.licenseManagement.notifications.email
    key = "Butler.licenseManagement.notifications.email"
    smtp_secret = email.smtp.passwordSecretId if email.enable and email.via == "smtp" else None
    sender = email.from_ if email.enable and email.via == "ses" else None
    problems = []
    if smtp_secret and not smtp_secret.startswith("arn:"):
        problems.append(f"{key}.smtp.passwordSecretId: a deployment needs the secret's full ARN (the functions' IAM "
                        "policy grants access by ARN)")
    if sender and "." not in sender.rpartition("@")[2]:
        problems.append(f"{key}.from: SES sends from an address of a verified domain (name@domain.tld)")
    if problems:
        raise ConfigError(problems)
    return {"SmtpPasswordSecretArn": smtp_secret or "", "NoticeSenderAddress": sender or ""}


def _refuse_secrets(config: Config, folder: Path) -> None:
    influx = config.Butler.influxDb
    problems = [f"Butler.influxDb.{key}: a deployed configuration never holds secrets; {advice}"
                for key, advice in (("token", "put the token in Secrets Manager and give tokenSecretId (its ARN)"),
                                    ("password", "put the password in Secrets Manager and give passwordSecretId "
                                                 "(its ARN)"))
                if getattr(influx, key) is not None]
    found = sorted({p.name for pattern in _SECRET_FILES for p in folder.rglob(pattern)})
    if found:
        problems.append(f"{folder}: holds certificate or key files ({', '.join(found)}), which would be packaged "
                        "with the functions; keep them in the Secrets Manager secret (Butler.qrs.secretId)")
    if problems:
        raise ConfigError(problems)


# --- samconfig.toml and the --parameter-overrides text ----------------------------------------------------------


def samconfig_overrides(path: Path, environment: str) -> dict[str, str]:
    """``parameter_overrides`` of one samconfig.toml environment (its deploy, else global, section)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read it ({exc})"]) from None
    if environment not in data:
        raise ConfigError([f"{path}: no environment {environment!r} (have: {', '.join(sorted(data))})"])
    sections = data[environment]
    for command in ("deploy", "global"):
        value = sections.get(command, {}).get("parameters", {}).get("parameter_overrides")
        if value is not None:
            texts = [value] if isinstance(value, str) else list(value)
            return _parse_all(texts, f"{path}: [{environment}.{command}.parameters] parameter_overrides")
    return {}


def _parse_all(texts: Iterable[object], where: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for text in texts:
        if not isinstance(text, str) or text.startswith("file://"):
            raise ConfigError([f"{where}: use Key=Value strings (file:// references are not merged)"])
        params |= parse_overrides(text)
    return params


def parse_overrides(text: str) -> dict[str, str]:
    """``Key=Value Key2="a value"`` -> dict, unquoting as SAM CLI does."""
    pattern = _LONG_PAIR if "ParameterKey=" in text else _PAIR
    return {key: _unquote(value) for key, value in pattern.findall(text)}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value.replace('\\"', '"').replace("\\'", "'").replace("\\ ", " ")


def format_overrides(params: Mapping[str, str]) -> str:
    """One line of ``Key="Value"`` pairs for ``sam deploy --parameter-overrides``."""
    return " ".join(f'{key}="{value.replace(chr(34), chr(92) + chr(34))}"' for key, value in params.items())
