"""The tuning loop's routes through ``butler serve`` (a subprocess) against the QRS simulator over mutual TLS:
candidates (paged, filtered, CSV), what-if, returns and the HTML report with its Content-Security-Policy."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.api.conftest import Served
from tests.integration.test_tuning_sim import policy
from tests.support.evaluate_scenario import SCENARIO

pytestmark = pytest.mark.timeout(120)


def test_the_routes_through_butler_serve(sim_factory: Callable[..., Any], write_config: Callable[..., Path],
                                         serve: Callable[[Path], Served]) -> None:
    sim = sim_factory(scenario=SCENARIO)
    served = serve(write_config(sim, policy()))

    def get(path: str, **params: str) -> requests.Response:
        return requests.get(f"{served.url}/v4/licenses/{path}", params=params, timeout=60)

    body = get("candidates").json()
    assert body["dryRun"] is True and body["total"] == 17 and len(body["decisions"]) == 17
    assert body["protectedByRule"]["exclusions.tags"] == 1 and body["nextOffset"] is None
    first = get("candidates", action="would-release", limit="2").json()
    assert [d["userId"] for d in first["decisions"]] == ["a.idle", "p.never"] and first["nextOffset"] == 2
    rest = get("candidates", action="would-release", limit="2", offset="2").json()
    assert [d["userId"] for d in rest["decisions"]] == ["p.idle"] and rest["nextOffset"] is None
    only = get("candidates", licenseType="analyzer", action="would-release").json()
    assert [d["userId"] for d in only["decisions"]] == ["a.idle"]
    answer = get("candidates", action="protected", format="csv")
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(answer.text)))) == 4
    assert get("candidates", limit="10001").status_code == 422
    assert get("candidates", action="sleep").status_code == 422
    assert served.audit() == []  # a preview: nothing audited

    what_if = get("what-if", professional="20", analyzer="120").json()
    assert (what_if["professional"]["inactivityDays"], what_if["analyzer"]["inactivityDays"]) == (20, 120)
    assert what_if["professional"]["wouldRelease"] == 2 and what_if["analyzer"]["wouldRelease"] == 0
    assert len(get("what-if", sweep="true").json()["sweep"]) == 7
    assert get("what-if", professional="0").status_code == 422
    assert get("what-if", sweep="true", analyzer="30").status_code == 400

    returns = get("returns", days="30").json()
    assert returns["total"] == {"released": 0, "returned": 0, "returnRate": None}
    assert get("returns", days="-1").status_code == 422

    page = get("report")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert page.text.startswith("<!DOCTYPE html>") and "Candidates of the next run" in page.text
    assert get("report", days="1").status_code == 400
