"""The YAML configuration: strict pydantic models, loading, and key-path errors.

Keys are spelt exactly as in the YAML (camelCase), so a validation error's location *is* the key path an
administrator sees. Every model forbids unknown keys: a typo such as ``exclusion:`` or ``tagz:`` must never
silently leave users unprotected; neither may a key given twice (PyYAML would keep the last one silently), nor
``.inf``/``.nan`` (every command would crash on them later). ``null`` for a list or a section means
"empty"/"defaults".
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from butler.qrs.models import LICENSE_TYPES, LicenseType
from butler.schedule import to_eventbridge

__all__ = ["LICENSE_TYPES", "Config", "ConfigError", "LicenseManagement", "LicenseType", "load", "parse"]

LogLevel = Literal["debug", "info", "warning", "warn", "error", "critical"]


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _none_as_empty_dict(value: Any) -> Any:
    return {} if value is None else value


class Strict(BaseModel):
    """Base: unknown keys are errors; ``null`` for a nested section means its defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)

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

_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")  # name@domain: a bare address, as an envelope sender needs


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address (name@domain)")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


EmailAddress = Annotated[str, Field(min_length=1), AfterValidator(_email)]
HttpUrlText = Annotated[str, Field(min_length=1), AfterValidator(_http_url)]


def key_error(key: str, reason: str) -> PydanticCustomError:
    """A model validator's problem reported at one of the model's keys, so its line names that key's whole path."""
    return PydanticCustomError("key_problem", "{reason}", {"key": key, "reason": reason})


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
    passwordSecretId: NonEmptyStr | None = None  # version 1: the password from Secrets Manager
    org: NonEmptyStr | None = None  # version 2
    bucket: NonEmptyStr | None = None  # version 2
    token: NonEmptyStr | None = None  # version 2 (or tokenSecretId)
    tokenSecretId: NonEmptyStr | None = None
    timeoutSeconds: float = Field(30.0, gt=0)
    batchSize: int = Field(5000, ge=1, le=100000)

    @model_validator(mode="after")
    def _password_source(self) -> InfluxDb:
        if self.password is not None and self.passwordSecretId is not None:
            raise key_error("passwordSecretId", "give either password or passwordSecretId, not both")
        if self.passwordSecretId is not None and self.version == 2:
            raise key_error("passwordSecretId", "is the InfluxDB 1.x password; version 2 uses tokenSecretId")
        if (self.password or self.passwordSecretId) and self.version == 1 and self.username is None:
            raise key_error("username", "required with a password (InfluxDB 1.x logs in as this user)")
        return self

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


class EvaluationSchedule(Strict):
    frequency: ScheduleText = "at 2:00 am every day"


class TypeRelease(Strict):
    enable: bool = True
    inactivityDays: float = Field(30, gt=0, le=3650)


class AnalyzerRelease(TypeRelease):
    """Only analyzer allocations have ``releaseRedundant``: on ``professional`` it is an unknown key. The default
    threshold is the analyzer's own also when the section gives only some keys (``analyzer: {enable: true}``)."""

    inactivityDays: float = Field(45, gt=0, le=3650)
    releaseRedundant: bool = False  # release the analyzer allocation of a user who also holds a professional one


class Release(Strict):
    professional: TypeRelease = Field(default_factory=TypeRelease)
    analyzer: AnalyzerRelease = Field(default_factory=AnalyzerRelease)

    def for_type(self, license_type: LicenseType) -> TypeRelease:
        return self.professional if license_type == "professional" else self.analyzer


class Quarantine(Strict):
    gracePeriod: float = Field(7, ge=0, le=3650)


class ExcludedUser(Strict):
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
    users: Annotated[list[ExcludedUser], BeforeValidator(_none_as_empty_list)] = Field(default_factory=list)
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


class Smtp(Strict):
    host: NonEmptyStr = "localhost"
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: NonEmptyStr | None = None
    passwordSecretId: NonEmptyStr | None = None  # the SMTP password, from Secrets Manager
    timeoutSeconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _password_needs_username(self) -> Smtp:
        if self.passwordSecretId is not None and self.username is None:
            raise key_error("username", "required with passwordSecretId (SMTP AUTH logs in as this user)")
        return self


class Ses(Strict):
    region: NonEmptyStr | None = None  # None: the function's own region


