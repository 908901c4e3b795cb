"""The filter language: operators, precedence, collections, case, escapes, literals, and malformed filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from qrs_simulator import FilterError, SimState, build_from_scenario, compile_filter

from .conftest import Qrs, scenario


@pytest.fixture(scope="module")
def state() -> SimState:
    return build_from_scenario(scenario())


def users(state: SimState, text: str) -> set[str]:
    predicate = compile_filter("User", text)
    assert predicate is not None
    return {r.data["userId"] for r in state.users if predicate(r.data)}


def holders(state: SimState, kind: str, text: str) -> set[str]:
    predicate = compile_filter(state.allocations[kind].entity, text)
    assert predicate is not None
    return {r.data["user"]["userId"] for r in state.allocations[kind] if predicate(r.data)}


ALL = {"jdoe", "pobrien", "never", "ext1", "blocked", "quar", "sa_api", "capacity", "newbie"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("userId eq 'jdoe'", {"jdoe"}),
        ("userId ne 'jdoe'", ALL - {"jdoe"}),
        ("userId gt 'pobrien'", {"quar", "sa_api"}),
        ("userId ge 'pobrien'", {"pobrien", "quar", "sa_api"}),
        ("userId lt 'capacity'", {"blocked"}),
        ("userId le 'capacity'", {"blocked", "capacity"}),
        ("userId sw 'n'", {"never", "newbie"}),
        ("userId ew 'e'", {"jdoe", "newbie"}),
        ("name so 'brien'", {"pobrien"}),
    ],
)
def test_each_operator(state: SimState, text: str, expected: set[str]) -> None:
    assert users(state, text) == expected


def test_case_insensitive_values_operators_keywords_and_properties(state: SimState) -> None:
    assert users(state, "USERID EQ 'JDOE'") == {"jdoe"}
    assert users(state, "userDirectory eq 'external' OR userId Eq 'newbie'") == {"ext1", "newbie"}


def test_and_binds_tighter_than_or(state: SimState) -> None:
    text = "userId eq 'newbie' or userDirectory eq 'DOMAIN' and blacklisted eq true"
    assert users(state, text) == {"newbie", "blocked"}
    assert users(state, "(userId eq 'newbie' or userDirectory eq 'DOMAIN') and blacklisted eq true") == {"blocked"}


def test_nested_parentheses(state: SimState) -> None:
    text = "((userId eq 'jdoe') or (userId eq 'ext1' and (inactive eq true)))"
    assert users(state, text) == {"jdoe", "ext1"}


def test_collections_match_when_any_element_matches(state: SimState) -> None:
    assert users(state, "tags.name eq 'vip-user'") == {"jdoe", "ext1"}
    assert users(state, "tags.name eq 'Executive' and tags.name eq 'VIP-User'") == {"ext1"}
    assert users(state, "customProperties.value eq 'finance'") == {"pobrien"}
    assert users(state, "customProperties.definition.name eq 'Department'") == {"jdoe", "pobrien"}
    assert users(state, "customProperties.definition.name eq 'LicenseProtection'") == {"sa_api"}


def test_escaped_quote(state: SimState) -> None:
    assert users(state, r"name eq 'Pat O\'Brien'") == {"pobrien"}
    assert users(state, r"name so 'o\'b'") == {"pobrien"}


def test_booleans_and_null(state: SimState) -> None:
    assert users(state, "inactive eq true") == {"ext1"}
    assert users(state, "blacklisted eq true and removedExternally eq true") == {"blocked"}
    assert len(users(state, "inactive ne true")) == len(ALL) - 1
    assert holders(state, "professional", "deletedUserId eq null") == {"jdoe", "never", "quar"}
    assert holders(state, "professional", "quarantined eq false") == {"jdoe", "never"}


def test_guids_unquoted_and_quoted(state: SimState) -> None:
    jdoe = next(r.data for r in state.users if r.data["userId"] == "jdoe")
    assert users(state, f"id eq {jdoe['id']}") == {"jdoe"}
    assert users(state, f"id eq '{jdoe['id'].upper()}'") == {"jdoe"}
    assert holders(state, "professional", f"user.id eq {jdoe['id']}") == {"jdoe"}


def test_dates_compare_as_datetimes(state: SimState) -> None:
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    iso = ten_days_ago.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert holders(state, "professional", f"lastUsed gt '{iso}'") == {"jdoe", "quar"}
    assert holders(state, "analyzer", f"lastUsed lt '{iso}'") == {"pobrien", "ext1"}
    offset = ten_days_ago.astimezone().isoformat()  # another notation of the same moment
    assert holders(state, "professional", f"lastUsed gt '{offset}'") == {"jdoe", "quar"}
    assert holders(state, "professional", "lastUsed eq '1753-01-01T00:00:00.000Z'") == {"never"}


def test_numbers(state: SimState) -> None:
    predicate = compile_filter("LicenseAnalyzerTimeAccessType", "assignedMinutes ge 6000 and usedMinutes lt 121")
    assert predicate is not None
    assert [r.data["name"] for r in state.time_types if predicate(r.data)] == ["Analyzer capacity"]


def test_dotted_path_through_an_object(state: SimState) -> None:
    assert holders(state, "analyzer", "user.userDirectory eq 'EXTERNAL'") == {"ext1"}


def test_blank_filter_is_no_filter() -> None:
    assert compile_filter("User", "  ") is None
    assert compile_filter("User", None) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("userId xx 'a'", "unknown operator"),
        ("(userId eq 'a'", "expected ')'"),
        ("userId eq 'a')", "unexpected ')'"),
        ("userId eq 'unterminated", "unterminated string"),
        ("nosuch eq 'a'", "Unknown property"),
        ("user.nosuch eq 'a'", "Unknown property"),
        ("userId eq", "ended"),
        ("userId eq 'a' and", "ended"),
        ("userId eq bare", "cannot read value"),
        ("inactive eq 'maybe'", "boolean"),
        ("createdDate gt 'yesterday'", "not a valid datetime"),
        ("id eq 'nope'", "not a valid GUID"),
        ("tags eq 'x'", "is an object"),
        ("not userId eq 'a'", "unknown operator"),
    ],
)
def test_malformed_filters(text: str, reason: str) -> None:
    with pytest.raises(FilterError, match=re.escape(reason)):
        compile_filter("User", text)


def test_over_http(qrs: Qrs) -> None:
    found = qrs.get("user/full", filter="tags.name eq 'VIP-User' and userDirectory eq 'DOMAIN'")
    assert [u["userId"] for u in found] == ["jdoe"]
    condensed = qrs.get("license/analyzeraccesstype", filter="user.userDirectory eq 'external'")
    assert len(condensed) == 1
    assert set(condensed[0]) == {"id", "privileges"}
    assert qrs.get("license/professionalaccesstype/count", filter="quarantined eq true") == {"value": 1}


def test_malformed_filter_over_http_is_400_plain_text(qrs: Qrs) -> None:
    response = qrs.request("GET", "user/full", {"filter": "userId eq 'oops"})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "unterminated string" in response.text


def test_orderby(qrs: Qrs) -> None:
    found = qrs.get("user", filter="userDirectory eq 'DOMAIN'", orderby="userId desc")
    assert [u["userId"] for u in found] == sorted((u["userId"] for u in found), reverse=True)
    assert qrs.request("GET", "user", {"orderby": "nosuch"}).status_code == 400
