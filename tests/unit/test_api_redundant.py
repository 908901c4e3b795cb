"""``GET /v4/licenses/user/{userId}`` shows what the scheduled run does with ``releaseRedundant``: the analyzer
allocation of a user holding both types is a candidate now, the professional one is not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from butler.licenses.model import iso

from .test_api_routes import NOW, Harness, _config, user_path

REDUNDANT = "release.analyzer.releaseRedundant: holds professional"


def picture(tmp_path: Path, redundant: bool) -> dict[str, dict[str, object]]:
    harness = Harness(tmp_path, _config(release={"professional": {"inactivityDays": 30},
                                                 "analyzer": {"inactivityDays": 45, "releaseRedundant": redundant}}))
    harness.qrs.add_user("DOMAIN", "both", professional=4, analyzer=3)
    status, body = harness.call("GET", user_path("DOMAIN", "both"))
    assert status == 200, body
    return {a["licenseType"]: a for a in body["allocations"]}


def test_the_user_picture_names_the_rule(tmp_path: Path) -> None:
    allocations = picture(tmp_path, redundant=True)
    assert allocations["analyzer"]["evaluation"] == {"action": "release", "reason": REDUNDANT}
    assert allocations["analyzer"]["releasableAt"] == iso(NOW - timedelta(days=3))  # its last use: now already
    assert allocations["professional"]["evaluation"]["action"] == "keep"


def test_without_the_rule_the_inactivity_rule_alone(tmp_path: Path) -> None:
    assert picture(tmp_path, redundant=False)["analyzer"]["evaluation"]["action"] == "keep"
