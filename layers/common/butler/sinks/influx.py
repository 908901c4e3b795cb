"""Writing points to InfluxDB: 1.x over HTTP ``/write``, 2.x through influxdb-client's synchronous write API.

Both take the core's ``Measurement`` records, render them as line protocol with influxdb-client's ``Point``, write
in batches of ``influxDb.batchSize`` points with a time-out, and raise :class:`InfluxWriteError` when a batch is
refused or the server cannot be reached: a failed write is never silently dropped. Credentials (the 1.x password,
the 2.x token) travel only in the ``Authorization`` header, never in a URL, a log line or an error message.

Static tags (``licenseMonitoring.tags``, e.g. the site name) are added to every point written, unless the point
already carries a tag of that name.
"""

from __future__ import annotations

import base64
import json
import re
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from butler.config import InfluxDb
from butler.licenses.forecast import Sample
from butler.licenses.model import Measurement, MeasurementsNotWritten
from butler.observability import traced

# InfluxDB 1.x's /write names for the precisions (it reads "us" and "ns" as nanoseconds).
_V1_PRECISION = {WritePrecision.NS: "n", WritePrecision.US: "u", WritePrecision.MS: "ms", WritePrecision.S: "s"}
_MESSAGE_LIMIT = 300
# Credentials an error text may echo (a proxy's or server's page quoting the request): query parameters, the
# Authorization header or its scheme and value, and user:password@ in a URL.
_CREDENTIALS = (
    (re.compile(r"([?&;](?:u|p|password|token|access_token)=)[^&\s\"',;]*", re.IGNORECASE), r"\1***"),
    (re.compile(r"(authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:Basic|Bearer|Token)\s+)?[^\s\"',}]+", re.IGNORECASE),
     r"\1***"),
    (re.compile(r"\b(Basic|Bearer|Token)\s+[A-Za-z0-9+/=._~-]{6,}"), r"\1 ***"),
    (re.compile(r"(://)[^/@\s:]+:[^/@\s]*@"), r"\1***@"),
)


def make_point(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], at: datetime | None = None,
               precision: str = WritePrecision.S) -> Measurement:
    return Measurement(measurement, dict(tags), dict(fields), at, str(precision))


def line(point: Measurement, default_tags: Mapping[str, str] | None = None) -> str:
    """The measurement in line protocol, rendered by influxdb-client's ``Point`` ("" when it has no fields);
    ``default_tags`` are added where the measurement does not set them."""
    rendered = Point(point.name)  # type: ignore[no-untyped-call]
    for key, value in {**(default_tags or {}), **point.tags}.items():
        rendered.tag(key, value)  # type: ignore[no-untyped-call]
    for key, value in point.fields.items():
        rendered.field(key, value)  # type: ignore[no-untyped-call]
    if point.at is not None:
        rendered.time(point.at, point.precision)  # type: ignore[no-untyped-call]
    text: str = rendered.to_line_protocol()  # type: ignore[no-untyped-call]
    return text


class InfluxWriteError(MeasurementsNotWritten):
    """A write that did not reach InfluxDB; ``written`` counts the points of earlier batches that did."""


class InfluxWriter(ABC):
    """Writes points in batches; ``write`` returns how many points were written, or raises InfluxWriteError."""

    def __init__(self, target: str, *, batch_size: int = 5000, default_tags: Mapping[str, str] | None = None,
                 credentials: Sequence[str | None] = ()) -> None:
        self._credentials = [c for c in credentials if c]  # never in a message, whatever InfluxDB echoes
        self.target = redact(target, self._credentials)  # for messages: where the points go, without credentials
        self.batch_size = batch_size
        self.default_tags = dict(default_tags or {})

    @traced("influxdb write")
    def write(self, points: Sequence[Measurement]) -> int:
        """Write ``points`` (with the static tags); all or raise, batch by batch."""
        lines = [(point.precision, text) for point in points if (text := line(point, self.default_tags))]
        written = 0
        for start in range(0, len(lines), self.batch_size):
            by_precision: dict[str, list[str]] = defaultdict(list)
            for precision, text in lines[start:start + self.batch_size]:
                by_precision[precision].append(text)
            for precision, batch in by_precision.items():
                try:
                    self._write_lines(batch, precision)
                except InfluxWriteError as exc:
                    message = f"{exc} ({written} of {len(lines)} points written before this batch)"
                    raise InfluxWriteError(redact(message, self._credentials), written=written) from None
                written += len(batch)
        return written

    @abstractmethod
    def _write_lines(self, lines: list[str], precision: str) -> None:
        """Send one batch of line protocol (all at ``precision``, influxdb-client's name for it)."""

    @abstractmethod
    def close(self) -> None: ...


