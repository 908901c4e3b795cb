"""QRS answers corrupted in flight, between the real ``QrsClient`` and the real simulator.

A ``Corruption`` names which answer to spoil (the request's kind and its occurrence in the run, or every one of
that kind) and how: drop, null or re-type a column or a record's key, flatten a list column, reorder the columns,
add an unknown one, swap two rows' ids, repeat a record or the previous answer, cut the body short, send an empty
body or an HTML page with 200, or change the status.

Two ways to put it in the path:
- ``install(client, corruption)`` wraps every adapter mounted on the client's ``requests`` session (so the
  client's own retries and TLS settings stay as they are) and rewrites the answers after the real exchange;
- ``CorruptingProxy`` is a loopback HTTPS reverse proxy with the simulator's server certificate, for a command run
  in a subprocess (its configuration points at the proxy instead of the simulator).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

from qrs_simulator.certs import CertPaths, server_context

# --- what is corrupted -------------------------------------------------------------------------------------------

PROFESSIONAL = "GET professional/full"
ANALYZER = "GET analyzer/full"
USERS = "POST user/table"
KINDS = (PROFESSIONAL, ANALYZER, USERS)

DATES = ("createdDate", "modifiedDate", "lastUsed", "quarantineEnd")
FLAGS = ("quarantined", "excess")
ALLOCATION_KEYS = ("id", "user", "user.id", "user.userId", "user.userDirectory", *DATES, *FLAGS,
                   "deletedUserId", "deletedUserDirectory")
TABLE_COLUMNS = ("id", "userId", "userDirectory", "name", "inactive", "blacklisted", "removedExternally", "tags",
                 "customProperties")
LIST_COLUMNS = ("tags", "customProperties")

# Mutations of any answer, of an allocation list, of a user table.
BODY_MUTATIONS = ("truncate", "empty", "html-200", "json-null", "wrong-container", "repeat-previous", "status")
ALLOCATION_MUTATIONS = ("drop-key", "null-key", "retype", "swap-ids", "duplicate-record", "unknown-key",
                        "not-an-object", "reverse")
TABLE_MUTATIONS = ("drop-column", "null-column", "flatten-list", "retype-column", "reorder-columns",
                   "unknown-column", "swap-row-ids", "short-row", "duplicate-row", "rows-null", "reverse-rows")
STATUSES = (204, 302, 400, 401, 404, 500, 503)
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>\n"
             b"<p>The proxy server received an invalid response.</p></body></html>\n")


@dataclass(frozen=True)
class Corruption:
    """One way to spoil the answers of one kind of request.

    ``occurrence`` counts the requests of ``kind`` in the run from 0 (0 is the inventory's read, later ones the
    re-reads before a release); None spoils every one of them. ``key`` is the column or key the mutation touches,
    ``row`` and ``other`` pick records (modulo their number; ``row`` None means every record), ``cut`` is where a
    truncated body ends (a fraction of its length), ``status`` the status a ``status`` mutation answers. ``owner``
    (a userId) picks the records of that user instead of ``row``.
    """

    kind: str
    mutation: str
    occurrence: int | None = 0
    key: str = "id"
    row: int | None = None
    other: int = 1
    cut: float = 0.5
    status: int = 500
    owner: str | None = None

    def __str__(self) -> str:
        when = "every" if self.occurrence is None else f"#{self.occurrence}"
        where = self.owner or ("all" if self.row is None else self.row)
        return (f"{self.kind} {when}: {self.mutation} key={self.key} row={where} other={self.other} "
                f"cut={self.cut:.2f} status={self.status}")


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"


def kind_of(method: str, path: str) -> str | None:
    """The kind of a QRS request (``path`` without the query string), None for those never corrupted."""
    if method == "GET" and path.endswith("/qrs/license/professionalaccesstype/full"):
        return PROFESSIONAL
    if method == "GET" and path.endswith("/qrs/license/analyzeraccesstype/full"):
        return ANALYZER
    if method == "POST" and path.endswith("/qrs/user/table"):
        return USERS
    return None


class Spoiler:
    """Counts the requests of each kind and spoils the chosen ones; remembers what it did."""

    def __init__(self, corruption: Corruption) -> None:
        self.corruption = corruption
        self.seen: Counter[str] = Counter()
        self.previous: dict[str, bytes] = {}
        self.applied: list[str] = []  # the spoiled requests that actually changed
        self._lock = threading.Lock()

    def answer(self, method: str, path: str, answer: Answer) -> Answer:
        kind = kind_of(method, path)
        if kind is None:
            return answer
        with self._lock:
            occurrence = self.seen[kind]
            self.seen[kind] += 1
            previous = self.previous.get(kind)
            self.previous[kind] = answer.body
        wanted = self.corruption
        if kind != wanted.kind or wanted.occurrence not in (None, occurrence):
            return answer
        spoiled = spoil(answer, wanted, previous)
        if (spoiled.status, spoiled.body) != (answer.status, answer.body):
            with self._lock:
                self.applied.append(f"{kind} #{occurrence}")
        return spoiled


# --- the mutations -----------------------------------------------------------------------------------------------


def spoil(answer: Answer, corruption: Corruption, previous: bytes | None) -> Answer:
    mutation, body = corruption.mutation, answer.body
    if mutation == "truncate":
        return Answer(answer.status, body[: int(len(body) * corruption.cut)], answer.content_type)
    if mutation == "empty":
        return Answer(answer.status, b"", answer.content_type)
    if mutation == "html-200":
        return Answer(200, HTML_PAGE, "text/html; charset=utf-8")
    if mutation == "json-null":
        return Answer(answer.status, b"null", answer.content_type)
    if mutation == "status":
        return Answer(corruption.status, b"" if corruption.status in (204, 302) else b"Something went wrong",
                      "text/plain")
    if mutation == "repeat-previous":
        return answer if previous is None else Answer(answer.status, previous, answer.content_type)
    try:
        payload = json.loads(body)
    except ValueError:
        return answer
    if mutation == "wrong-container":
        changed: Any = {"value": payload} if isinstance(payload, list) else [payload]
    elif isinstance(payload, list):
        changed = spoil_allocations(payload, corruption)
    elif isinstance(payload, dict) and isinstance(payload.get("rows"), list):
        changed = spoil_table(payload, corruption)
    else:
        return answer
    return Answer(answer.status, json.dumps(changed).encode(), answer.content_type)


def _picked(owners: list[Any], c: Corruption) -> list[int]:
    """The records to change: those of ``c.owner``, else record ``c.row`` (modulo their number), else all."""
    if c.owner is not None:
        return [i for i, owner in enumerate(owners) if owner == c.owner]
    if not owners:
        return []
    return list(range(len(owners))) if c.row is None else [c.row % len(owners)]


def retyped(key: str, value: Any) -> Any:
    """A value of the wrong type for ``key`` (dates become numbers, flags text, ids numbers, lists text)."""
    leaf = key.rsplit(".", 1)[-1]
    if leaf in DATES:
        return 1_700_000_000
    if leaf in (*FLAGS, "inactive", "blacklisted", "removedExternally"):
        return "true" if value is True else "false"
    if leaf in LIST_COLUMNS:
        return "VIP-User" if leaf == "tags" else "Department=IT"
    if leaf == "user":
        return "CORP\\p.idle"
    if leaf in ("id", "userId", "userDirectory", "name", "deletedUserId", "deletedUserDirectory"):
        return 12345
    return [value]


def _edit(record: Any, key: str, how: str) -> None:
    """Drop (``drop``), null (``null``) or re-type (``retype``) ``key`` (``user.id`` reaches into the user)."""
    if not isinstance(record, dict):
        return
    head, _, rest = key.partition(".")
    if rest:
        _edit(record.get(head), rest, how)
        return
    if key not in record:
        return
    if how == "drop":
        del record[key]
    elif how == "null":
        record[key] = None
    else:
        record[key] = retyped(key, record[key])


def _owner(record: Any) -> Any:
    user = record.get("user") if isinstance(record, dict) else None
    return user.get("userId") if isinstance(user, dict) else None


def spoil_allocations(records: list[Any], c: Corruption) -> list[Any]:
    count = len(records)
    owners = [_owner(record) for record in records]
    if c.mutation in ("drop-key", "null-key", "retype"):
        for i in _picked(owners, c):
            _edit(records[i], c.key, c.mutation.removesuffix("-key"))
    elif c.mutation == "swap-ids" and count > 1:
        i, j = (c.row or 0) % count, c.other % count
        if i != j and isinstance(records[i], dict) and isinstance(records[j], dict):
            records[i]["id"], records[j]["id"] = records[j].get("id"), records[i].get("id")
    elif c.mutation == "duplicate-record" and count:
        records.insert(c.other % (count + 1), records[(c.row or 0) % count])
    elif c.mutation == "unknown-key":
        for i in _picked(owners, c):
            records[i]["butlerSurprise"] = {"nested": [1, 2, 3]}
    elif c.mutation == "not-an-object" and count:
        i = (c.row or 0) % count
        records[i] = [records[i]] if c.other % 2 else json.dumps(records[i])
    elif c.mutation == "reverse":
        records.reverse()
    return records


def _flatten(cell: Any) -> Any:
    """``[["VIP-User"]]`` -> ``["VIP-User"]``; ``[["Department", "IT"]]`` -> ``["Department", "IT"]``."""
    if isinstance(cell, list) and all(isinstance(inner, list) for inner in cell):
        return [value for inner in cell for value in inner]
    return cell


def spoil_table(table: dict[str, Any], c: Corruption) -> dict[str, Any]:
    names: list[Any] = table.get("columnNames") or []
    rows: list[Any] = table["rows"]
    at = names.index(c.key) if c.key in names else 0
    user_at = names.index("userId") if "userId" in names else 1
    picked = _picked([row[user_at] if len(row) > user_at else None for row in rows], c)
    if c.mutation == "drop-column":
        del names[at]
        for row in rows:
            del row[at]
    elif c.mutation in ("null-column", "retype-column", "flatten-list"):
        for i in picked:
            cell = rows[i][at]
            rows[i][at] = (None if c.mutation == "null-column" else _flatten(cell) if c.mutation == "flatten-list"
                           else retyped(c.key, cell))
    elif c.mutation == "reorder-columns":
        other = c.other % len(names) if names else 0
        if other == at:
            other = (at + 1) % len(names)
        for listed in (names, *rows):
            listed[at], listed[other] = listed[other], listed[at]
    elif c.mutation == "unknown-column":
        position = c.other % (len(names) + 1)
        for listed in (names, *rows):
            listed.insert(position, "butlerSurprise" if listed is names else None)
    elif c.mutation == "swap-row-ids" and len(rows) > 1 and (picked or c.owner is None):
        i, j = (picked[0] if c.owner else (c.row or 0) % len(rows)), c.other % len(rows)
        if i == j:
            j = (i + 1) % len(rows)
        rows[i][0], rows[j][0] = rows[j][0], rows[i][0]
    elif c.mutation == "short-row":
        for i in picked:
            del rows[i][at]
    elif c.mutation == "duplicate-row" and rows:
        rows.insert(c.other % (len(rows) + 1), list(rows[(c.row or 0) % len(rows)]))
    elif c.mutation == "rows-null":
        table["rows"] = None
    elif c.mutation == "reverse-rows":
        rows.reverse()
    return table


# --- in the client's session -------------------------------------------------------------------------------------


class SpoilingAdapter(BaseAdapter):
    """Sends through the adapter it wraps (the client's own), then hands the answer to the ``Spoiler``."""

    def __init__(self, inner: BaseAdapter, spoiler: Spoiler) -> None:
        super().__init__()
        self.inner, self.spoiler = inner, spoiler

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = self.inner.send(request, *args, **kwargs)
        original = Answer(response.status_code, response.content, response.headers.get("Content-Type", ""))
        spoiled = self.spoiler.answer(str(request.method), urlsplit(str(request.url)).path, original)
        if spoiled is not original:
            response.status_code = spoiled.status
            response._content = spoiled.body
            response.headers["Content-Type"] = spoiled.content_type
            response.headers["Content-Length"] = str(len(spoiled.body))
        return response

    def close(self) -> None:
        self.inner.close()


def install(client: Any, corruption: Corruption) -> Spoiler:
    """Spoil ``client``'s answers as ``corruption`` says (every mounted adapter is wrapped, one counter for all)."""
    spoiler = Spoiler(corruption)
    session: requests.Session = client._session
    for prefix, adapter in list(session.adapters.items()):
        session.mount(prefix, SpoilingAdapter(adapter, spoiler))
    return spoiler


# --- a loopback HTTPS proxy, for a command in a subprocess -------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class CorruptingProxy:
    """HTTPS on loopback (the simulator's server certificate, client certificates required) that forwards each
    request to ``upstream`` with the simulator's client certificate and spoils the answers as ``corruption``
    says."""

    def __init__(self, upstream: str, certs: CertPaths, corruption: Corruption) -> None:
        self.spoiler = Spoiler(corruption)
        session = requests.Session()
        session.trust_env = False
        session.cert = (str(certs.client), str(certs.client_key))
        session.verify = str(certs.root)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                got = session.request(self.command, upstream + self.path, data=body or None, headers=headers,
                                      allow_redirects=False, timeout=30)
                answer = owner.spoiler.answer(self.command, urlsplit(self.path).path,
                                              Answer(got.status_code, got.content,
                                                     got.headers.get("Content-Type", "")))
                with contextlib.suppress(OSError):
                    self.send_response(answer.status)
                    if answer.content_type:
                        self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)

            do_POST = do_DELETE = do_PUT = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context: ssl.SSLContext = server_context(certs)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def __enter__(self) -> CorruptingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
