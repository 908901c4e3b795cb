"""A run lock, so that two evaluations never overlap: DynamoDB in AWS, a file lock locally.

DynamoDB: a conditional put of the item ``pk=LOCK#<name>, sk=LOCK`` that succeeds only when there is none or the
one there has expired (``expiresAt``, epoch seconds, is also the table's TTL attribute); released by a delete
conditioned on the owner. A run that dies leaves a lock that expires after ``ttl_seconds`` (default 15 minutes,
the longest a Lambda function runs). The table is ``LOCK_TABLE``, or the audit table (their keys cannot clash).

Locally: ``flock`` on a file; the kernel drops it when the process ends, however it ends.
"""

from __future__ import annotations

import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

DEFAULT_TTL_SECONDS = 900


class LockBusy(Exception):
    """Another run holds the lock."""


class RunLock(Protocol):
    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class _Context(ABC):
    """Lets a lock be used as ``with lock:``."""

    @abstractmethod
    def acquire(self) -> None: ...

    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class DynamoDbLock(_Context):
    def __init__(self, table_name: str, name: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 owner: str | None = None, resource: Any = None, clock: Callable[[], float] = time.time) -> None:
        import boto3

        self.table = (resource or boto3.resource("dynamodb")).Table(table_name)
        self.key = {"pk": f"LOCK#{name}", "sk": "LOCK"}
        self.name, self.ttl, self.clock = name, ttl_seconds, clock
        self.owner = owner or uuid.uuid4().hex

    def acquire(self) -> None:
        from botocore.exceptions import ClientError

        now = int(self.clock())
        try:
            self.table.put_item(
                Item={**self.key, "owner": self.owner, "acquiredAt": now, "expiresAt": now + self.ttl},
                ConditionExpression="attribute_not_exists(pk) OR expiresAt < :now",
                ExpressionAttributeValues={":now": now},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            raise LockBusy(f"another {self.name} run holds the lock{self._until()}") from None

    def _until(self) -> str:
        item = self.table.get_item(Key=self.key, ConsistentRead=True).get("Item") or {}
        expires = item.get("expiresAt")
        if expires is None:
            return ""
        return f" (it expires at {datetime.fromtimestamp(int(expires), UTC):%Y-%m-%dT%H:%M:%SZ})"

    def release(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.table.delete_item(Key=self.key, ConditionExpression="#owner = :me",
                                   ExpressionAttributeNames={"#owner": "owner"},
                                   ExpressionAttributeValues={":me": self.owner})
        except ClientError as exc:  # expired and taken by another run: theirs now, leave it
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


class FileLock(_Context):
    def __init__(self, path: str | Path, name: str = "evaluate") -> None:
        self.path, self.name = Path(path), name
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockBusy(f"another {self.name} run holds the lock {self.path}") from None
        self._fd = fd

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
