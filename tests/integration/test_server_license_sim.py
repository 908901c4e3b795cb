"""The server license read from the QRS simulator over mutual TLS (``GET /qrs/license``, as real QRS answers it)
and turned into the status's ``serverLicense``; users holding both types counted from the allocations QRS lists."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from butler.licenses.server_license import (
    NO_EXPIRY_DAYS,
    influx_fields,
    metric_value,
    parse_server_license,
    redundant_analyzer,
    server_license_status,
)

if TYPE_CHECKING:
    from qrs_simulator import Simulator

XRFKEY = "abcdefghijklmnop"
QLIK_USER = "UserDirectory=INTERNAL; UserId=sa_api"


def qrs_get(sim: Simulator, path: str) -> requests.Response:
    """A QRS GET the way real clients send it: xrfkey in the query and the header, X-Qlik-User, client cert."""
    response = requests.get(f"{sim.url}/qrs/{path}", params={"xrfkey": XRFKEY},
                            headers={"X-Qlik-Xrfkey": XRFKEY, "X-Qlik-User": QLIK_USER},
                            cert=sim.client_cert, verify=sim.ca_file, timeout=30)
    assert response.status_code == 200, response.text
    return response


def site(server_license: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    scenario: dict[str, Any] = {"licenses": {"professional": {"total": 5}, "analyzer": {"total": 5}}, "users": [],
                                **extra}
    if server_license is not None:
        scenario["serverLicense"] = server_license
    return scenario


def status_of(sim: Simulator, today: date) -> dict[str, Any]:
    return server_license_status(parse_server_license(qrs_get(sim, "license").content), today)


def test_a_license_ending_in_40_days(sim_factory: Callable[..., Simulator]) -> None:
    today = datetime.now(UTC).date()
    ends = today + timedelta(days=40)
    sim = sim_factory(scenario=site({"validTo": ends.isoformat(), "isExpired": False, "isInvalid": False}))
    assert "\r\n" in qrs_get(sim, "license").json()["keyDetails"]  # QRS's own line ends
    status = status_of(sim, today)
    assert status == {"validTo": ends.isoformat(), "daysUntilExpiry": 40, "isExpired": False, "isInvalid": False,
                      "isBlacklisted": False, "product": "Platform", "serialLast4": "0001", "expiredReason": None,
                      "problem": None}
    assert influx_fields(status) == {"days_until_expiry": 40, "expired": False}
    assert metric_value(status) == 40.0


def test_an_expired_license(sim_factory: Callable[..., Simulator]) -> None:
    today = datetime.now(UTC).date()
    ended = today - timedelta(days=10)
    sim = sim_factory(scenario=site({"validTo": ended.isoformat(), "isInvalid": False}))
    status = status_of(sim, today)
    assert status["validTo"] == ended.isoformat()
    assert status["daysUntilExpiry"] == -10
    assert status["isExpired"] is True
    assert status["expiredReason"] == f"The license expired on {ended:%Y-%m-%d}"
    assert influx_fields(status) == {"days_until_expiry": -10, "expired": True}
    assert metric_value(status) == -10.0


def test_a_past_date_is_expired_even_when_qrs_says_otherwise(sim_factory: Callable[..., Simulator]) -> None:
    today = datetime.now(UTC).date()
    sim = sim_factory(scenario=site({"validTo": (today - timedelta(days=1)).isoformat(), "isExpired": False}))
    status = status_of(sim, today)
    assert status["daysUntilExpiry"] == -1 and status["isExpired"] is True


def test_invalid_and_blacklisted_flags_come_through(sim_factory: Callable[..., Simulator]) -> None:
    today = datetime.now(UTC).date()
    sim = sim_factory(scenario=site({"validTo": (today + timedelta(days=300)).isoformat(), "isInvalid": True,
                                     "isBlacklisted": True}))
    status = status_of(sim, today)
    assert status["isInvalid"] is True and status["isBlacklisted"] is True and status["isExpired"] is False
    assert status["daysUntilExpiry"] == 300
    assert metric_value(status) == -1.0  # unusable: the alarm fires


def test_a_scenario_without_server_license_is_valid_for_years(sim_factory: Callable[..., Simulator]) -> None:
    today = datetime.now(UTC).date()
    status = status_of(sim_factory(scenario=site()), today)
    assert status["validTo"] is not None and status["daysUntilExpiry"] > 3000
    assert status["isExpired"] is False and status["isInvalid"] is False and status["isBlacklisted"] is False
    assert status["problem"] is None and status["serialLast4"] == "0001"


def test_a_license_without_valid_to_does_not_expire(sim_factory: Callable[..., Simulator]) -> None:
    sim = sim_factory(scenario=site({"validTo": None}))
    assert "Valid To" not in qrs_get(sim, "license").json()["keyDetails"]
    status = status_of(sim, datetime.now(UTC).date())
    assert status["validTo"] is None and status["daysUntilExpiry"] is None and status["isExpired"] is False
    assert influx_fields(status) == {"days_until_expiry": NO_EXPIRY_DAYS, "expired": False}


def test_users_holding_both_types_are_counted(sim_factory: Callable[..., Simulator]) -> None:
    both = {"type": "professional"}, {"type": "analyzer"}
    sim = sim_factory(scenario=site(users=[
        {"userDirectory": "CORP", "userId": "both", "license": list(both)},
        {"userDirectory": "CORP", "userId": "pro", "license": {"type": "professional"}},
        {"userDirectory": "CORP", "userId": "ana", "license": {"type": "analyzer"}},
    ]))

    def owners(kind: str) -> list[str]:
        return [a["user"]["id"] for a in qrs_get(sim, f"license/{kind}accesstype/full").json() if a.get("user")]

    assert len(owners("professional")) == 2 and len(owners("analyzer")) == 2
    assert redundant_analyzer(owners("professional"), owners("analyzer")) == 1
