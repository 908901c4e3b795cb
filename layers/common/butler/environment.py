"""The functions' environment: one pydantic model of the variables butler's own code reads, validated at once.

All are optional, and an empty value (the template passes "" for a stack parameter left empty) is the same as an
unset one:

- ``BUTLER_CONFIG``: the YAML file (default ``config/butler.yaml``; in Lambda ``/opt/python/config/<ConfigFile>``).
- ``QRS_HOST``, ``QRS_PORT`` (1-65535), ``QRS_SECRET_ID``, ``QRS_SERVER_NAME``: deployment parameters that win over
  ``Butler.qrs`` of the file (``butler.wiring.load_config``).
- ``AUDIT_TABLE``: the DynamoDB audit table (else a JSON Lines file); ``AUDIT_RETENTION_DAYS`` (1-3650): the stack's
  retention, winning over ``auditLog.retentionDays``; ``LOCK_TABLE``: the run lock's table (defaults to
  ``AUDIT_TABLE``); ``NOTIFY_TOPIC_ARN``: the SNS topic of the administrators' run digest.

An invalid value raises ``InvalidEnvironment``: one line per variable, naming it (a ``ConfigError``, so the CLI
prints it as a configuration problem). ``butler.wiring.load_config`` reads the environment first, so a bad variable
fails a function's first invocation before any QRS or AWS call, through the handler's own error path (its log
line, ``CollectorSuccess`` 0, the api's 500 naming it), at no cost to the cold start's imports. Powertools' own
variables (``POWERTOOLS_*``) are read, and checked, by Powertools itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from butler.config import ConfigError


class InvalidEnvironment(ConfigError):
    """One ``NAME='value': reason`` line per invalid variable."""


class Environment(BaseModel):
    """The variables, validated; attribute names are the variables' names in lower case."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    butler_config: str = Field("config/butler.yaml", alias="BUTLER_CONFIG")
    qrs_host: str | None = Field(None, alias="QRS_HOST")
    qrs_port: int | None = Field(None, alias="QRS_PORT", ge=1, le=65535)
    qrs_secret_id: str | None = Field(None, alias="QRS_SECRET_ID")
    qrs_server_name: str | None = Field(None, alias="QRS_SERVER_NAME")
    audit_table: str | None = Field(None, alias="AUDIT_TABLE")
    audit_retention_days: int | None = Field(None, alias="AUDIT_RETENTION_DAYS", ge=1, le=3650)
    lock_table: str | None = Field(None, alias="LOCK_TABLE")
    notify_topic_arn: str | None = Field(None, alias="NOTIFY_TOPIC_ARN")

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Environment:
        """The model of ``env`` (``os.environ`` or a test's dict); raises ``InvalidEnvironment``."""
        given = {name: value.strip() for name in VARIABLES if (value := env.get(name)) and value.strip()}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False):
                name = str(error["loc"][0]) if error["loc"] else "environment"
                reason = error["msg"][:1].lower() + error["msg"][1:]
                problems.append(f"environment variable {name}={given.get(name, '')!r}: {reason}")
            raise InvalidEnvironment(problems) from None


VARIABLES: tuple[str, ...] = tuple(field.alias or name for name, field in Environment.model_fields.items())
_read: tuple[tuple[str | None, ...], Environment] | None = None


def environment(env: Mapping[str, str] | None = None) -> Environment:
    """The validated environment: ``os.environ``'s (``env`` None or ``os.environ``) is read once and read again only
    when one of its variables changed (a test's monkeypatch); any other mapping is validated as it is."""
    global _read
    if env is not None and env is not os.environ:
        return Environment.from_mapping(env)
    values = tuple(os.environ.get(name) for name in VARIABLES)
    read = _read
    if read is None or read[0] != values:
        read = _read = (values, Environment.from_mapping(os.environ))
    return read[1]
