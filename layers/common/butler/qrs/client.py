"""The QRS client: one ``requests`` session with mutual TLS, a fresh xrfkey per request, and bulk reads.

Bulk reads only: all allocations of a type in one request, users in ``/user/table`` pages with just the columns
the policy needs, re-reads by id in batches of ``ID_BATCH`` (filters of GUIDs). Only GET and the read-only
``POST .../table`` are retried (urllib3's ``Retry``: connection errors and 502/503/504); a DELETE is sent once,
and a failure without an answer (``QrsNoAnswer``) leaves its caller to re-read. Every answer is checked against
the shape asked for (``butler.qrs.answers``); anything else is ``QrsBadAnswer``.
"""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import requests

from butler.licenses.server_license import ServerLicense, parse_server_license
from butler.observability import subsegment
from butler.qrs import answers, errors, filters
from butler.qrs.certs import CertificateFiles, check
from butler.qrs.models import (
    ACCESS_TYPE_PATH,
    AccessTypeOverview,
    Allocation,
    LicenseType,
    User,
    is_guid,
)
from butler.qrs.transport import QrsAdapter, Target, retry, transport_error

_XRF_ALPHABET = string.ascii_letters + string.digits
ID_BATCH = 50  # ids in one filter: about 2.5 kB of query string, well within QRS's URL limit
_USER_TABLE = "POST /qrs/user/table"


def xrfkey() -> str:
    return "".join(secrets.choice(_XRF_ALPHABET) for _ in range(16))


