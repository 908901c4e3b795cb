"""A small Qlik site for the evaluation's integration tests: one user per rule, dates relative to now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from butler.licenses.model import iso

NOW = datetime.now(UTC)
POLICY: dict[str, Any] = {
    "licenseManagement": {
        "enable": True,
        "maxReleasePercent": 50,
        "exclusions": {
            "users": [{"userDirectory": "DOMAIN", "userId": "admin.user"}],
            "tags": ["VIP-User"],
            "customProperties": [{"name": "Department", "value": "IT"}],
            "userDirectories": ["ADMIN_DOMAIN"],
        },
    }
}


def when(days: float | None) -> str | None:
    return None if days is None else iso(NOW - timedelta(days=days))


def person(user_id: str, kind: str, idle: float | None, *, directory: str = "CORP", created: float = 300,
           quarantined: bool = False, **fields: Any) -> dict[str, Any]:
    return {"userDirectory": directory, "userId": user_id, "name": user_id.title(), **fields,
            "license": {"type": kind, "createdDate": when(created), "lastUsed": when(idle),
                        "quarantined": quarantined}}


SCENARIO: dict[str, Any] = {
    "licenses": {"professional": {"total": 20}, "analyzer": {"total": 20}},
    "users": [
        person("p.idle", "professional", 60),
        person("p.never", "professional", None, created=100),
        person("p.vip", "professional", 90, tags=["vip-user"]),
        person("p.it", "professional", 90, customProperties={"Department": ["Sales", "it"]}),
        person("p.admin", "professional", 90, directory="ADMIN_DOMAIN"),
        person("admin.user", "professional", 90, directory="domain"),
        *(person(f"p.active{i}", "professional", i + 1) for i in range(4)),
        person("a.idle", "analyzer", 100),
        person("a.recent", "analyzer", 40),
        person("a.quarantined", "analyzer", 90, quarantined=True),
        person("a.new", "analyzer", None, created=3),
        *(person(f"a.active{i}", "analyzer", i) for i in range(3)),
        {"userDirectory": "CORP", "userId": "no.license"},
    ],
}
EXPECTED_RELEASES = {"p.idle", "p.never", "a.idle"}
PROTECTED = {"p.vip", "p.it", "p.admin", "admin.user"}
