"""The YAML configuration: strict pydantic models, loading, and key-path errors.

Keys are spelt exactly as in the YAML (camelCase), so a validation error's location *is* the key path an
administrator sees. Every model forbids unknown keys: a typo such as ``exclusion:`` or ``tagz:`` must never
silently leave users unprotected. ``null`` for a list or a section means "empty"/"defaults".
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from butler.schedule import to_eventbridge

LicenseType = Literal["professional", "analyzer"]
LICENSE_TYPES: tuple[LicenseType, ...] = ("professional", "analyzer")
LogLevel = Literal["debug", "info", "warning", "warn", "error", "critical"]


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _none_as_empty_dict(value: Any) -> Any:
    return {} if value is None else value


class Strict(BaseModel):
    """Base: unknown keys are errors; ``null`` for a nested section means its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _null_section(cls, value: Any) -> Any:
        return {} if value is None else value


NonEmptyStr = Annotated[str, Field(min_length=1)]
StrList = Annotated[list[NonEmptyStr], BeforeValidator(_none_as_empty_list)]


def _check_schedule(value: str) -> str:
    to_eventbridge(value)
    return value


ScheduleText = Annotated[str, Field(min_length=1), BeforeValidator(lambda v: _check_schedule(str(v)))]


# --- QRS -------------------------------------------------------------------------------------------------------


class Certificates(Strict):
    clientCert: NonEmptyStr = "client.pem"
    clientKey: NonEmptyStr = "client_key.pem"
    rootCa: NonEmptyStr = "root.pem"


