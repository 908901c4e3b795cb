"""Who a request is about (the userId path segment) and who asks (the request context's IAM identity)."""

from __future__ import annotations

import pytest

from butler.api.errors import BadRequest
from butler.api.identity import UserRef, caller, parse_user


@pytest.mark.parametrize(("raw", "directory", "expected"), [
    ("DOMAIN%5Cjdoe", None, UserRef("jdoe", "DOMAIN")),
    ("DOMAIN%5cjdoe", "domain", UserRef("jdoe", "DOMAIN")),  # same directory, any case
    ("jdoe", None, UserRef("jdoe", None)),
    ("jdoe", " OTHER ", UserRef("jdoe", "OTHER")),
    ("o'brien%20", None, UserRef("o'brien", None)),
    ("j%C3%B6rg", None, UserRef("jörg", None)),
    ("DOMAIN%2Fjdoe", None, UserRef("DOMAIN/jdoe", None)),  # only a backslash separates the directory
    ("a%255Cb", None, UserRef("a%5Cb", None)),  # decoded once, never twice
])
def test_parse_user(raw: str, directory: str | None, expected: UserRef) -> None:
    assert parse_user(raw, directory) == expected


@pytest.mark.parametrize(("raw", "directory"), [
    ("", None), ("%20", None), ("DOMAIN%5C", None), ("%5Cjdoe", None), ("a%5Cb%5Cc", None), ("x" * 256, None),
    ("jdoe", ""), ("jdoe", "D" * 256), ("D%5Cjdoe", "E"), ("%C3", None), ("a%0Ab", None), ("a\u0085b", None),
])
def test_malformed_users_are_bad_requests(raw: str, directory: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_user(raw, directory)
    assert caught.value.status == 400 and caught.value.message


def test_caller_is_the_iam_identity_or_unknown() -> None:
    identity = {"userArn": "arn:aws:iam::1:user/a", "caller": "AIDA1", "user": "AIDA1"}
    assert caller({"identity": identity}) == "arn:aws:iam::1:user/a"
    assert caller({"identity": {"userArn": None, "caller": "AIDA1:session"}}) == "AIDA1:session"
    assert caller({"identity": {"userArn": " ", "user": "u"}}) == "u"
    assert caller({"identity": None}) == caller(None) == "unknown"
