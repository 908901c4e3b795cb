"""The client against a loopback HTTPS stub that answers what a real QRS never should (HTML, empty or cut-off
bodies, tables of the wrong shape, a table that ignores ``skip``, redirects, dropped connections): every such
answer fails closed with one line, and a DELETE is never sent twice."""

from __future__ import annotations

import contextlib
import itertools
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from butler.qrs import QrsClient, QrsNoAnswer, QrsUnavailable
from butler.qrs.answers import UserTable
from butler.qrs.certs import CertificateFiles
from butler.qrs.errors import QrsBadAnswer
from qrs_simulator import ensure_certs

GUID = "4b8a1d4e-7c1b-4f7e-9a0e-0c3f4b5a6d7e"
ALLOCATIONS = "/qrs/license/professionalaccesstype/full"


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without any answer
    cut: bool = False  # promise more bytes than are sent, then close


Route = Callable[[dict[str, list[str]]], Answer]


def json_answer(payload: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(payload).encode())


class StubQrs:
    """HTTPS on loopback with the simulator's server certificate; ``routes`` maps ``METHOD /path`` to an answer."""

    def __init__(self, certs_dir: Path) -> None:
        paths = ensure_certs(certs_dir)
        self.files = CertificateFiles(paths.client, paths.client_key, paths.root)
        self.routes: dict[str, Route] = {}
        self.received: list[tuple[str, str, dict[str, list[str]]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                owner.received.append((self.command, url.path, query))
                route = owner.routes.get(f"{self.command} {url.path}")
                owner.answer(self, route(query) if route else Answer(404, b"Not found", "text/plain"))

            do_POST = do_DELETE = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(paths.server, paths.server_key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @staticmethod
    def answer(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        if answer.drop:
            handler.close_connection = True
            return
        with contextlib.suppress(OSError):
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            handler.send_header("Content-Length", str(len(answer.body) * (4 if answer.cut else 1)))
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer.body)
            handler.close_connection = True

    def client(self, **kwargs: Any) -> QrsClient:
        return QrsClient(f"https://127.0.0.1:{self.server.server_address[1]}", self.files, **kwargs)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.received if (m, p) == (method, path))


@pytest.fixture
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubQrs]:
    server = StubQrs(tmp_path_factory.mktemp("stub-certs"))
    yield server
    server.server.shutdown()
    server.server.server_close()


def one_line_bad_answer(call: Callable[[], Any]) -> str:
    with pytest.raises(QrsBadAnswer) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and len(message) < 300, message
    return message


# --- bodies that are not JSON ------------------------------------------------------------------------------------


def test_an_html_page_is_a_bad_answer(stub: StubQrs) -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>" + b"<p>x</p>" * 2000
    stub.routes["GET /qrs/license/accesstypeoverview"] = lambda q: Answer(200, page, "text/html")
    message = one_line_bad_answer(lambda: stub.client().access_type_overview())
    assert message.startswith("GET /qrs/license/accesstypeoverview: unexpected answer: an HTML page (text/html) "
                              "where JSON was expected: '502 Bad Gateway")


@pytest.mark.parametrize(("answer", "says"), [
    (Answer(200, b""), "an empty body where JSON was expected"),
    (Answer(200, b'[{"id": "' + GUID.encode() + b'", "lastUs'), "not valid JSON"),
    (Answer(200, b'[{"id": "' + GUID.encode() + b'"}, {"id"', cut=True), "the answer was cut off"),
])
def test_an_empty_or_cut_off_body_is_a_bad_answer(stub: StubQrs, answer: Answer, says: str) -> None:
    stub.routes[f"GET {ALLOCATIONS}"] = lambda q: answer
    assert says in one_line_bad_answer(lambda: stub.client(retries=0).allocations("professional"))


def test_a_count_that_is_not_a_count_is_a_bad_answer(stub: StubQrs) -> None:
    stub.routes["GET /qrs/user/count"] = lambda q: json_answer({"value": "many"})
    assert "not a count: {'value': 'many'}" in one_line_bad_answer(lambda: stub.client().user_count())


def test_a_redirect_is_not_followed(stub: StubQrs) -> None:
    stub.routes["GET /qrs/about"] = lambda q: Answer(302, b"", headers={"Location": "/elsewhere"})
    message = one_line_bad_answer(lambda: stub.client().about())
    assert message == ("GET /qrs/about: unexpected answer: HTTP 302, a redirect: QRS does not redirect; check "
                       "Butler.qrs.host and Butler.qrs.port")
    assert stub.count("GET", "/elsewhere") == 0


# --- the user table ----------------------------------------------------------------------------------------------


def user_row(user_id: str, tags: Any = (), **cells: Any) -> list[Any]:
    values = {"id": user_id, "userId": f"u-{user_id[:8]}", "userDirectory": "CORP", "name": None, "inactive": False,
              "blacklisted": False, "removedExternally": False, "tags": list(tags) if isinstance(tags, tuple) else tags,
              "customProperties": [], **cells}
    return [values[name] for name in UserTable().names]


def table_answer(rows: list[list[Any]]) -> Answer:
    return json_answer({"schemaPath": "Table", "columnNames": UserTable().names, "rows": rows, "id": None}, 201)


@pytest.mark.parametrize("tags", [["VIP-User"], None, "VIP-User", [None]])
def test_a_tag_column_of_the_wrong_shape_stops_the_read(stub: StubQrs, tags: Any) -> None:
    stub.routes["POST /qrs/user/table"] = lambda q: table_answer([user_row(GUID, tags=[["VIP-User"]]),
                                                                  user_row(GUID.replace("4b", "5b"), tags=tags)])
    assert ": tags is not a list of ['name'] lists" in one_line_bad_answer(lambda: stub.client().users())


def test_a_table_without_the_protection_columns_stops_the_read(stub: StubQrs) -> None:
    names = UserTable().names[:-2]
    stub.routes["POST /qrs/user/table"] = lambda q: json_answer({"columnNames": names, "rows": []}, 201)
    assert "are not the columns asked for" in one_line_bad_answer(lambda: stub.client().users())


def test_a_table_that_ignores_skip_stops_after_two_pages(stub: StubQrs) -> None:
    page = [user_row(f"{n:08x}-0000-4000-8000-000000000000") for n in range(100)]
    stub.routes["POST /qrs/user/table"] = lambda q: table_answer(page)
    stub.routes["GET /qrs/user/count"] = lambda q: json_answer({"value": 100_000})
    message = one_line_bad_answer(lambda: stub.client(page_size=100).users())
    assert message == ("POST /qrs/user/table: unexpected answer: the page at skip=100 repeats the previous one "
                       "(QRS ignored skip)")
    assert stub.count("POST", "/qrs/user/table") == 2


def test_paging_is_bounded_by_the_count_plus_one_page(stub: StubQrs) -> None:
    numbers = itertools.count()

    def endless(query: dict[str, list[str]]) -> Answer:  # full pages of fresh ids, whatever skip says
        return table_answer([user_row(f"{next(numbers):08x}-0000-4000-8000-000000000000") for _ in range(100)])

    stub.routes["POST /qrs/user/table"] = endless
    stub.routes["GET /qrs/user/count"] = lambda q: json_answer({"value": 250})
    message = one_line_bad_answer(lambda: stub.client(page_size=100).users())
    assert message == ("POST /qrs/user/table: unexpected answer: 4 full pages of 100 rows, but QRS counts 250 "
                       "users: the paging does not end")
    assert (stub.count("POST", "/qrs/user/table"), stub.count("GET", "/qrs/user/count")) == (4, 1)
    assert [q["skip"] for m, _, q in stub.received if m == "POST"] == [["0"], ["100"], ["200"], ["300"]]


def test_users_by_id_refuses_users_not_asked_for(stub: StubQrs) -> None:
    other = GUID.replace("4b", "6c")
    stub.routes["POST /qrs/user/table"] = lambda q: table_answer([user_row(GUID), user_row(other)])
    message = one_line_bad_answer(lambda: stub.client().users_by_id([GUID]))
    assert message == (f"POST /qrs/user/table: unexpected answer: 1 users not asked for (first '{other}'): the "
                       "filter was ignored")


# --- allocations -------------------------------------------------------------------------------------------------


def test_one_unreadable_allocation_is_marked_and_the_others_read(stub: StubQrs) -> None:
    always = {"createdDate": "2025-03-01T08:00:00.000Z", "quarantined": False}  # QRS sends these with every record
    records = [{"id": GUID, "lastUsed": "2026-03-01T08:00:00.000Z", **always},
               {"id": GUID.replace("4b", "7d"), "lastUsed": "2026-13-45T00:00:00.000Z", **always,
                "user": {"id": GUID, "userId": "jdoe", "userDirectory": "CORP"}}]
    stub.routes[f"GET {ALLOCATIONS}"] = lambda q: json_answer(records)
    good, broken = stub.client().allocations("professional")
    assert good.problem is None and good.lastUsed is not None
    assert broken.problem == "lastUsed: unreadable date '2026-13-45T00:00:00.000Z'"
    assert broken.user is not None and broken.user.userId == "jdoe"


def test_allocations_by_id_refuses_an_ignored_filter(stub: StubQrs) -> None:
    stub.routes[f"GET {ALLOCATIONS}"] = lambda q: json_answer([{"id": GUID}, {"id": GUID.replace("4b", "8e")}])
    assert "1 allocations not asked for" in one_line_bad_answer(
        lambda: stub.client().allocations_by_id("professional", [GUID]))
    (_, _, query), = stub.received
    assert query["filter"] == [f"id eq {GUID}"]


def test_a_dropped_delete_is_not_resent_and_says_no_answer(stub: StubQrs) -> None:
    stub.routes[f"DELETE /qrs/license/professionalaccesstype/{GUID}"] = lambda q: Answer(drop=True)
    with pytest.raises(QrsNoAnswer) as error:
        stub.client(retries=3).delete_allocation("professional", GUID)
    assert "dropped without an answer" in str(error.value) and "tried" not in str(error.value)
    assert stub.count("DELETE", f"/qrs/license/professionalaccesstype/{GUID}") == 1


def test_a_delete_answered_503_is_not_resent(stub: StubQrs) -> None:
    stub.routes[f"DELETE /qrs/license/professionalaccesstype/{GUID}"] = lambda q: Answer(503, b"busy", "text/plain")
    stub.routes["GET /qrs/about"] = lambda q: Answer(503, b"busy", "text/plain")
    client = stub.client(retries=2)
    with pytest.raises(QrsUnavailable):
        client.delete_allocation("professional", GUID)
    with pytest.raises(QrsUnavailable):
        client.about()
    assert stub.count("DELETE", f"/qrs/license/professionalaccesstype/{GUID}") == 1
    assert stub.count("GET", "/qrs/about") == 3  # reads are retried


def test_a_dropped_read_is_retried(stub: StubQrs) -> None:
    stub.routes["GET /qrs/about"] = lambda q: Answer(drop=True)
    with pytest.raises(QrsNoAnswer, match=r"\(tried 3 times\)$"):
        stub.client(retries=2).about()
    assert stub.count("GET", "/qrs/about") == 3


def test_a_delete_answered_other_than_204_is_a_bad_answer(stub: StubQrs) -> None:
    stub.routes[f"DELETE /qrs/license/professionalaccesstype/{GUID}"] = lambda q: Answer(202, b"")
    message = one_line_bad_answer(lambda: stub.client().delete_allocation("professional", GUID))
    assert message.endswith("HTTP 202 where 204 was expected")
