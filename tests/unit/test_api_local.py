"""``butler serve``: HTTP requests as API Gateway REST proxy events, its loopback binding, and JSON for every answer
(bad lengths, undeclared methods, malformed requests), never http.server's HTML pages."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from butler.api import Backend, create_app
from butler.api.local import LOOPBACK, MAX_BODY, make_server, proxy_event
from butler.config import parse


def test_the_event_keeps_the_path_encoded_and_decodes_the_query() -> None:
    event = proxy_event("DELETE", "/v4/licenses/user/DOMAIN%5Cjdoe?force=true&licenseType=a%20b&force=1&empty=",
                        {"Host": "127.0.0.1"}, b"", "127.0.0.1")
    assert event["path"] == "/v4/licenses/user/DOMAIN%5Cjdoe" and event["httpMethod"] == "DELETE"
    assert event["multiValueQueryStringParameters"] == {"force": ["true", "1"], "licenseType": ["a b"], "empty": [""]}
    assert event["queryStringParameters"] == {"force": "1", "licenseType": "a b", "empty": ""}
    assert event["requestContext"]["identity"]["userArn"] is None and event["body"] is None


def test_characters_the_router_cannot_match_are_encoded() -> None:
    event = proxy_event("GET", "/v4/licenses/user/DOMAIN\\j doe\"x", {}, b"", "127.0.0.1")
    assert event["path"] == "/v4/licenses/user/DOMAIN%5Cj%20doe%22x"


def test_the_server_listens_on_loopback_and_answers_as_the_lambda_would() -> None:
    config = parse({"Butler": {}})
    app = create_app(Backend(lambda: config, actor="local"))
    server = make_server(app, 0)
    assert server.server_address[0] == LOOPBACK == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        answer = requests.delete(f"{url}/v4/licenses/user/jdoe", params={"licenseType": "tokens"}, timeout=10)
        assert answer.status_code == 422 and "licenseType" in answer.json()["message"]
        answer = requests.put(f"{url}/v4/licenses/status", timeout=10)
        assert answer.status_code == 405 and answer.headers["Allow"] == "GET"
        assert json.loads(requests.get(f"{url}/nowhere", timeout=10).text)["message"].startswith("no such route")
    finally:
        server.shutdown()
        server.server_close()


# --- what http.server would answer itself: every answer is JSON, never its HTML pages -------------------------


@pytest.fixture
def local_port() -> Iterator[int]:
    config = parse({"Butler": {}})
    server = make_server(create_app(Backend(lambda: config, actor="local")), 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def raw(port: int, request: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send bytes as they are; read until the server closes the connection."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as connection:
        connection.sendall(request)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body else {}


@pytest.mark.parametrize("length", ["abc", "-1", "+5", "1e3", "", "١٢", str(MAX_BODY + 1), "99999999999999999999"])
def test_a_bad_content_length_is_a_400_that_closes_the_connection(local_port: int, length: str) -> None:
    request = f"DELETE /v4/licenses/user/jdoe HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
    status, headers, body = raw(local_port, request.encode())
    assert status == 400 and "Content-Length" in body["message"]
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"


def test_conflicting_lengths_and_chunked_bodies_are_refused(local_port: int) -> None:
    twice = b"GET /v4/licenses/status HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    assert raw(local_port, twice)[0] == 400
    chunked = b"GET /v4/licenses/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    status, _, body = raw(local_port, chunked)
    assert status == 400 and "chunked" in body["message"]


def test_a_body_within_the_limit_is_read_and_ignored(local_port: int) -> None:
    url = f"http://{LOOPBACK}:{local_port}/v4/licenses/user/jdoe?licenseType=tokens"
    answer = requests.delete(url, data=b"x" * 1000, timeout=10)
    assert answer.status_code == 422  # the body did not break the request; the parameter was judged


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("TRACE", "/v4/licenses/status", "GET"),
    ("OPTIONS", "/v4/licenses/user/jdoe", "GET, DELETE"),
    ("CONNECT", "/v4/licenses/status", "GET"),
    ("PATCH", "/v4/licenses/user/jdoe", "GET, DELETE"),
    ("HEAD", "/v4/licenses/status", "GET"),
    ("BREW", "/coffee", "DELETE, GET, POST, PUT"),  # an unknown verb on an unknown path: the methods the API has
])
def test_a_method_the_api_does_not_declare_is_a_json_405(local_port: int, method: str, path: str,
                                                         allow: str) -> None:
    status, headers, body = raw(local_port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (status, headers["allow"]) == (405, allow)
    if method != "HEAD":
        assert body["message"].startswith(f"method {method} not allowed")


def test_a_method_of_another_route_is_the_resolvers_405(local_port: int) -> None:
    answer = requests.delete(f"http://{LOOPBACK}:{local_port}/v4/licenses/status", timeout=10)
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET" and answer.json()["message"]


@pytest.mark.parametrize(("request_line", "status"), [
    (b"GET /v4/licenses/status HTTP/9.9", 505),
    (b"GET /v4/licenses/status HTTP/1.x", 400),
    (b"GET /v4/licenses/status HTTP/1.1 extra", 400),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1", 414),
    (b"GET http://[127.0.0.1/v4/licenses/status HTTP/1.1", 400),  # no URL: urlsplit raises
    (b"TRACE http://[127.0.0.1/v4/licenses/status HTTP/1.1", 405),
])
def test_http_servers_own_errors_are_json(local_port: int, request_line: bytes, status: int,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    got, headers, body = raw(local_port, request_line + b"\r\nHost: x\r\n\r\n")
    assert got == status and headers["content-type"] == "application/json" and body["message"]
    assert "Traceback" not in capsys.readouterr().err