class Qrs(Strict):
    host: NonEmptyStr = "localhost"
    port: int = Field(4242, ge=1, le=65535)
    certificates: Certificates | None = None
    secretId: NonEmptyStr | None = None
    userHeader: NonEmptyStr = "UserDirectory=INTERNAL; UserId=sa_api"
    serverName: NonEmptyStr | None = None  # name to verify in the server certificate (Qlik uses the machine name)
    connectTimeout: float = Field(5.0, gt=0)
    readTimeout: float = Field(120.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    pageSize: int = Field(20000, ge=100, le=100000)

    @model_validator(mode="after")
    def _one_certificate_source(self) -> Qrs:
        if self.certificates is not None and self.secretId is not None:
            raise ValueError("give either certificates (local PEM files) or secretId (Secrets Manager), not both")
        return self


# --- InfluxDB ---------------------------------------------------------------------------------------------------


class InfluxDb(Strict):
    enable: bool = False
    version: Literal[1, 2] = 1
    host: NonEmptyStr = "localhost"
    port: int = Field(8086, ge=1, le=65535)
    tls: bool = False
    verifyTls: bool = True
    database: NonEmptyStr = "butler_metrics"  # version 1
    retentionPolicy: NonEmptyStr | None = None  # version 1
    username: NonEmptyStr | None = None  # version 1
    password: NonEmptyStr | None = None  # version 1
    org: NonEmptyStr | None = None  # version 2
    bucket: NonEmptyStr | None = None  # version 2
    token: NonEmptyStr | None = None  # version 2 (or tokenSecretId)
    tokenSecretId: NonEmptyStr | None = None
    timeoutSeconds: float = Field(30.0, gt=0)
    batchSize: int = Field(5000, ge=1, le=100000)

    @model_validator(mode="after")
    def _version_needs(self) -> InfluxDb:
        if self.enable and self.version == 2:
            missing = [k for k in ("org", "bucket") if getattr(self, k) is None]
            if self.token is None and self.tokenSecretId is None:
                missing.append("token (or tokenSecretId)")
            if missing:
                raise ValueError(f"version 2 needs {', '.join(missing)}")
        return self

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


# --- License monitoring -----------------------------------------------------------------------------------------

MonitoringMetric = Literal["totalLicenses", "allocatedLicenses", "availableLicenses", "userActivity"]
ALL_METRICS: tuple[MonitoringMetric, ...] = ("totalLicenses", "allocatedLicenses", "availableLicenses", "userActivity")
RESERVED_TAGS = ("license_type", "user_id", "user_directory", "dry_run")  # set by Butler on its points


class Costs(Strict):
    """Price per allocated license per month, in the administrator's currency."""

    professional: float = Field(0.0, ge=0)
    analyzer: float = Field(0.0, ge=0)


class LicenseMonitoring(Strict):
    enable: bool = True  # read-only and harmless: on unless switched off
    storeInInfluxDb: bool = True
    collectInterval: ScheduleText = "every 1 hour"
    metrics: Annotated[list[MonitoringMetric], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=lambda: list(ALL_METRICS)
    )
    tags: Annotated[dict[NonEmptyStr, str], BeforeValidator(_none_as_empty_dict)] = Field(default_factory=dict)
    costs: Costs | None = None

    @field_validator("tags")
    @classmethod
    def _no_reserved_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        # Static tags go on every point: they must not shadow the tags Butler sets itself.
        clash = sorted(set(tags) & set(RESERVED_TAGS))
        if clash:
            raise ValueError(f"{', '.join(clash)}: reserved tag name (Butler sets it on its own points)")
        return tags


# --- License management -----------------------------------------------------------------------------------------


class Evaluation(Strict):
    frequency: ScheduleText = "at 2:00 am every day"


class TypeRelease(Strict):
    enable: bool = True
    inactivityDays: float = Field(30, gt=0, le=3650)


def _analyzer_default() -> TypeRelease:
    return TypeRelease(inactivityDays=45)


class Release(Strict):
    professional: TypeRelease = Field(default_factory=TypeRelease)
    analyzer: TypeRelease = Field(default_factory=_analyzer_default)

    def for_type(self, license_type: LicenseType) -> TypeRelease:
        return self.professional if license_type == "professional" else self.analyzer


class Quarantine(Strict):
    gracePeriod: float = Field(7, ge=0, le=3650)


class UserRef(Strict):
    userDirectory: NonEmptyStr
    userId: NonEmptyStr


class CustomPropertyRef(Strict):
    name: NonEmptyStr
    value: NonEmptyStr

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_as_text(cls, value: Any) -> Any:
        # YAML reads `value: 1` or `value: yes` as int/bool; QRS custom property values are text.
        return str(value).lower() if isinstance(value, bool) else str(value) if isinstance(value, int) else value


class UserStatus(Strict):
    protectActiveUsers: bool = False  # protects users whose QMC `inactive` flag is false
    protectNonBlockedUsers: bool = False  # protects users whose `blacklisted` (QMC "Blocked") is false
    protectInternalUsers: bool = False  # protects users whose `removedExternally` is false


class Exclusions(Strict):
    users: Annotated[list[UserRef], BeforeValidator(_none_as_empty_list)] = Field(default_factory=list)
    tags: StrList = Field(default_factory=list)
    customProperties: Annotated[list[CustomPropertyRef], BeforeValidator(_none_as_empty_list)] = Field(
        default_factory=list
    )
    userDirectories: StrList = Field(default_factory=list)
    userStatus: UserStatus = Field(default_factory=UserStatus)


class AuditLog(Strict):
    enable: bool = True
    logLevel: LogLevel = "info"
    includeUserDetails: bool = True
    retentionDays: int = Field(400, ge=1, le=3650)


class LicenseManagement(Strict):
    enable: bool = False
    dryRun: bool = False
    debug: bool = False
    logLevel: LogLevel = "info"
    evaluation: Evaluation = Field(default_factory=Evaluation)
    release: Release = Field(default_factory=Release)
    quarantine: Quarantine = Field(default_factory=Quarantine)
    exclusions: Exclusions = Field(default_factory=Exclusions)
    auditLog: AuditLog = Field(default_factory=AuditLog)
    maxReleasesPerRun: int = Field(100, ge=0)
    maxReleasePercent: float = Field(25, ge=0, le=100)
    concurrency: int = Field(4, ge=1, le=32)


class ButlerSection(Strict):
    qrs: Qrs = Field(default_factory=Qrs)
    influxDb: InfluxDb = Field(default_factory=InfluxDb)
    licenseMonitoring: LicenseMonitoring = Field(default_factory=LicenseMonitoring)
    licenseManagement: LicenseManagement = Field(default_factory=LicenseManagement)


class Config(Strict):
    """The whole file: one top-level key ``Butler``. ``base_dir`` resolves relative certificate paths."""

    Butler: ButlerSection
    base_dir: Path = Field(default=Path("."), exclude=True)

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path


class ConfigError(Exception):
    """Invalid configuration; ``problems`` holds one ``key.path: reason`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling)"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def parse(data: Any, base_dir: Path = Path(".")) -> Config:
    """Validate already-loaded YAML data; raise ConfigError with key paths."""
    if not isinstance(data, dict) or "Butler" not in data:
        raise ConfigError(["Butler: the file needs one top-level key 'Butler'"])
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            problems.append(f"{_key_path(loc) or 'Butler'}: {_reason(error)}")
        raise ConfigError(problems) from None


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML file; every failure is a ConfigError, never a traceback.

    ``overrides`` maps dotted key paths (``Butler.qrs.host``) to values that replace the file's, for the
    deployment parameters that reach a Lambda function as environment variables.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the file ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: malformed YAML{where}: {problem}"]) from None
    for dotted, value in (overrides or {}).items():
        _set_path(data, dotted.split("."), value)
    return parse(data, file.resolve().parent)


def _set_path(node: Any, keys: list[str], value: Any) -> None:
    if not isinstance(node, dict):
        return  # parse() reports the malformed file
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
