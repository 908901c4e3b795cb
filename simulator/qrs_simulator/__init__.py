"""A stand-alone fake of the Qlik Sense Repository Service (QRS), faithful to the QRS Swagger spec.

Command line (see CONTRACT section 2)::

    python -m qrs_simulator --port PORT --certs-dir DIR (--scenario FILE | --users N [--seed S])
                            [--host 127.0.0.1] [--latency-ms MS] [--fault-rate F] [--fault-seed S]
                            [--fault-kinds error,reset] [--fault-methods GET,POST,PUT,DELETE] [--slow-ms 30000]
                            [--server-name NAME]

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
        sim.state      # the live SimState; sim.stats(), sim.reset_stats()

Constructor arguments that are also settable attributes: ``fault_rate``, ``latency_ms``, ``fault_kinds`` (a
comma-separated string or a list), ``fault_methods``, ``slow_ms``, ``triggers`` (the scenario shape; setting
replaces the pending ones, counted from then on); also ``sim.selection_ttl`` (seconds),
``sim.patch_users([...])`` (as PATCH /__sim/users, returns the number changed) and
``sim.state.add_orphan_allocation(kind, created, last_used=None, ...)``.

Requests to /qrs need ``xrfkey`` (16 of [0-9A-Za-z]) as query parameter and the same value in ``X-Qlik-Xrfkey``
(else 400 "XSRF prevention check failed. Possible XSRF discovered.") and an ``X-Qlik-User`` header
(``UserDirectory=...; UserId=...``, else 403 with a plain-text reason); the acting user becomes
``modifiedByUserName`` of what it changes.

Faults (``--fault-rate F``): each /qrs request of a method in ``--fault-methods`` is drawn, before anything else
happens to it, to be faulted with probability F; its kind is drawn among ``--fault-kinds`` with weights error 3,
the others 1 (so the default ``error,reset`` is three in four 503s, one in four resets); draws follow
``--fault-seed``. ``error``: 503 with a plain-text body, nothing done. ``reset``: the socket closes without a
response, nothing done. ``lost-response``: the request is carried out (state changes), then the socket closes
without a response. ``slow``: carried out at once, answered after ``--slow-ms``. ``--latency-ms`` delays every
/qrs response, faulted ones included. Control endpoints are never faulted, delayed or counted.

Statistics: ``GET /__sim/stats`` -> ``{"requests": {"GET /qrs/license/accesstypeoverview": 1, ...}}`` counts every
/qrs request received, whatever its outcome (served, refused with 4xx, or faulted), keyed by method and the
lower-cased path with GUIDs replaced by ``{id}`` and without the query string. ``POST /__sim/reset-stats`` clears
them; ``GET /__sim/state`` returns ``{"users": [User...], "allocations": [Allocation + "type"...]}``.

``PATCH /__sim/users`` with a JSON list of patches, each naming ``userDirectory`` and ``userId`` (case-insensitive)
and carrying any of ``tags`` (names; replaces), ``customProperties`` (``{"name": ["value", ...]}``; replaces; new
tags, properties and choice values are defined as needed), ``inactive``, ``blacklisted``, ``removedExternally``,
``email`` (null removes it), and ``lastUsed`` (ISO datetime or null) / ``quarantined`` (applied to each allocation
the user holds; quarantining sets quarantineEnd = lastUsed + 7 days), and ``release`` (a list of access types:
the user's allocation of each is released as by DELETE, quarantine rule included, as an administrator would in the
QMC). Answer ``200 {"changed": N}``: the users of
which an object actually changed (changed objects get a new modifiedDate). Every user is looked up before anything
is applied: an unknown one is a 404 naming it, a malformed body a 400, and then nothing is changed.

Scenario (CONTRACT section 2) extras: a user's ``email`` becomes a ``UserAttribute`` of attributeType ``email``
(filterable as ``attributes.attributeValue``; a table List column with definition ``attributes`` yields
``[[attributeType, attributeValue], ...]``); ``license`` may be a list (one allocation per type); ``serverLicense``
``{"validTo": "YYYY-MM-DD" | null, "validFrom"?, "isExpired"?, "isInvalid"?, "isBlacklisted"?}`` sets
``GET /qrs/license`` (isExpired defaults to validTo < today; ``keyDetails`` holds CRLF-separated lines such as
``Product: ...``, ``Valid From: ...``, ``Valid To: YYYY-MM-DD``); without it the license is valid for ten years.
``triggers``: ``[{"afterRequests": {"method": "DELETE", "count": N}, "patchUsers": [...]}]`` applies the patches
once N /qrs requests of that method have been handled since the trigger was armed (whatever their status; faults
that do nothing do not count, lost-response and slow ones do), before that request is answered; while a trigger
is pending, /qrs requests are handled one at a time, so no later request sees the state from before the patches.
Test aid ``orphanAllocations``: ``[{"type": "professional"|"analyzer", "createdDate"?, "lastUsed"?, "quarantined"?,
"deletedUserDirectory"?, "deletedUserId"?}]`` adds allocations whose user was deleted (``user`` null).

Allocations: POST ``/qrs/license/{professional,analyzer}accesstype`` with ``{"user": {"id": "<guid>"}}`` answers
201 with the new allocation (createdDate now, lastUsed the unset sentinel); a user whose allocation of that type is
quarantined gets it reinstated (201, same id). 409 with a plain-text reason, nothing changed, when the user holds
one already or none is left (allocated + quarantined >= total); 400 for an unknown user. DELETE of an allocation
used within the last 7 days keeps it with ``quarantined: true`` and ``quarantineEnd = lastUsed + 7 days``;
otherwise (never used included) it is removed; ownerless ones alike; 204. Quarantine does not expire by itself.

Selections (as the spec lists them): ``POST /qrs/selection/license/<type>accesstype[?filter=]`` selects the
allocations of that type matching the filter (all without one); a body that is a Selection (``{"items": [{"type":
"LicenseProfessionalAccessType", "objectID": "<id>"}, ...]}``, type matching the path) selects those items instead,
narrowed by a filter if given; ids that do not exist are left out. Answer 201 with the Selection (``id``,
``items`` with ``type`` and ``objectID``). Then ``GET /qrs/selection/{id}/license/<type>accesstype[/full|/count]``
(filter, orderby), ``POST .../table``, and ``DELETE /qrs/selection/{id}/license/<type>accesstype[?filter=]``, which
deletes every selected allocation that still exists with the DELETE rule above (204).
``DELETE /qrs/selection/{id}/license`` concerns the site License objects of the selection: there are none, 204.
The spec has no ``DELETE /qrs/selection/{id}``: selections expire 10 minutes after their last use (then 404).
"""

from __future__ import annotations

from .api import XRF_FAILURE, QrsApi
from .certs import CertPaths, ensure_certs
from .filters import FilterError, compile_filter
from .patches import PatchError
from .scenario import ScenarioError, build_from_scenario, load_scenario
from .server import Simulator
from .state import Licenses, ServerLicense, SimState
from .synthetic import build_synthetic

__all__ = [
    "XRF_FAILURE",
    "CertPaths",
    "FilterError",
    "Licenses",
    "PatchError",
    "QrsApi",
    "ScenarioError",
    "ServerLicense",
    "SimState",
    "Simulator",
    "build_from_scenario",
    "build_synthetic",
    "compile_filter",
    "ensure_certs",
    "load_scenario",
]
