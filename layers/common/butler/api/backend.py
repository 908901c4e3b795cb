"""The adapters the API needs, built on first use and then kept for the container (or the `butler serve` process).

Nothing here touches the network or reads the configuration at import or construction: a cold start that only
answers a 400 never opens a QRS connection. Factories default to ``butler.wiring``; tests pass their own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from butler.api.identity import caller
from butler.api.service import LicenseReads, LicenseService, Releaser
from butler.config import Config

if TYPE_CHECKING:
    from butler.qrs import QrsClient


def utc_now() -> datetime:
    return datetime.now(UTC)


def _default_client(config: Config) -> LicenseReads:
    from butler.wiring import qrs_client

    return qrs_client(config)


class Backend:
    """One per container: the configuration, a QRS client, the audit sink, the notifier and InfluxDB writer."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        *,
        audit_file: str | None = None,
        actor: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        client_factory: Callable[[Config], LicenseReads] = _default_client,
        executor_factory: Callable[..., Releaser] | None = None,
    ) -> None:
        self._load_config = load_config
        self._audit_file = audit_file
        self._actor = actor  # fixed caller (`local` for butler serve); None: the request context's IAM identity
        self._clock = clock
        self._client_factory = client_factory
        self._executor_factory = executor_factory
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._client: LicenseReads | None = None
        self._sinks: tuple[Any, Any, Any] | None = None

    @property
    def config(self) -> Config:
        with self._lock:
            if self._config is None:
                self._config = self._load_config()
            return self._config

    def client(self) -> LicenseReads:
        config = self.config
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(config)
            return self._client

    def forget_client(self) -> None:
        """Drop the QRS client after a TLS failure, so a rotated certificate secret is read again."""
        with self._lock:
            client, self._client = self._client, None
        close = getattr(client, "close", None)
        if callable(close):
            close()

    def service(self) -> LicenseService:
        return LicenseService(self.client(), self.config.Butler.licenseManagement, self._clock)

    def caller(self, request_context: dict[str, Any] | None) -> str:
        return self._actor or caller(request_context)

    def run_id(self, request_context: dict[str, Any] | None) -> str:
        request_id = (request_context or {}).get("requestId")
        return f"api-{request_id}" if isinstance(request_id, str) and request_id else f"api-{uuid.uuid4()}"

    def executor(self, *, actor: str, run_id: str) -> Releaser:
        """The scheduled run's release executor, with this container's audit sink, notifier and InfluxDB writer."""
        management = self.config.Butler.licenseManagement
        if self._executor_factory is not None:
            return self._executor_factory(self.client(), actor=actor, run_id=run_id,
                                          concurrency=management.concurrency, dry_run=management.dryRun,
                                          clock=self._clock)
        from butler.licenses.release import ReleaseExecutor

        audit, notifier, influx = self._adapters()
        return ReleaseExecutor(cast("QrsClient", self.client()), audit, notifier, actor=actor, run_id=run_id,
                               concurrency=management.concurrency, dry_run=management.dryRun, clock=self._clock,
                               influx=influx)

    def _adapters(self) -> tuple[Any, Any, Any]:
        config = self.config
        with self._lock:
            if self._sinks is None:
                from butler import wiring

                self._sinks = (wiring.audit_sink(config, self._audit_file), wiring.notifier(),
                               wiring.influx_writer(config))
            return self._sinks
