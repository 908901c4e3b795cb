"""A stand-alone fake of the Qlik Sense Repository Service (QRS), faithful to the QRS Swagger spec.

Command line (see CONTRACT section 2)::

    python -m qrs_simulator --port PORT --certs-dir DIR (--scenario FILE | --users N [--seed S])
                            [--host 127.0.0.1] [--latency-ms MS] [--fault-rate F]
                            [--fault-seed S] [--server-name NAME]

It writes a Qlik-style certificate set into DIR when DIR holds none (root.pem, server.pem, server_key.pem,
client.pem, client_key.pem; the server certificate covers 127.0.0.1, localhost and --server-name), demands a
client certificate signed by root.pem (mutual TLS), and prints one line ``READY https://HOST:PORT`` when it listens.

In process::

    from qrs_simulator import Simulator

    with Simulator(scenario_dict) as sim:            # or Simulator(users=100_000, seed=1)
        requests.get(f"{sim.url}/qrs/about?xrfkey=0123456789abcdef",
                     headers={"X-Qlik-Xrfkey": "0123456789abcdef",
                              "X-Qlik-User": "UserDirectory=INTERNAL; UserId=sa_api"},
                     cert=sim.client_cert, verify=sim.ca_file)
        sim.state      # the live SimState; sim.stats(), sim.reset_stats(); sim.fault_rate / sim.latency_ms settable

Requests to /qrs need ``xrfkey`` (16 of [0-9A-Za-z]) as query parameter and the same value in ``X-Qlik-Xrfkey``
(else 400 "XSRF prevention check failed. Possible XSRF discovered.") and an ``X-Qlik-User`` header
(``UserDirectory=...; UserId=...``, else 403 with a plain-text reason); the acting user becomes
``modifiedByUserName`` of what it changes.

Faults (``--fault-rate F``): each /qrs request is drawn, before anything else happens to it, to be faulted with
probability F. A faulted request changes nothing; three in four get ``503`` with a plain-text body, one in four
a dropped connection (the socket closes without any response). ``--latency-ms`` delays every /qrs response,
faulted ones included. Control endpoints are never faulted or delayed.

Statistics: ``GET /__sim/stats`` -> ``{"requests": {"GET /qrs/license/accesstypeoverview": 1, ...}}`` counts every
/qrs request received, whatever its outcome (served, refused with 4xx, or faulted), keyed by method and the
lower-cased path with GUIDs replaced by ``{id}`` and without the query string. ``POST /__sim/reset-stats`` clears
them; ``GET /__sim/state`` returns ``{"users": [User...], "allocations": [Allocation + "type"...]}``.

Quarantine: DELETE of an allocation used within the last 7 days keeps it with ``quarantined: true`` and
``quarantineEnd = lastUsed + 7 days``; otherwise it is removed. POST of an allocation for a user whose allocation
of that type is quarantined reinstates it. Quarantine does not expire by itself (the state stays as set up).
"""

from __future__ import annotations

from .api import XRF_FAILURE, QrsApi
from .certs import CertPaths, ensure_certs
from .filters import FilterError, compile_filter
from .scenario import ScenarioError, build_from_scenario, load_scenario
from .server import Simulator
from .state import Licenses, SimState
from .synthetic import build_synthetic

__all__ = [
    "XRF_FAILURE",
    "CertPaths",
    "FilterError",
    "Licenses",
    "QrsApi",
    "ScenarioError",
    "SimState",
    "Simulator",
    "build_from_scenario",
    "build_synthetic",
    "compile_filter",
    "ensure_certs",
    "load_scenario",
]
