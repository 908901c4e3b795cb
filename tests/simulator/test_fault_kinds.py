"""`--fault-kinds` (error, reset, lost-response, slow), `--fault-methods` and `--slow-ms`, over mutual TLS."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from qrs_simulator import Simulator
from qrs_simulator.server import Faults

from .conftest import QLIK_USER, XRFKEY, Qrs, scenario
from .test_cli import env, running


def held_id(sim: Simulator, kind: str, user_id: str) -> str:
    return next(r.data["id"] for r in sim.state.allocations[kind] if r.data["user"]["userId"] == user_id)


def outcome(client: Qrs, method: str, path: str, timeout: float = 30) -> str:
    try:
        return str(client.request(method, path, timeout=timeout).status_code)
    except requests.exceptions.ReadTimeout:
        return "timeout"
    except requests.exceptions.ConnectionError:
        return "dropped"


def test_default_kinds_draw_exactly_as_before() -> None:
    """error,reset keeps the original sequence: 3 in 4 errors, 1 in 4 resets, for the same seed."""
    old = random.Random(11)
    expected = []
    for _ in range(400):
        if old.random() >= 0.5:
            expected.append(None)
        else:
            expected.append("reset" if old.random() < 0.25 else "error")
    faults = Faults(0.5, 11)
    assert [faults.draw("GET") for _ in range(400)] == expected


def test_all_kinds_are_drawn_and_seedable() -> None:
    kinds = "error,reset,lost-response,slow"
    draws = Faults(1.0, 3, kinds)
    sequence = [draws.draw("DELETE") for _ in range(600)]
    again = Faults(1.0, 3, kinds)
    assert [again.draw("DELETE") for _ in range(600)] == sequence
    assert draws.draw("PATCH") is None  # not among the default methods
    counts = Counter(sequence)
    assert set(counts) == {"error", "reset", "lost-response", "slow"}
    assert counts["error"] > counts["reset"]  # weights error 3, the others 1


def test_bad_kinds_and_methods_are_refused(certs_dir: Path) -> None:
    with pytest.raises(ValueError, match="fault kinds"):
        Faults(1.0, 1, "error,explode")
    with pytest.raises(ValueError, match="fault methods"):
        Faults(1.0, 1, methods="GET,FETCH")
    with pytest.raises(ValueError, match="fault kinds"):
        Simulator(scenario(), certs_dir=certs_dir, fault_kinds="")
    with Simulator(scenario(), certs_dir=certs_dir) as sim:
        assert sim.fault_kinds == ("reset", "error")
        assert sim.fault_methods == {"GET", "POST", "PUT", "DELETE"}
        assert sim.slow_ms == 30000
        with pytest.raises(ValueError, match="nope"):
            sim.fault_kinds = ["nope"]


def test_lost_response_carries_out_the_delete_then_drops(certs_dir: Path) -> None:
    with Simulator(
        scenario(), certs_dir=certs_dir, fault_rate=1.0, fault_kinds="lost-response", fault_methods="DELETE"
    ) as sim:
        client = Qrs(sim)
        guid = held_id(sim, "analyzer", "pobrien")  # used 30 days ago: a DELETE removes it
        assert outcome(client, "DELETE", f"license/analyzeraccesstype/{guid}") == "dropped"
        # GETs are not faulted (--fault-methods DELETE), and the DELETE did happen
        assert client.request("GET", f"license/analyzeraccesstype/{guid}").status_code == 404
        assert client.get("license/accesstypeoverview")["analyzerAccess"]["allocated"] == 1
        assert client.control("GET", "stats")["requests"] == {
            "DELETE /qrs/license/analyzeraccesstype/{id}": 1,
            "GET /qrs/license/analyzeraccesstype/{id}": 1,
            "GET /qrs/license/accesstypeoverview": 1,
        }


def test_lost_response_of_a_post_allocates(certs_dir: Path) -> None:
    with Simulator(scenario(), certs_dir=certs_dir, fault_kinds=["lost-response"], fault_methods=["POST"]) as sim:
        client = Qrs(sim)
        user_id = client.user_id("DOMAIN", "newbie")
        sim.fault_rate = 1.0
        response = None
        with pytest.raises(requests.exceptions.ConnectionError):
            response = client.request("POST", "license/analyzeraccesstype", json={"user": {"id": user_id}})
        assert response is None
        assert client.allocation_of("analyzer", "newbie") is not None


def test_slow_answers_late_but_acts_at_once(certs_dir: Path) -> None:
    with Simulator(
        scenario(), certs_dir=certs_dir, fault_rate=1.0, fault_kinds="slow", slow_ms=1500, fault_methods="DELETE"
    ) as sim:
        client = Qrs(sim)
        guid = held_id(sim, "analyzer", "pobrien")
        assert outcome(client, "DELETE", f"license/analyzeraccesstype/{guid}", timeout=0.3) == "timeout"
        fresh = Qrs(sim)  # the timed-out connection is gone; the change is already visible
        assert fresh.request("GET", f"license/analyzeraccesstype/{guid}").status_code == 404
        sim.slow_ms = 300
        jdoe = held_id(sim, "professional", "jdoe")
        start = time.monotonic()
        assert outcome(fresh, "DELETE", f"license/professionalaccesstype/{jdoe}") == "204"
        assert time.monotonic() - start >= 0.3


def test_methods_limit_faults(certs_dir: Path) -> None:
    with Simulator(scenario(), certs_dir=certs_dir, fault_rate=1.0, fault_kinds="error", fault_methods="POST") as sim:
        client = Qrs(sim)
        for _ in range(5):
            assert client.request("GET", "about").status_code == 200
        user_id = client.user_id("DOMAIN", "newbie")
        assert client.request("POST", "license/analyzeraccesstype", json={"user": {"id": user_id}}).status_code == 503
        assert client.allocation_of("analyzer", "newbie") is None
        sim.fault_methods = "GET"
        assert client.request("GET", "about").status_code == 503


def test_same_seed_same_outcomes_over_the_wire(certs_dir: Path) -> None:
    def run() -> list[str]:
        with Simulator(
            scenario(), certs_dir=certs_dir, fault_rate=0.6, fault_seed=21, fault_kinds="error,reset,lost-response"
        ) as sim:
            client = Qrs(sim)
            return [outcome(client, "GET", "about") for _ in range(30)]

    first = run()
    assert first == run()
    assert {"200", "503", "dropped"} <= set(first)


def test_command_line_fault_options(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(json.dumps(scenario()))
    certs = tmp_path / "certs"
    args = ["--port", "0", "--certs-dir", str(certs), "--scenario", str(scenario_file), "--fault-rate", "1"]
    args += ["--fault-kinds", "lost-response", "--fault-methods", "DELETE", "--slow-ms", "10", "--fault-seed", "2"]
    with running(*args) as (_proc, line):
        match = re.fullmatch(r"READY (https://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        session = requests.Session()
        session.cert = (str(certs / "client.pem"), str(certs / "client_key.pem"))
        session.headers.update({"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER})
        verify = str(certs / "root.pem")
        state = session.get(f"{url}/__sim/state", verify=verify, timeout=10).json()
        target = next(a for a in state["allocations"] if a["user"] and a["user"]["userId"] == "pobrien")
        with pytest.raises(requests.exceptions.ConnectionError):
            session.delete(
                f"{url}/qrs/license/analyzeraccesstype/{target['id']}",
                params={"xrfkey": XRFKEY},
                verify=verify,
                timeout=10,
            )
        after = session.get(f"{url}/__sim/state", verify=verify, timeout=10).json()
        assert target["id"] not in {a["id"] for a in after["allocations"]}


@pytest.mark.parametrize(
    "extra",
    [["--fault-kinds", "error,boom"], ["--fault-methods", "GET,FETCH"], ["--slow-ms", "-1"], ["--fault-kinds", ""]],
)
def test_command_line_refuses_bad_fault_options(tmp_path: Path, extra: list[str]) -> None:
    base = [sys.executable, "-m", "qrs_simulator", "--port", "0", "--certs-dir", str(tmp_path), "--users", "5"]
    result = subprocess.run([*base, *extra], capture_output=True, text=True, env=env(), timeout=30)
    assert result.returncode == 2
    assert extra[0] in result.stderr
