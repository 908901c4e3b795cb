"""Request statistics, control endpoints, latency and injected faults."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import requests

from qrs_simulator import Simulator

from .conftest import Qrs, scenario


def test_stats_count_by_method_and_path_with_ids(fresh_qrs: Qrs) -> None:
    fresh_qrs.control("POST", "reset-stats")
    held = fresh_qrs.allocation_of("analyzer", "pobrien")  # one GET .../full
    assert held is not None
    fresh_qrs.get(f"license/analyzeraccesstype/{held['id']}")
    fresh_qrs.get(f"license/analyzeraccesstype/{held['id'].upper()}")
    fresh_qrs.request("DELETE", f"license/analyzeraccesstype/{held['id']}")
    fresh_qrs.get("license/accesstypeoverview", privileges="true")
    fresh_qrs.request("GET", "about", {"xrfkey": "wrong"})  # refused requests count too
    assert fresh_qrs.control("GET", "stats") == {
        "requests": {
            "GET /qrs/license/analyzeraccesstype/full": 1,
            "GET /qrs/license/analyzeraccesstype/{id}": 2,
            "DELETE /qrs/license/analyzeraccesstype/{id}": 1,
            "GET /qrs/license/accesstypeoverview": 1,
            "GET /qrs/about": 1,
        }
    }
    assert fresh_qrs.sim.stats()["GET /qrs/about"] == 1
    assert fresh_qrs.control("POST", "reset-stats") == {"requests": {}}
    assert fresh_qrs.control("GET", "stats") == {"requests": {}}


def test_control_endpoint_errors(qrs: Qrs) -> None:
    get = qrs.session.get
    assert get(f"{qrs.sim.url}/__sim/nothing", verify=qrs.sim.ca_file, timeout=10).status_code == 404
    assert get(f"{qrs.sim.url}/__sim/reset-stats", verify=qrs.sim.ca_file, timeout=10).status_code == 405
    assert get(f"{qrs.sim.url}/elsewhere", verify=qrs.sim.ca_file, timeout=10).status_code == 404


def test_latency_delays_qrs_responses(certs_dir: Path) -> None:
    with Simulator(scenario(), certs_dir=certs_dir, latency_ms=300) as sim:
        client = Qrs(sim)
        start = time.monotonic()
        client.get("about")
        assert time.monotonic() - start >= 0.3
        sim.latency_ms = 0
        assert sim.latency_ms == 0


def test_faults_answer_503_or_drop_and_change_nothing(certs_dir: Path) -> None:
    with Simulator(scenario(), certs_dir=certs_dir, fault_rate=1.0, fault_seed=4) as sim:
        client = Qrs(sim)
        held = next(r.data for r in sim.state.allocations["analyzer"] if r.data["user"]["userId"] == "pobrien")
        outcomes: Counter[str] = Counter()
        for _ in range(24):
            try:
                response = client.request("DELETE", f"license/analyzeraccesstype/{held['id']}")
            except requests.exceptions.ConnectionError:
                outcomes["dropped"] += 1
                continue
            assert response.status_code == 503
            assert response.headers["Content-Type"].startswith("text/plain") and response.text
            outcomes["503"] += 1
        assert outcomes["503"] > 0 and outcomes["dropped"] > 0
        assert client.control("GET", "stats")["requests"] == {"DELETE /qrs/license/analyzeraccesstype/{id}": 24}
        sim.fault_rate = 0.0
        assert client.get(f"license/analyzeraccesstype/{held['id']}") == held  # not released, not quarantined
        assert client.get("license/analyzeraccesstype/count") == {"value": 2}


def test_partial_fault_rate_serves_some(certs_dir: Path) -> None:
    with Simulator(scenario(), certs_dir=certs_dir, fault_rate=0.5, fault_seed=9) as sim:
        client = Qrs(sim)
        statuses: Counter[int] = Counter()
        for _ in range(30):
            try:
                statuses[client.request("GET", "about").status_code] += 1
            except requests.exceptions.ConnectionError:
                statuses[0] += 1
        assert statuses[200] > 0 and statuses[503] + statuses[0] > 0
        assert set(statuses) <= {0, 200, 503}
