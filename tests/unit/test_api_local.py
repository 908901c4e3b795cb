"""``butler serve``'s translation of HTTP requests into API Gateway REST proxy events, and its loopback binding."""

from __future__ import annotations

import json
import threading

import requests

from butler.api import Backend, create_app
from butler.api.local import LOOPBACK, make_server, proxy_event
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
