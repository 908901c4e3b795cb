"""Property: whatever the path segment and query string, the API answers JSON, and bad input is a 4xx, never a 5xx.

Requests go through the real resolver to the simulator over mutual TLS, so the user ids reach QRS's filter language
(quotes, backslashes, operators, unicode): a wrongly escaped filter would come back as QRS's 400 and surface here
as a 502. Parameter names and enum values come from the committed OpenAPI document, plus arbitrary ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from butler.api import Backend, create_app
from butler.config import load

OPENAPI = json.loads((Path(__file__).resolve().parents[3] / "docs" / "openapi.json").read_text())
PARAMETERS = [p for op in OPENAPI["paths"]["/v4/licenses/user/{userId}"].values() for p in op["parameters"]
              if p["in"] == "query"]
ENUM_VALUES = [v for p in PARAMETERS for s in p["schema"].get("anyOf", [p["schema"]]) for v in s.get("enum", [])]

texts = st.text(max_size=300)
printable = st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=80)
user_segments = st.one_of(
    printable.map(lambda t: quote(t, safe="")),  # properly URL-encoded names as an administrator types them
    printable.map(lambda t: quote(t, safe="")),
    texts.map(lambda t: quote(t, safe="")),  # any unicode, URL-encoded
    texts,  # raw, whatever a client may send
    st.from_regex(r"(%[0-9A-Fa-f]{2}|[A-Za-z0-9'\\\\ ()=%.-]){0,40}", fullmatch=True),  # broken escapes, filter syntax
    st.sampled_from(["DOMAIN%5Cjdoe", "sam", "o'brien", "DOMAIN%5C", "%5C", "x' or userId eq 'sam", "a%5Cb%5Cc"]),
)
known = st.sampled_from(sorted({p["name"] for p in PARAMETERS}))
names = st.one_of(known, known, known, texts)  # mostly known names, so that most requests reach QRS
values = st.one_of(st.sampled_from([*ENUM_VALUES, "true", "false", "1", ""]), texts)
queries = st.one_of(st.just({}), st.dictionaries(names, st.lists(values, min_size=1, max_size=2), max_size=2))


@pytest.fixture
def resolver(api_config: Callable[..., Path]) -> Any:
    config = load(api_config(dryRun=True))  # nothing released: every example sees the same state
    return create_app(Backend(lambda: config, actor="fuzz"))


def test_bad_input_is_never_a_server_error(resolver: Any, api_sim: Any) -> None:
    seen: dict[int, int] = {}

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(method=st.sampled_from(["GET", "DELETE", "GET", "DELETE", "POST"]), segment=user_segments, query=queries)
    def one_request(method: str, segment: str, query: dict[str, list[str]]) -> None:
        path = f"/v4/licenses/user/{segment}"
        event = {"resource": "/v4/licenses/user/{userId}", "path": path, "httpMethod": method, "headers": {},
                 "multiValueHeaders": {}, "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
                 "multiValueQueryStringParameters": query or None, "pathParameters": {"userId": segment},
                 "requestContext": {"requestId": "fuzz", "identity": {}}, "body": None, "isBase64Encoded": False}
        answer = resolver.resolve(event, None)
        status, body = answer["statusCode"], json.loads(answer["body"])
        assert status in (200, 400, 404, 405, 409, 422), (status, body)
        if status != 200:
            assert isinstance(body["message"], str) and body["message"]
        else:
            assert method == "GET" or body["dryRun"] is True
        seen[status] = seen.get(status, 0) + 1

    one_request()
    lookups = api_sim.stats().get("GET /qrs/user/full", 0)
    assert lookups >= 20, f"too few examples reached QRS ({lookups}); statuses {seen}"
    assert {400, 404, 422} <= set(seen), seen