class InfluxV1Writer(InfluxWriter):
    """InfluxDB 1.x: ``POST /write?db=&rp=&precision=``; basic auth when a user is configured.

    A missing database is created once (``CREATE DATABASE`` is idempotent) so a fresh server works out of the box;
    when the user may not create it, the write fails with InfluxDB's own reason.
    """

    def __init__(self, settings: InfluxDb, *, default_tags: Mapping[str, str] | None = None) -> None:
        super().__init__(f"InfluxDB {settings.url} database {settings.database}", batch_size=settings.batchSize,
                         default_tags=default_tags, credentials=_basic_auth(settings.username, settings.password))
        self._settings = settings
        self._session = requests.Session()
        self._session.trust_env = False  # proxy and CA-bundle variables must not redirect or re-trust the writes
        if settings.username:
            self._session.auth = (settings.username, settings.password or "")
        self._created = False

    def _write_lines(self, lines: list[str], precision: str) -> None:
        body = "\n".join(lines).encode("utf-8")
        params = {"db": self._settings.database, "precision": _V1_PRECISION[precision]}
        if self._settings.retentionPolicy:
            params["rp"] = self._settings.retentionPolicy
        response = self._send("write", params=params, data=body)
        if response.status_code == 404 and "database not found" in response.text and not self._created:
            self._create_database()
            response = self._send("write", params=params, data=body)
        if response.status_code >= 300:
            raise InfluxWriteError(f"{self.target} refused the write: HTTP {response.status_code} {_reason(response)}")

    def _create_database(self) -> None:
        self._created = True
        name = self._settings.database.replace("\\", "\\\\").replace('"', '\\"')
        response = self._send("query", data={"q": f'CREATE DATABASE "{name}"'})
        if response.status_code >= 300:
            raise InfluxWriteError(f"{self.target} does not exist and cannot be created: "
                                   f"HTTP {response.status_code} {_reason(response)}")

    def _send(self, path: str, *, params: dict[str, str] | None = None, data: Any = None) -> requests.Response:
        settings = self._settings
        try:
            return self._session.post(f"{settings.url}/{path}", params=params, data=data, verify=settings.verifyTls,
                                      timeout=(min(10.0, settings.timeoutSeconds), settings.timeoutSeconds))
        except requests.exceptions.SSLError:
            raise InfluxWriteError(f"{self.target}: TLS handshake failed (check influxDb.tls/verifyTls)") from None
        except requests.exceptions.Timeout:
            raise InfluxWriteError(f"{self.target}: no answer within {settings.timeoutSeconds:g} s") from None
        except requests.exceptions.RequestException as exc:
            raise InfluxWriteError(f"{self.target}: cannot reach the server ({type(exc).__name__})") from None

    @traced("influxdb query")
    def usage_samples(self, start: datetime, end: datetime, license_types: Sequence[str]) -> list[Sample]:
        """``license_usage`` in [start, end], the last reading of each UTC day per type (capacity planning), of
        this site only: the static tags (``licenseMonitoring.tags``) filter the points."""
        response = self._send("query", params={"db": self._settings.database, "epoch": "s",
                                               **({"rp": self._settings.retentionPolicy}
                                                  if self._settings.retentionPolicy else {})},
                              data={"q": usage_query(start, end, license_types, self.default_tags)})
        if response.status_code >= 300:
            raise InfluxQueryError(f"{self.target} refused the query: HTTP {response.status_code} "
                                   f"{_reason(response)}")
        try:
            return _samples(response.json())
        except (ValueError, KeyError, TypeError, IndexError):
            raise InfluxQueryError(f"{self.target}: an unreadable answer to the license_usage query") from None

    def close(self) -> None:
        self._session.close()


class InfluxQueryError(InfluxWriteError):
    """A read of InfluxDB that failed (the same handling as a failed write: exit 1, HTTP 502)."""


