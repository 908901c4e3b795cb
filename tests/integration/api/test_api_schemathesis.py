"""Schemathesis drives a live ``butler serve`` from the committed docs/openapi.json: whatever it sends, within the
document (positive) or against it (negative), the answer is never a 5xx and its status code is one the document
lists for that operation; with QRS failing, the 5xx answers are the documented ones.

The server runs as a subprocess against the QRS simulator over mutual TLS, so the generated ids reach QRS's filter
language. The configuration is a dry run: every example sees the same state. Generation is derandomized and
bounded (a few seconds), so the test is repeatable in CI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.integration.api.conftest import Served

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
USER = "/v4/licenses/user/{userId}"
# Ids of the scenario's users as an administrator writes them: so that most examples reach a real user.
KNOWN_USERS = ["DOMAIN\\jdoe", "domain\\VIP", "sam", "OTHER\\sam", "o'brien", "DOMAIN\\nolicense", "quar",
               "DOMAIN\\nobody", "ann"]

pytestmark = pytest.mark.timeout(120)


def cases(schema: Any) -> st.SearchStrategy[Any]:
    """Positive and negative cases of every operation, and positive ones about the scenario's users."""
    known = st.sampled_from(KNOWN_USERS).flatmap(
        lambda user: schema[USER].as_strategy(path_parameters={"userId": user}))
    return st.one_of(schema.as_strategy(), schema.as_strategy(generation_mode=GenerationMode.NEGATIVE), known, known)


def run(served: Served, strategy: st.SearchStrategy[Any], checks: list[Any], examples: int) -> dict[int, int]:
    """Send ``examples`` generated requests to ``served``, checking each answer; the count per status code."""
    seen: dict[int, int] = {}

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def one_request(case: Any) -> None:
        response = case.call(base_url=served.url, timeout=30)
        case.validate_response(response, checks=checks)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    one_request()
    return seen


def test_the_served_api_answers_as_its_document_says(serve: Callable[[Path], Served],
                                                     api_config: Callable[..., Path], api_sim: Any) -> None:
    served = serve(api_config(dryRun=True))
    seen = run(served, cases(schemathesis.openapi.from_path(DOCUMENT)), CHECKS, 600)
    assert {200, 400, 404, 409, 422} <= set(seen), seen
    assert api_sim.stats().get("GET /qrs/user/full", 0) >= 50, seen  # the generated ids did reach QRS
    assert "Traceback" not in served.stderr.read_text()


def test_with_qrs_failing_every_5xx_is_documented(serve: Callable[[Path], Served], api_config: Callable[..., Path],
                                                  api_sim: Any) -> None:
    config = api_config(dryRun=True)
    data = yaml.safe_load(config.read_text())
    data["Butler"]["qrs"].update(retries=0)  # no back-off: each example fails at once
    config.write_text(yaml.safe_dump(data))
    served = serve(config)
    api_sim.fault_rate = 1.0  # every /qrs request: a 503 or a dropped connection
    seen = run(served, cases(schemathesis.openapi.from_path(DOCUMENT)), [status_code_conformance], 60)
    assert 503 in seen and not {500, 502, 504} & set(seen), seen
    assert "Traceback" not in served.stderr.read_text()
