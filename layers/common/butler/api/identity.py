"""Who a request is about (the ``{userId}`` path parameter) and who is asking (the caller).

A user is ``DIRECTORY\\userid`` (URL-encoded in the path, as the QMC shows it), or a bare ``userid`` with
``?userDirectory=DIR``, or a bare id alone (then looked up in every user directory).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from butler.api.errors import BadRequest

MAX_PART_LENGTH = 255  # QRS keeps userId and userDirectory as nvarchar(255)
UNKNOWN_CALLER = "unknown"


@dataclass(frozen=True)
class UserRef:
    user_id: str
    user_directory: str | None  # None: any directory

    def __str__(self) -> str:
        return f"{self.user_directory}\\{self.user_id}" if self.user_directory else self.user_id


def _checked(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise BadRequest(f"{what} is empty")
    if len(text) > MAX_PART_LENGTH:
        raise BadRequest(f"{what} is longer than {MAX_PART_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Cn") for ch in text):
        raise BadRequest(f"{what} holds control or unassigned characters")
    return text


def parse_user(raw_path_value: str, user_directory: str | None) -> UserRef:
    """The user named by the (still URL-encoded) path value and the optional ``userDirectory`` parameter."""
    try:
        value = unquote(raw_path_value, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("userId is not URL-encoded UTF-8") from None
    if value.count("\\") > 1:
        raise BadRequest("userId: expected DIRECTORY\\userid or a bare userid, found more than one backslash")
    directory = None if user_directory is None else _checked(user_directory, "userDirectory")
    if "\\" in value:
        named_directory, user_id = value.split("\\", 1)
        named_directory = _checked(named_directory, "userId's user directory")
        if directory is not None and directory.casefold() != named_directory.casefold():
            raise BadRequest(f"userDirectory {directory!r} contradicts the directory in userId {named_directory!r}")
        directory = named_directory
    else:
        user_id = value
    return UserRef(_checked(user_id, "userId"), directory)


def caller(request_context: dict[str, Any] | None) -> str:
    """The IAM identity API Gateway put in the request context (SigV4 auth); the body or headers are not trusted."""
    identity = (request_context or {}).get("identity") or {}
    for key in ("userArn", "caller", "user"):
        value = identity.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return UNKNOWN_CALLER