def _string(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(text: str) -> str:
    """An InfluxQL double-quoted identifier (a tag key)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def usage_query(start: datetime, end: datetime, license_types: Sequence[str], tags: Mapping[str, str]) -> str:
    """InfluxQL: the last ``total`` and ``allocated`` of each UTC day per ``license_type``, of this site's tags."""
    kinds = " OR ".join(f'"license_type" = {_string(kind)}' for kind in license_types) or "false"
    site = "".join(f" AND {_identifier(key)} = {_string(value)}" for key, value in sorted(tags.items()))
    # literals escaped, times integers:
    return (f'SELECT last("total") AS "total", last("allocated") AS "allocated" FROM "license_usage" '  # noqa: S608
            f"WHERE time >= {int(start.timestamp())}s AND time <= {int(end.timestamp())}s AND ({kinds}){site} "
            f'GROUP BY time(1d), "license_type" fill(none)')


def _samples(answer: dict[str, Any]) -> list[Sample]:
    result = answer["results"][0]
    if "error" in result:
        raise ValueError(result["error"])
    samples = []
    for series in result.get("series", []):
        columns = series["columns"]
        for row in series["values"]:
            values = dict(zip(columns, row, strict=True))
            if values["total"] is None or values["allocated"] is None:
                continue
            samples.append(Sample(datetime.fromtimestamp(int(values["time"]), UTC), series["tags"]["license_type"],
                                  int(values["total"]), int(values["allocated"])))
    return samples


class InfluxV2Writer(InfluxWriter):
    """InfluxDB 2.x: influxdb-client's synchronous write API (``POST /api/v2/write?org=&bucket=&precision=``)."""

    def __init__(self, settings: InfluxDb, token: str, *, default_tags: Mapping[str, str] | None = None) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        super().__init__(f"InfluxDB {settings.url} bucket {settings.bucket}", batch_size=settings.batchSize,
                         default_tags=default_tags, credentials=[token])
        self._bucket, self._org = settings.bucket or "", settings.org or ""
        self._timeout = settings.timeoutSeconds
        self._client = InfluxDBClient(url=settings.url, token=token, org=self._org,
                                      timeout=int(settings.timeoutSeconds * 1000), verify_ssl=settings.verifyTls)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def _write_lines(self, lines: list[str], precision: str) -> None:
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError, SSLError
        from urllib3.exceptions import TimeoutError as Urllib3Timeout

        try:
            # WritePrecision's members are plain strings ("s", "ms", ...); its stub types them as the class
            self._api.write(bucket=self._bucket, org=self._org, record=lines,
                            write_precision=precision)  # type: ignore[arg-type]
        except ApiException as exc:
            raise InfluxWriteError(f"{self.target} refused the write: HTTP {exc.status} "
                                   f"{_body_reason(exc.body, exc.reason)}") from None
        except Urllib3Timeout:
            raise InfluxWriteError(f"{self.target}: no answer within {self._timeout:g} s") from None
        except SSLError:
            raise InfluxWriteError(f"{self.target}: TLS handshake failed (check influxDb.tls/verifyTls)") from None
        except HTTPError as exc:
            raise InfluxWriteError(f"{self.target}: cannot reach the server ({type(exc).__name__})") from None

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def writer_from_config(settings: InfluxDb, *, token: str | None = None,
                       default_tags: Mapping[str, str] | None = None) -> InfluxWriter:
    """The writer for ``influxDb.version``; ``token`` (2.x) when it comes from a secret rather than the file."""
    if settings.version == 1:
        return InfluxV1Writer(settings, default_tags=default_tags)
    resolved = token or settings.token
    if not resolved:
        raise InfluxWriteError("Butler.influxDb.token: version 2 needs a token (or tokenSecretId)")
    return InfluxV2Writer(settings, resolved, default_tags=default_tags)


def token_from_secret(secret_id: str, secret_string: str) -> str:
    """A 2.x token held in a secret: the bare token, or JSON with a ``token`` key."""
    text = secret_string.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text).get("token")
        except (json.JSONDecodeError, AttributeError):
            value = None
        if not isinstance(value, str) or not value:
            raise InfluxWriteError(f"secret {secret_id}: JSON without a 'token' string")
        return value
    if not text:
        raise InfluxWriteError(f"secret {secret_id}: empty")
    return text


def redact(text: str, credentials: Sequence[str] = ()) -> str:
    """``text`` without the given credentials (as written, URL-encoded or in Basic form) and without anything that
    looks like one (``u=``/``p=``/``token=`` parameters, Authorization values, user:password@ in URLs)."""
    from urllib.parse import quote, quote_plus

    for secret in credentials:
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, "***")
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


def _basic_auth(username: str | None, password: str | None) -> list[str | None]:
    """The 1.x password, and the Basic header value that carries it (a proxy page may quote either)."""
    if not password:
        return []
    pair = f"{username or ''}:{password}".encode()
    return [password, base64.b64encode(pair).decode("ascii")]


def _reason(response: requests.Response) -> str:
    return _body_reason(response.text, response.reason)


def _body_reason(body: Any, fallback: Any) -> str:
    """InfluxDB's own explanation: ``{"error": ...}`` (1.x) or ``{"message": ...}`` (2.x), else the raw text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        data = json.loads(text)
        text = str(data.get("error") or data.get("message") or text) if isinstance(data, dict) else text
    except json.JSONDecodeError:
        pass
    return redact(" ".join((text.strip() or str(fallback or "")).split()))[:_MESSAGE_LIMIT]