def _batches(ids: Iterable[str]) -> Iterator[list[str]]:
    """The GUIDs among ``ids``, lower-cased, once each, in batches of ``ID_BATCH`` (anything else is never sent)."""
    unique = list(dict.fromkeys(value.lower() for value in ids if is_guid(value)))
    for start in range(0, len(unique), ID_BATCH):
        yield unique[start:start + ID_BATCH]


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
        check(certificates)  # a bad PEM is named now, not as an OpenSSL error at the first handshake
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self._certificates = certificates
        self._timeout = (connect_timeout, read_timeout)
        self._target = Target(self.base_url, certificates, server_name, connect_timeout, read_timeout, retries)
        self._session = requests.Session()
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE and proxy variables must not change who we trust
        self._session.cert = (str(certificates.client_cert), str(certificates.client_key))
        self._session.verify = str(certificates.root_ca)
        self._session.headers.update({"X-Qlik-User": user_header, "Accept": "application/json"})
        self._mount(server_name, retries, pool_size)

    def _mount(self, server_name: str | None, retries: int, pool_size: int) -> None:
        common = {"pool_connections": 4, "pool_maxsize": pool_size}
        self._session.mount(f"{self.base_url}/", QrsAdapter(server_name, max_retries=retry(retries, frozenset({"GET"})),
                                                            **common))
        read_only_posts = QrsAdapter(server_name, max_retries=retry(retries, frozenset({"GET", "POST"})), **common)
        for path in ("user", *ACCESS_TYPE_PATH.values()):
            self._session.mount(f"{self.base_url}/qrs/{path}/table", read_only_posts)

    # --- transport ---------------------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> requests.Response:
        """One call; an error status, a redirect or no answer at all raises the matching ``QrsError``. Traced as
        ``qrs <method> /qrs/<path>``, ids as ``{id}`` and never the query string (it holds the xrfkey)."""
        route = "/".join("{id}" if is_guid(part) else part for part in path.partition("?")[0].strip("/").split("/"))
        with subsegment(f"qrs {method} /qrs/{route}"):
            return self._request(method, path, params=params, body=body)

    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> requests.Response:
        key = xrfkey()
        path = path.lstrip("/")
        call = f"{method} /qrs/{path}"
        try:
            response = self._session.request(
                method, f"{self.base_url}/qrs/{path}", params={**(params or {}), "xrfkey": key}, json=body,
                headers={"X-Qlik-Xrfkey": key}, timeout=self._timeout, verify=str(self._certificates.root_ca),
                allow_redirects=False,  # never carry the client certificate and X-Qlik-User elsewhere
            )
        except requests.exceptions.RequestException as exc:
            retried = method == "GET" or (method == "POST" and path.endswith("/table"))
            raise transport_error(call, exc, self._target, retried=retried) from None
        except OSError as exc:  # requests' own check: a certificate file removed since the client was built
            raise errors.QrsTlsError(f"{call}: cannot load the client certificate files ({exc})") from None
        if response.status_code >= 400:
            raise _http_error(method, f"/qrs/{path}", response)
        if response.status_code >= 300:
            raise errors.QrsBadAnswer(call, f"HTTP {response.status_code}, a redirect: QRS does not redirect; "
                                            "check Butler.qrs.host and Butler.qrs.port")
        return response

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self.request("GET", path, params=params), f"GET /qrs/{path.lstrip('/')}")

    @staticmethod
    def _json(response: requests.Response, call: str) -> Any:
        return answers.parse_json(response.content, response.headers.get("Content-Type", ""), call)

    def close(self) -> None:
        self._session.close()

    # --- license reads -----------------------------------------------------------------------------------------

    def about(self) -> dict[str, Any]:
        return answers.json_object(self.get_json("about"), "GET /qrs/about")

    def access_type_overview(self) -> AccessTypeOverview:
        call = "GET /qrs/license/accesstypeoverview"
        payload = answers.json_object(self.get_json("license/accesstypeoverview"), call)
        return answers.validated(AccessTypeOverview.model_validate, payload, call)

    def allocations(self, license_type: LicenseType, qrs_filter: str | None = None) -> list[Allocation]:
        """All allocations of one type in one request (``/full``); an unreadable record carries ``problem``."""
        path = f"{ACCESS_TYPE_PATH[license_type]}/full"
        response = self.request("GET", path, params={"filter": qrs_filter} if qrs_filter else None)
        fast = answers.allocations_fast(response.content, license_type)
        if fast is not None:
            return fast
        return answers.allocations(self._json(response, f"GET /qrs/{path}"), license_type, f"GET /qrs/{path}")

    def allocations_by_id(self, license_type: LicenseType, ids: Iterable[str]) -> list[Allocation]:
        """The allocations among ``ids`` that still exist, ``ID_BATCH`` ids a request (the executor's re-read).

        Ids that are not GUIDs are never sent, so they are absent too; the caller never releases those.
        """
        found: list[Allocation] = []
        for batch in _batches(ids):
            chunk = self.allocations(license_type, filters.ids_equal("id", batch))
            answers.only_asked(chunk, set(batch), "allocations", f"GET /qrs/{ACCESS_TYPE_PATH[license_type]}/full")
            found += chunk
        return found

    def delete_allocation(self, license_type: LicenseType, allocation_id: str) -> None:
        """Remove an allocation (sent once, never retried); QRS quarantines it instead when it was used within the
        last seven days."""
        path = self._id_path("DELETE", license_type, allocation_id)
        response = self.request("DELETE", path)
        if response.status_code not in (200, 204):
            raise errors.QrsBadAnswer(f"DELETE /qrs/{path}", f"HTTP {response.status_code} where 204 was expected")

    def allocate(self, license_type: LicenseType, user_guid: str) -> Allocation:
        """Allocate a license of that type to the user (``POST /qrs/license/<type>accesstype``, sent once, never
        retried: a lost answer must be checked by reading, not by allocating twice). QRS refuses with a 4xx when
        none is left or the user holds one already (``QrsHttpError`` with QRS's reason)."""
        path = ACCESS_TYPE_PATH[license_type]
        call = f"POST /qrs/{path}"
        if not is_guid(user_guid):
            raise errors.QrsInvalidId(call, user_guid)
        response = self.request("POST", path, body={"user": {"id": user_guid}})
        return answers.allocation(answers.json_object(self._json(response, call), call), license_type)

    @staticmethod
    def _id_path(method: str, license_type: LicenseType, allocation_id: str) -> str:
        base = ACCESS_TYPE_PATH[license_type]
        if not is_guid(allocation_id):
            raise errors.QrsInvalidId(f"{method} /qrs/{base}/{{id}}", allocation_id)
        return f"{base}/{allocation_id}"

    # --- users -------------------------------------------------------------------------------------------------

    def users(self, qrs_filter: str | None = None, *, only_ids: set[str] | None = None,
              with_email: bool = False) -> list[User]:
        """Users with the columns the protection rules need (and their e-mail when asked), in ``/user/table``
        pages of ``page_size``.

        ``only_ids`` keeps just those users: the others are dropped row by row, before they are parsed, so a
        100,000-user site costs the memory of the users actually needed.
        """
        wanted = None if only_ids is None else {value.lower() for value in only_ids}
        keep = None if wanted is None else (lambda row: str(row[0]).lower() in wanted)
        found: dict[str, User] = {}  # a user added while paging shifts the rows: one may come twice
        for page in self._user_pages(answers.UserTable(with_email=with_email), qrs_filter, keep):
            for user in page:
                found.setdefault(user.id.lower(), user)
        return list(found.values())

    def users_by_id(self, ids: Iterable[str], *, with_email: bool = False) -> list[User]:
        """The users among ``ids`` that exist (same columns as ``users``), ``ID_BATCH`` ids a request."""
        found: list[User] = []
        for batch in _batches(ids):
            chunk = self.users(filters.ids_equal("id", batch), with_email=with_email)
            answers.only_asked(chunk, set(batch), "users", _USER_TABLE)
            found += chunk
        return found

    def _user_pages(self, table: answers.UserTable, qrs_filter: str | None,
                    keep: Callable[[list[Any]], bool] | None) -> Iterator[list[User]]:
        """Pages until a short or empty one; at most the user count plus one page (QRS may ignore ``skip``)."""
        body, skip, pages, previous = table.body(), 0, 0, None
        count: int | None = None
        while True:
            params: dict[str, Any] = {"skip": skip, "take": self.page_size, "sortcolumn": "id"}
            if qrs_filter:
                params["filter"] = qrs_filter
            payload = self._json(self.request("POST", "user/table", params=params, body=body), _USER_TABLE)
            rows = table.rows(payload, self.page_size, _USER_TABLE)
            if not rows:
                return
            if rows[0][0].lower() == previous:
                raise errors.QrsBadAnswer(_USER_TABLE, f"the page at skip={skip} repeats the previous one "
                                                       "(QRS ignored skip)")
            previous, pages = rows[0][0].lower(), pages + 1
            yield [table.user(row, _USER_TABLE) for row in rows if keep is None or keep(row)]
            if len(rows) < self.page_size:
                return
            count = self.user_count() if count is None else count  # asked only when more pages are needed
            if pages >= math.ceil(count / self.page_size) + 1:
                raise errors.QrsBadAnswer(_USER_TABLE, f"{pages} full pages of {self.page_size} rows, but QRS counts "
                                                       f"{count} users: the paging does not end")
            skip += len(rows)

    def find_users(self, qrs_filter: str) -> list[User]:
        """Users matching a filter, in one ``/user/full`` request (for lookups of one or a few users)."""
        payload = self.get_json("user/full", {"filter": qrs_filter})
        return answers.full_users(payload, "GET /qrs/user/full")

    def server_license(self) -> ServerLicense:
        """The site's server license (``GET /qrs/license``); an answer that is not a JSON object is QrsBadAnswer."""
        content = self.request("GET", "license").content
        try:
            return parse_server_license(content)
        except ValueError as exc:
            raise errors.QrsBadAnswer("GET /qrs/license", str(exc).split(": ", 1)[-1]) from None

    def users_named(self, user_id: str, directory: str | None = None) -> list[User]:
        """The users with that user id (case-insensitive, as QRS), in one directory or in all of them."""
        condition = filters.eq("userId", user_id)
        if directory is not None:
            condition = filters.all_of(filters.eq("userDirectory", directory), condition)
        return self.find_users(condition)

    def allocations_of_user(self, license_type: LicenseType, user_guid: str) -> list[Allocation]:
        """One user's allocations of one type (``/full`` filtered on the user's QRS id)."""
        path = f"{ACCESS_TYPE_PATH[license_type]}/full"
        if not is_guid(user_guid):
            raise errors.QrsInvalidId(f"GET /qrs/{path}", user_guid)
        return self.allocations(license_type, f"user.id eq {filters.guid(user_guid)}")

    def user_count(self) -> int:
        return answers.count(self.get_json("user/count"), "GET /qrs/user/count")


def _http_error(method: str, path: str, response: requests.Response) -> errors.QrsHttpError:
    kind: type[errors.QrsHttpError] = errors.QrsHttpError
    if response.status_code in (401, 403):
        kind = errors.QrsAuthError
    elif response.status_code == 404:
        kind = errors.QrsNotFound
    elif response.status_code >= 500:
        kind = errors.QrsUnavailable
    return kind(method, path, response.status_code, response.text)
