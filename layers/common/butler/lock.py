"""The run lock, so that two evaluations of one Qlik site never overlap: DynamoDB in AWS, a file lock locally.

The lock is named by the site, not by how its host is spelt: ``site_key`` resolves the host, so ``localhost`` and
``127.0.0.1`` are one site. DynamoDB: a conditional put of ``pk=LOCK#<name>, sk=LOCK`` that succeeds only when
there is none or the one there has expired (``expiresAt``, epoch seconds, also the table's TTL attribute). A short
life (``DEFAULT_TTL_SECONDS``) kept alive by a heartbeat thread: a crashed holder frees the site within minutes, a
long run never loses it; a heartbeat that finds the lock taken marks it lost (``alive()`` turns false and the
executor stops releasing). Released by a delete conditioned on the owner. Locally: ``flock`` on a file; the kernel
drops it when the process ends, however it ends.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

DEFAULT_TTL_SECONDS = 120
HEARTBEAT_SECONDS = 30


class LockBusy(Exception):
    """Another run holds the lock; the message names since when and until when."""


def site_key(host: str, port: int) -> str:
    """One name per Qlik site however its host is written: the first address it resolves to, and the port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        address = sorted(str(info[4][0]) for info in infos)[0]
    except (OSError, IndexError, UnicodeError):
        address = host.casefold()
    return f"{address}:{port}"


def _stamp(epoch: float) -> str:
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%dT%H:%M:%SZ}"


class RunLock(ABC):
    """Used as ``with lock:``; ``alive()`` says whether the lock is still ours."""

    @abstractmethod
    def acquire(self) -> None: ...

    @abstractmethod
    def release(self) -> None: ...

    def alive(self) -> bool:
        return True

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class DynamoDbLock(RunLock):
    def __init__(self, table_name: str, name: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, owner: str | None = None, resource: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        import boto3

        self.table = (resource or boto3.resource("dynamodb")).Table(table_name)
        self.key = {"pk": f"LOCK#{name}", "sk": "LOCK"}
        self.name, self.ttl, self.heartbeat, self.clock = name, ttl_seconds, heartbeat_seconds, clock
        self.owner = owner or uuid.uuid4().hex
        self._stop = threading.Event()
        self._lost = False
        self._beat: threading.Thread | None = None

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
            raise LockBusy(self._busy()) from None
        self._stop.clear()
        self._beat = threading.Thread(target=self._keep_alive, name=f"lock-{self.name}", daemon=True)
        self._beat.start()

    def _busy(self) -> str:
        item = self.table.get_item(Key=self.key, ConsistentRead=True).get("Item") or {}
        since, until = item.get("acquiredAt"), item.get("expiresAt")
        held = f" since {_stamp(int(since))}" if since is not None else ""
        ends = f" until {_stamp(int(until))} unless its heartbeat renews it" if until is not None else ""
        return f"another run of {self.name} holds the run lock{held}{ends}"

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.heartbeat):
            if not self.renew():
                return

    def renew(self) -> bool:
        """Push the expiry on; False (and ``alive()`` false from then on) when the lock is no longer ours."""
        from botocore.exceptions import ClientError

        try:
            self.table.update_item(Key=self.key, UpdateExpression="SET expiresAt = :until",
                                   ConditionExpression="#owner = :me", ExpressionAttributeNames={"#owner": "owner"},
                                   ExpressionAttributeValues={":until": int(self.clock()) + self.ttl,
                                                              ":me": self.owner})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                self._lost = True
                return False
            return True  # a throttled or failed beat: the next one tries again before the expiry
        return True

    def alive(self) -> bool:
        return not self._lost

    def release(self) -> None:
        from botocore.exceptions import ClientError

        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            self.table.delete_item(Key=self.key, ConditionExpression="#owner = :me",
                                   ExpressionAttributeNames={"#owner": "owner"},
                                   ExpressionAttributeValues={":me": self.owner})
        except ClientError as exc:  # expired and taken by another run: theirs now, leave it
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


class FileLock(RunLock):
    def __init__(self, path: str | Path, name: str = "evaluate") -> None:
        self.path, self.name = Path(path), name
        self._fd: int | None = None

    @classmethod
    def for_site(cls, name: str, site: str) -> FileLock:
        safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in site)
        return cls(Path(tempfile.gettempdir()) / f"butler-{name}-{safe}.lock", f"{name} of {site}")

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise LockBusy(f"another run of {self.name} holds the run lock {self.path}{holder}") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode())
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 200, 0) or b"{}")
            return f" since {_stamp(float(info['since']))} (process {int(info['pid'])}), until that process ends"
        except (OSError, ValueError, KeyError, TypeError):
            return " until the process holding it ends"

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
