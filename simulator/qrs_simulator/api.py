"""The QRS endpoints: a pure function from a parsed request to a response (the HTTP layer is in server.py)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote

from . import clock, model
from .filters import FilterError, SortKey, compile_filter, compile_orderby
from .model import JSON
from .state import Collection, Record, Refused, ServerLicense, SimState, condense
from .table import TableError, build_table

XRF_FAILURE = "XSRF prevention check failed. Possible XSRF discovered."
_XRFKEY = re.compile(r"^[0-9A-Za-z]{16}$")
_QLIK_USER = re.compile(r"UserDirectory\s*=\s*([^;]+);\s*UserId\s*=\s*([^;]+)", re.IGNORECASE)
_TEXT = "text/plain; charset=utf-8"
SELECTION_TTL = 600.0  # seconds a selection lives after its last use (QRS removes unused selections by itself)
_SELECTION_PATH = re.compile(r"^selection/([0-9a-f-]{36})/license(?:/([a-z]+))?(?:/(full|count|table))?$")


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, str]  # names lower-cased; the last value wins
    headers: Mapping[str, str]  # case-insensitive lookup (http.client.HTTPMessage)
    body: bytes = b""


@dataclass
class Selection:
    """A temporary set of allocations (`POST /qrs/selection/license/<type>accesstype`), of one type."""

    id: str
    kind: str
    ids: list[str]
    used: float = field(default_factory=time.monotonic)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    items: list[bytes] | None = None  # a JSON array of pre-serialized items, streamed instead of `body`

    @property
    def length(self) -> int:
        if self.items is None:
            return len(self.body)
        return 2 + sum(map(len, self.items)) + max(0, len(self.items) - 1)

    def chunks(self, batch: int = 512) -> Iterator[bytes]:
        """The body in pieces of `batch` items, so a 100 MB array is never assembled in one buffer."""
        if self.items is None:
            yield self.body
            return
        items = self.items
        yield b"["
        for start in range(0, len(items), batch):
            yield (b"," if start else b"") + b",".join(items[start : start + batch])
        yield b"]"


def text(status: int, message: str, **headers: str) -> Response:
    return Response(status, message.encode("utf-8"), _TEXT, dict(headers))


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, model.dumps(obj))


class QrsApi:
    """Serves `/qrs/...` against a SimState."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.collections = {coll.path: coll for coll in state.collections()}
        self.selection_ttl = SELECTION_TTL
        self._selections: dict[str, Selection] = {}
        self._selections_lock = threading.Lock()
        self._singletons: dict[str, Callable[[], JSON]] = {
            "about": about,
            "license": lambda: license_object(state),
            "license/accesstypeoverview": state.overview,
        }

    def handle(self, request: Request) -> Response:
        key = request.query.get("xrfkey")
        header = request.headers.get("X-Qlik-Xrfkey")
        if not key or key != header or not _XRFKEY.match(key):
            return text(400, XRF_FAILURE)
        if acting_user(request.headers) is None:
            return text(403, "Forbidden: the X-Qlik-User header (UserDirectory=...; UserId=...) is missing")
        try:
            return self._route(request)
        except (FilterError, TableError) as err:
            return text(400, str(err))
        except Refused as err:
            return text(err.status, str(err))

    def _route(self, request: Request) -> Response:
        path = request.path.lower().strip("/").removeprefix("qrs").strip("/")
        if path.startswith("selection/"):
            return self._selection_route(request, path)
        if path in self._singletons:
            if request.method != "GET":
                return text(405, "Method not allowed", Allow="GET")
            found = self._singletons[path]()
            return json_response(model.with_privileges(found) if _flag(request.query.get("privileges")) else found)
        for coll_path, coll in self.collections.items():
            if path == coll_path or path.startswith(coll_path + "/"):
                return self._collection(request, coll, path[len(coll_path) + 1 :])
        return text(404, "Not found")

    def _collection(self, request: Request, coll: Collection, rest: str) -> Response:
        writable = coll in self.state.allocations.values()
        routes: dict[str, dict[str, Callable[[], Response]]] = {
            "": {"GET": lambda: self._list(request, coll, full=False)},
            "full": {"GET": lambda: self._list(request, coll, full=True)},
            "count": {"GET": lambda: self._count(request, coll)},
            "table": {"POST": lambda: self._table(request, coll)},
        }
        if writable:
            routes[""]["POST"] = lambda: self._allocate(request, coll)
        if rest in routes:
            handlers = routes[rest]
        elif _is_guid(rest):
            handlers = {"GET": lambda: self._get(request, coll, rest)}
            if writable:
                handlers["DELETE"] = lambda: self._delete(request, coll, rest)
        else:
            return text(404, "Not found")
        handler = handlers.get(request.method)
        if handler is None:
            return text(405, "Method not allowed", Allow=", ".join(sorted(handlers)))
        return handler()

    def _selected(self, request: Request, coll: Collection, records: list[Record] | None = None) -> list[Record]:
        predicate = compile_filter(coll.entity, request.query.get("filter"))
        records = coll.snapshot() if records is None else records
        if predicate is not None:
            records = [record for record in records if predicate(record.data)]
        for key, descending in reversed(compile_orderby(coll.entity, request.query.get("orderby"))):
            records.sort(key=_on_data(key), reverse=descending)
        return records

    def _list(self, request: Request, coll: Collection, full: bool, among: list[Record] | None = None) -> Response:
        records = self._selected(request, coll, among)
        if _flag(request.query.get("privileges")):
            items = [record.data if full else condense(record.data, coll.condensed_keys) for record in records]
            return json_response(model.with_privileges(items))
        keys = coll.condensed_keys
        parts = [record.raw() for record in records] if full else [record.condensed_raw(keys) for record in records]
        return Response(200, items=parts)

    def _count(self, request: Request, coll: Collection) -> Response:
        predicate = compile_filter(coll.entity, request.query.get("filter"))
        if predicate is None:
            return json_response({"value": len(coll)})
        return json_response({"value": sum(1 for record in coll.snapshot() if predicate(record.data))})

    def _get(self, request: Request, coll: Collection, guid: str) -> Response:
        record = coll.get(guid)
        if record is None:
            return text(404, f"Not found: no {coll.entity} with id {guid}")
        if _flag(request.query.get("privileges")):
            return json_response(model.with_privileges(record.data))
        return Response(200, record.raw())

    def _table(self, request: Request, coll: Collection, among: list[Record] | None = None) -> Response:
        definition = _json_body(request)
        predicate = compile_filter(coll.entity, request.query.get("filter"))
        ordered = coll.sorted_by_id() if among is None else sorted(among, key=lambda record: record.data["id"])
        objects = [record.data for record in ordered]
        return json_response(build_table(coll.entity, objects, definition, predicate, request.query), 201)

    def _allocate(self, request: Request, coll: Collection) -> Response:
        body = _json_body(request)
        user = body.get("user") if isinstance(body, dict) else None
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, str) or not _is_guid(user_id):
            return text(400, 'The allocation needs a user: {"user": {"id": "<user GUID>"}}')
        data = self.state.allocate(_kind(self.state, coll), user_id.lower(), acting_user(request.headers) or "")
        if _flag(request.query.get("privileges")):
            data = model.with_privileges(data)
        return json_response(data, 201)

    def _delete(self, request: Request, coll: Collection, guid: str) -> Response:
        if not self.state.release(_kind(self.state, coll), guid, acting_user(request.headers) or ""):
            return text(404, f"Not found: no {coll.entity} with id {guid}")
        return Response(204, content_type="")

    # -- selections -----------------------------------------------------------------------------------------

    def _selection_route(self, request: Request, path: str) -> Response:
        """`selection/license/<type>` (POST: create) and `selection/{id}/license[/<type>[/full|count|table]]`."""
        kinds = {coll.path.removeprefix("license/"): kind for kind, coll in self.state.allocations.items()}
        if path.startswith("selection/license/"):
            kind = kinds.get(path.removeprefix("selection/license/"))
            if kind is None:
                return text(404, "Not found")
            if request.method != "POST":
                return text(405, "Method not allowed", Allow="POST")
            return self._select(request, kind)
        match = _SELECTION_PATH.match(path)
        if match is None or not _is_guid(match.group(1)):
            return text(404, "Not found")
        guid, type_name, rest = match.groups()
        if type_name is None:  # selection/{id}/license: the License objects of the selection
            if rest is not None:
                return text(404, "Not found")
            if request.method != "DELETE":
                return text(405, "Method not allowed", Allow="DELETE")
            self._selection(guid)
            return Response(204, content_type="")  # a selection here never holds the site License: nothing to do
        kind = kinds.get(type_name)
        if kind is None:
            return text(404, "Not found")
        coll = self.state.allocations[kind]
        selection = self._selection(guid)
        among = [record for record in map(coll.get, selection.ids if selection.kind == kind else []) if record]
        routes: dict[str | None, dict[str, Callable[[], Response]]] = {
            None: {
                "GET": lambda: self._list(request, coll, full=False, among=among),
                "DELETE": lambda: self._delete_selected(request, kind, selection),
            },
            "full": {"GET": lambda: self._list(request, coll, full=True, among=among)},
            "count": {"GET": lambda: json_response({"value": len(self._selected(request, coll, among))})},
            "table": {"POST": lambda: self._table(request, coll, among)},
        }
        handler = routes[rest].get(request.method)
        if handler is None:
            return text(405, "Method not allowed", Allow=", ".join(sorted(routes[rest])))
        return handler()

    def _select(self, request: Request, kind: str) -> Response:
        """Select the allocations of `kind` matching `?filter=` (all without one), or, when the body is a
        Selection, its items (of this type), narrowed by the filter if one is given. 201 with the Selection."""
        coll = self.state.allocations[kind]
        body = _json_body(request) if request.body.strip() else None
        among: list[Record] | None = None
        if body is not None:
            wanted = _selection_items(body, coll.entity)
            with self.state.lock:
                among = [record for record in map(coll.get, wanted) if record is not None]
        records = self._selected(request, coll, among)
        selection = Selection(str(uuid.uuid4()), kind, [record.data["id"] for record in records])
        with self._selections_lock:
            self._expire(selection.used)
            self._selections[selection.id] = selection
        stamp = clock.fmt(clock.now())
        by = acting_user(request.headers) or ""
        header = model.entity_header(selection.id, stamp, stamp, "Selection", by)
        items = [
            {
                **model.entity_header(str(uuid.uuid4()), stamp, stamp, "SelectionItem", by),
                "type": coll.entity,
                "objectID": guid,
                "objectName": None,
            }
            for guid in selection.ids
        ]
        for item in items:
            del item["privileges"]  # SelectionItem has no privileges property
        return json_response({**header, "items": items}, 201)

    def _selection(self, guid: str) -> Selection:
        now = time.monotonic()
        with self._selections_lock:
            self._expire(now)
            selection = self._selections.get(guid)
            if selection is None:
                raise Refused(404, f"Not found: no selection with id {guid} (selections expire when unused)")
            selection.used = now
            return selection

    def _expire(self, now: float) -> None:
        for guid in [guid for guid, sel in self._selections.items() if now - sel.used > self.selection_ttl]:
            del self._selections[guid]

    def _delete_selected(self, request: Request, kind: str, selection: Selection) -> Response:
        """DELETE every selected allocation (narrowed by `?filter=`), each with the quarantine rule; 204."""
        coll = self.state.allocations[kind]
        by = acting_user(request.headers) or ""
        with self.state.lock:  # all or nothing to a concurrent reader
            among = [record for record in map(coll.get, selection.ids) if record is not None]
            for record in self._selected(request, coll, among):
                self.state.release(kind, record.data["id"], by)
        return Response(204, content_type="")