class Email(Strict):
    enable: bool = False
    via: Literal["smtp", "ses"] = "smtp"
    from_: EmailAddress | None = Field(None, alias="from")  # `from` is a Python keyword
    smtp: Smtp = Field(default_factory=Smtp)
    ses: Ses = Field(default_factory=Ses)
    hubUrl: HttpUrlText | None = None
    adminAddresses: Annotated[list[EmailAddress], BeforeValidator(_none_as_empty_list)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _enabled_needs_sender(self) -> Email:
        if self.enable and self.from_ is None:
            raise key_error("from", "required when enable is true (the sender of warnings and digests)")
        return self


class Notifications(Strict):
    warnDaysBefore: int = Field(0, ge=0, le=3650)
    requireWarning: bool = False
    email: Email = Field(default_factory=Email)

    @model_validator(mode="after")
    def _required_warning_needs_notice(self) -> Notifications:
        if self.requireWarning and self.warnDaysBefore == 0:
            raise key_error("requireWarning", "true needs warnDaysBefore greater than 0 (warnDaysBefore: 0 sends "
                                              "no warning, so nothing could ever be released)")
        return self

    @property
    def warns(self) -> bool:
        """Whether users are warned before a release (``warnDaysBefore`` > 0)."""
        return self.warnDaysBefore > 0


class LicenseManagement(Strict):
    enable: bool = False
    dryRun: bool = False
    debug: bool = False
    logLevel: LogLevel = "info"
    evaluation: EvaluationSchedule = Field(default_factory=EvaluationSchedule)
    release: Release = Field(default_factory=Release)
    quarantine: Quarantine = Field(default_factory=Quarantine)
    exclusions: Exclusions = Field(default_factory=Exclusions)
    auditLog: AuditLog = Field(default_factory=AuditLog)
    maxReleasesPerRun: int = Field(100, ge=0)  # throttle: the rest of the candidates are deferred
    maxReleasePercent: float = Field(25, ge=0, le=100)  # throttle, per license type
    abortAbovePercent: float = Field(90, gt=0, le=100)  # breaker: more candidates than this => release nothing
    notifications: Notifications = Field(default_factory=Notifications)
    concurrency: int = Field(4, ge=1, le=32)

    @model_validator(mode="after")
    def _warning_before_threshold(self) -> LicenseManagement:
        # Warning N days before a threshold of N days or less would warn users on the day they last worked.
        days = self.notifications.warnDaysBefore
        for license_type in LICENSE_TYPES:
            rule = self.release.for_type(license_type)
            if days and rule.enable and days >= rule.inactivityDays:
                raise key_error("notifications.warnDaysBefore", f"{days} must be less than "
                                f"release.{license_type}.inactivityDays ({rule.inactivityDays:g})")
        return self


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


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds (``X | None``, ``list[X]``, ``Annotated[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The YAML keys the model at ``loc`` accepts (list indexes are skipped: a list's items share one model)."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        models = _models_in(field.annotation) if field is not None else []
        if not models:
            return []
        model = models[0]
    return [f.alias or name for name, f in model.model_fields.items() if not f.exclude]


_ONLY_UNDER = {"releaseRedundant": "release.analyzer"}  # keys valid in one section only


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    if loc[-1] in _ONLY_UNDER:
        return f"unknown key (only {_ONLY_UNDER[str(loc[-1])]} has it)"
    valid = _keys_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (valid here: {', '.join(valid)})" if valid else "unknown key"


def _problem(error: Any) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    if error["type"] == "key_problem":
        loc = (*loc, error["ctx"]["key"])
    if error["type"] == "extra_forbidden":
        reason = _unknown_key(loc)
    elif error["type"] == "missing":
        reason = "required key is missing"
    else:
        reason = str(error["msg"]).removeprefix("Value error, ")
    return f"{_key_path(loc) or 'Butler'}: {reason}"


def parse(data: Any, base_dir: Path = Path(".")) -> Config:
    """Validate already-loaded YAML data; raise ConfigError with key paths."""
    if not isinstance(data, dict) or "Butler" not in data:
        raise ConfigError(["Butler: the file needs one top-level key 'Butler'"])
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError([_problem(error) for error in exc.errors()]) from None


# --- reading the file -------------------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s constructors, plus a check of every mapping for keys given twice: PyYAML keeps the
    last one silently, so a second ``exclusions:`` would drop the first's protections, or a second
    ``dryRun: false`` make a dry-run configuration live. Keys from a merge (``<<``) are overridden, as YAML says.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._found: list[tuple[int, str]] = []  # (line, problem)

    @property
    def duplicates(self) -> list[str]:
        return [problem for _, problem in sorted(self._found)]

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_keys(node, (), set())
        return super().construct_document(node)

    def _check_keys(self, node: yaml.Node, loc: tuple[int | str, ...], seen: set[int]) -> None:
        if id(node) in seen:  # an alias: checked where its anchor is (and aliases may form cycles)
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._check_keys(item, (*loc, index), seen)
        elif isinstance(node, yaml.MappingNode):
            self._check_mapping(node, loc, seen)

    def _check_mapping(self, node: yaml.MappingNode, loc: tuple[int | str, ...], seen: set[int]) -> None:
        lines: dict[tuple[str, str], list[int]] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else None
            if key.tag != _MERGE_TAG and name is not None:
                lines.setdefault((key.tag, name), []).append(key.start_mark.line + 1)
            self._check_keys(value, loc if key.tag == _MERGE_TAG else (*loc, name or "?"), seen)
        for (_, name), where in lines.items():
            if len(where) > 1:
                listed = ", ".join(map(str, where[:-1])) + f" and {where[-1]}"
                self._found.append((where[0], f"{_key_path((*loc, name))}: duplicate key (lines {listed})"))


def _read_yaml(file: Path) -> tuple[Any, list[str]]:
    """The file's data (as ``yaml.safe_load`` reads it) and its duplicate-key problems."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the file ({exc.strerror})"]) from None
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: malformed YAML{where}: {problem}"]) from None
    finally:
        loader.dispose()
    return data, loader.duplicates


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML file; every failure is a ConfigError, never a traceback.

    ``overrides`` maps dotted key paths (``Butler.qrs.host``) to values that replace the file's, for the
    deployment parameters that reach a Lambda function as environment variables. Duplicate keys and the
    schema's problems are reported together, duplicates first.
    """
    file = Path(path)
    data, duplicates = _read_yaml(file)
    for dotted, value in (overrides or {}).items():
        _set_path(data, dotted.split("."), value)
    try:
        config = parse(data, file.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(duplicates + exc.problems) from None
    if duplicates:
        raise ConfigError(duplicates)
    return config


def _set_path(node: Any, keys: list[str], value: Any) -> None:
    if not isinstance(node, dict):
        return  # parse() reports the malformed file
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
