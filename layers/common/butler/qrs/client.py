"""The QRS client: one ``requests`` session with mutual TLS, a fresh xrfkey per request, and bulk reads.

Bulk reads only: all allocations of a type in one request, users in ``/user/table`` pages with just the columns
the policy needs. Retries (urllib3's ``Retry``) cover connection errors and 502/503/504 for idempotent calls:
GET, DELETE (re-deleting a released allocation is a 404, which the release executor treats as done) and the
read-only ``POST .../table``.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from typing import Any

import requests
from pydantic import TypeAdapter
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from butler.qrs import errors
from butler.qrs.certs import CertificateFiles
from butler.qrs.models import (
    ACCESS_TYPE_PATH,
    AccessTypeOverview,
    Allocation,
    AnalyzerTimeAccessUsage,
    LicenseType,
    User,
)

_XRF_ALPHABET = string.ascii_letters + string.digits
_ALLOCATIONS = TypeAdapter(list[Allocation])
_USERS = TypeAdapter(list[User])
_TIME_USAGE = TypeAdapter(list[AnalyzerTimeAccessUsage])

# /user/table columns: just what the protection rules read.
_USER_COLUMNS: list[dict[str, Any]] = [
    *({"name": n, "columnType": "Property", "definition": n} for n in
      ("id", "userId", "userDirectory", "name", "inactive", "blacklisted", "removedExternally")),
    {"name": "tags", "columnType": "List", "definition": "tag",
     "list": [{"name": "name", "columnType": "Property", "definition": "name"}]},
    {"name": "customProperties", "columnType": "List", "definition": "customProperties",
     "list": [{"name": "definition.name", "columnType": "Property", "definition": "definition.name"},
              {"name": "value", "columnType": "Property", "definition": "value"}]},
]


# The spec names the entity `type`; the QMC itself sends `entity`. QRS ignores unknown properties, so send both.
_USER_TABLE = {"type": "User", "entity": "User", "columns": _USER_COLUMNS}


def xrfkey() -> str:
    return "".join(secrets.choice(_XRF_ALPHABET) for _ in range(16))


class _QrsAdapter(HTTPAdapter):
    """Verifies the server certificate against ``server_name`` (Qlik issues it to the machine name)."""

    def __init__(self, server_name: str | None, **kwargs: Any) -> None:
        self._server_name = server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._server_name:
            kwargs["server_hostname"] = self._server_name
            kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


class QrsClient:
    def __init__(
        self,
        base_url: str,
        certificates: CertificateFiles,
        user_header: str = "UserDirectory=INTERNAL; UserId=sa_api",
        *,
        server_name: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        retries: int = 3,
        page_size: int = 20000,
        pool_size: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self._certificates = certificates
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE and proxy variables must not change who we trust
        self._session.cert = (str(certificates.client_cert), str(certificates.client_key))
        self._session.verify = str(certificates.root_ca)
        self._session.headers.update({"X-Qlik-User": user_header, "Accept": "application/json"})
        self._mount(server_name, retries, pool_size)

    def _mount(self, server_name: str | None, retries: int, pool_size: int) -> None:
        def retry(methods: set[str]) -> Retry:
            return Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=0.2,
                         status_forcelist=(502, 503, 504), allowed_methods=frozenset(methods),
                         raise_on_status=False, respect_retry_after_header=False)

        common = {"pool_connections": 4, "pool_maxsize": pool_size}
        idempotent = _QrsAdapter(server_name, max_retries=retry({"GET", "DELETE"}), **common)
        self._session.mount(f"{self.base_url}/", idempotent)
        read_only_posts = _QrsAdapter(server_name, max_retries=retry({"GET", "POST"}), **common)
        for path in ("user", *ACCESS_TYPE_PATH.values()):
            self._session.mount(f"{self.base_url}/qrs/{path}/table", read_only_posts)

    # --- transport ---------------------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> requests.Response:
        key = xrfkey()
        url = f"{self.base_url}/qrs/{path.lstrip('/')}"
        try:
            response = self._session.request(
                method, url, params={**(params or {}), "xrfkey": key}, json=body,
                headers={"X-Qlik-Xrfkey": key}, timeout=self._timeout, verify=str(self._certificates.root_ca),
            )
        except requests.exceptions.RequestException as exc:
            raise _transport_error(f"{method} /qrs/{path}", self.base_url, self._timeout[1], exc) from None
        if response.status_code >= 400:
            raise _http_error(method, f"/qrs/{path}", response)
        return response

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def close(self) -> None:
        self._session.close()

    # --- license reads -----------------------------------------------------------------------------------------

    def about(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json("about")
        return result

    def access_type_overview(self) -> AccessTypeOverview:
        return AccessTypeOverview.model_validate_json(self.request("GET", "license/accesstypeoverview").content)

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]:
        """All allocations of one type in one request (``/full``)."""
        params = {"filter": qrs_filter} if qrs_filter else None
        raw = self.request("GET", f"{ACCESS_TYPE_PATH[license_type]}/full", params=params).content
        return [a.model_copy(update={"licenseType": license_type}) for a in _ALLOCATIONS.validate_json(raw)]

    def allocation(self, license_type: LicenseType, allocation_id: str) -> Allocation:
        """One allocation by id; raises QrsNotFound once it has been released."""
        raw = self.request("GET", f"{ACCESS_TYPE_PATH[license_type]}/{allocation_id}").content
        return Allocation.model_validate_json(raw).model_copy(update={"licenseType": license_type})

    def allocation_count(self, license_type: LicenseType) -> int:
        return _count(self.get_json(f"{ACCESS_TYPE_PATH[license_type]}/count"))

    def delete_allocation(self, license_type: LicenseType, allocation_id: str) -> None:
        """Remove an allocation; QRS quarantines it instead when it was used within the last seven days."""
        self.request("DELETE", f"{ACCESS_TYPE_PATH[license_type]}/{allocation_id}")

    def analyzer_time_usage(self) -> list[AnalyzerTimeAccessUsage]:
        return _TIME_USAGE.validate_json(self.request("GET", "license/analyzertimeaccessusage/full").content)

    # --- users -------------------------------------------------------------------------------------------------

    def users(self, qrs_filter: str | None = None, *, only_ids: set[str] | None = None) -> list[User]:
        """Users with the columns the protection rules need, in ``/user/table`` pages of ``page_size``.

        ``only_ids`` keeps just those users: the others are dropped row by row, before they are parsed, so a
        100,000-user site costs the memory of the users actually needed.
        """
        return [user for page in self._user_pages(qrs_filter, only_ids) for user in page]

    def _user_pages(self, qrs_filter: str | None, only_ids: set[str] | None) -> Iterator[list[User]]:
        skip = 0
        while True:
            params: dict[str, Any] = {"skip": skip, "take": self.page_size, "sortcolumn": "id"}
            if qrs_filter:
                params["filter"] = qrs_filter
            table = self.request("POST", "user/table", params=params,
                                 body=_USER_TABLE).json()
            rows = table.get("rows") or []
            columns = table.get("columnNames") or []
            id_at = columns.index("id") if "id" in columns else None
            kept = rows if only_ids is None or id_at is None else [r for r in rows if r[id_at] in only_ids]
            yield _USERS.validate_python([_user_row(columns, row) for row in kept])
            if len(rows) < self.page_size:
                return
            skip += len(rows)

    def find_users(self, qrs_filter: str) -> list[User]:
        """Users matching a filter, in one ``/user/full`` request (for lookups of one or a few users)."""
        return _USERS.validate_json(self.request("GET", "user/full", params={"filter": qrs_filter}).content)

    def user_count(self) -> int:
        return _count(self.get_json("user/count"))


def _user_row(columns: list[str], row: list[Any]) -> dict[str, Any]:
    record = dict(zip(columns, row, strict=False))
    record["tags"] = [{"name": cell[0]} for cell in record.get("tags") or [] if cell]
    record["customProperties"] = [
        {"definition": {"name": cell[0]}, "value": cell[1]} for cell in record.get("customProperties") or []
        if cell and len(cell) > 1
    ]
    return record


def _transport_error(call: str, base_url: str, read_timeout: float, exc: Exception) -> errors.QrsError:
    if isinstance(exc, requests.exceptions.SSLError):
        return errors.QrsTlsError(f"{call}: TLS handshake with {base_url} failed: {_short(exc)}")
    # After retries urllib3 wraps a read time-out in MaxRetryError, which requests reports as a ConnectionError.
    wrapped = getattr(exc.args[0] if exc.args else None, "reason", None)
    if isinstance(exc, requests.exceptions.Timeout) or isinstance(wrapped, ReadTimeoutError):
        return errors.QrsTimeout(f"{call}: no answer within {read_timeout:g} s")
    return errors.QrsUnreachable(f"{call}: cannot reach {base_url}: {_short(exc)}")


def _count(payload: Any) -> int:
    # A real QRS answers {"value": N}; the spec says a bare integer. Accept both.
    return int(payload["value"] if isinstance(payload, dict) else payload)


def _http_error(method: str, path: str, response: requests.Response) -> errors.QrsHttpError:
    kind: type[errors.QrsHttpError] = errors.QrsHttpError
    if response.status_code in (401, 403):
        kind = errors.QrsAuthError
    elif response.status_code == 404:
        kind = errors.QrsNotFound
    elif response.status_code >= 500:
        kind = errors.QrsUnavailable
    return kind(method, path, response.status_code, response.text)


def _short(exc: Exception) -> str:
    # The innermost reason, without urllib3's pool repr (it would print the whole URL with its xrfkey).
    reason: BaseException = exc
    while reason.__context__ is not None and reason.__context__ is not reason:
        reason = reason.__context__
    text = str(reason) or type(reason).__name__
    return text.split("(Caused by ")[-1].rstrip(")")[:300]