def _selection_items(body: Any, entity: str) -> list[str]:
    """The objectIDs of a Selection body `{"items": [{"type": "<entity>", "objectID": "<id>"}, ...]}`."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise Refused(400, 'A selection body is a Selection: {"items": [{"type": ..., "objectID": ...}]}')
    ids: list[str] = []
    for item in items:
        guid = item.get("objectID") if isinstance(item, dict) else None
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(guid, str) or not _is_guid(guid) or not isinstance(kind, str):
            raise Refused(400, "Each selection item needs 'type' and a GUID 'objectID'")
        if kind.lower() != entity.lower():
            raise Refused(400, f"This selection takes items of type {entity}, not {kind}")
        ids.append(guid.lower())
    return list(dict.fromkeys(ids))


def acting_user(headers: Mapping[str, str]) -> str | None:
    """`X-Qlik-User: UserDirectory=INTERNAL; UserId=sa_api` -> `INTERNAL\\sa_api` (None when absent/malformed)."""
    match = _QLIK_USER.search(headers.get("X-Qlik-User") or "")
    if match is None:
        return None
    return f"{unquote(match.group(1).strip())}\\{unquote(match.group(2).strip())}"


def about() -> JSON:
    return {
        "schemaPath": "About",
        "buildVersion": "38.22.0.0",
        "buildDate": "9/20/2013 10:09:00 AM",  # what real QRS answers, whatever the release
        "databaseProvider": "Devart.Data.PostgreSql",
        "nodeType": 1,
        "sharedPersistence": True,
        "requiresBootstrap": False,
        "singleNodeOnly": False,
    }


def license_object(state: SimState) -> JSON:
    """The site license: invented values (no real key), totals from the state, dates from `serverLicense`
    (by default valid from 400 days before start until ten years after)."""
    created = clock.naive(state.created) - timedelta(days=400)
    server = state.server_license or ServerLicense(valid_to=created.date() + timedelta(days=4050))
    valid_from: date = server.valid_from or min(created.date(), server.valid_to or created.date())
    minutes = state.licenses.analyzer_time["allocatedMinutes"]
    lines = [
        "Serial: 9999000000000001",
        "Name: Butler Simulator",
        "Organization: Simulated Organization",
        "Product: Qlik Sense Enterprise Client-Managed (simulated)",
        f"Professional access: {state.licenses.professional}",
        f"Analyzer access: {state.licenses.analyzer}",
        f"Analyzer capacity minutes: {minutes}",
        f"Valid From: {valid_from:%Y-%m-%d}",
        *([f"Valid To: {server.valid_to:%Y-%m-%d}"] if server.valid_to is not None else []),
    ]
    details = "\r\n".join(lines)
    return {
        **model.entity_header(
            "2f0b2b1c-8c55-4c3e-9a65-5d4e3c2b1a00", clock.fmt(created), clock.fmt(created), "License"
        ),
        "lef": "",
        "serial": "9999000000000001",
        "check": "",
        "key": "",
        "keyDetails": details,
        "name": "Butler Simulator",
        "organization": "Simulated Organization",
        "product": 0,
        "numberOfCores": -1,
        "isExpired": server.is_expired,
        "expiredReason": _expired_reason(server),
        "isBlacklisted": server.is_blacklisted,
        "isInvalid": server.is_invalid,
        "isSubscription": True,
        "isCloudServices": False,
        "isElastic": False,
        "updated": clock.fmt(created),
    }


def _expired_reason(server: ServerLicense) -> str:
    if not server.is_expired:
        return ""
    return f"The license expired on {server.valid_to:%Y-%m-%d}" if server.valid_to else "The license has expired"


def _on_data(key: SortKey) -> Callable[[Record], tuple[int, Any]]:
    return lambda record: key(record.data)


def _kind(state: SimState, coll: Collection) -> str:
    return next(kind for kind, candidate in state.allocations.items() if candidate is coll)


def _json_body(request: Request) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, "The request body is not valid JSON") from None


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
