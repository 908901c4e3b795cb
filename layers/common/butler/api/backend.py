"""The adapters the API needs, built on first use and then kept for the container (or the `butler serve` process).

Nothing here touches the network or reads the configuration at import or construction: a cold start that only
answers a 400 never opens a QRS connection. Factories default to ``butler.wiring``; tests pass their own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from butler.api.identity import caller
from butler.api.service import LicenseReads, LicenseService, Releaser
from butler.config import Config
from butler.licenses.policy import Decision
from butler.licenses.reconcile import reconcile
from butler.licenses.release import ReleaseClient, ReleaseExecutor
from butler.observability import logger
from butler.qrs.models import Allocation, User
from butler.sinks.audit import decision_record

if TYPE_CHECKING:
    from butler.sinks.audit import AuditTrail
    from butler.sinks.notify import Notifier


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
        sinks_factory: Callable[[Config, str | None], tuple[Any, Any, Any]] | None = None,
    ) -> None:
        self._load_config = load_config
        self._audit_file = audit_file
        self._actor = actor  # fixed caller (`local` for butler serve); None: the request context's IAM identity
        self._clock = clock
        self._client_factory = client_factory
        self._sinks_factory = sinks_factory or _default_sinks
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
        """A release on request with this container's audit sink, notifier and InfluxDB writer."""
        management = self.config.Butler.licenseManagement
        audit, notifier, influx = self._adapters()
        executor = ReleaseExecutor(cast("ReleaseClient", self.client()), audit, actor=actor, run_id=run_id,
                                   concurrency=management.concurrency, dry_run=management.dryRun, clock=self._clock,
                                   influx=influx, log_level=management.auditLog.logLevel)
        return RequestReleaser(executor, audit, notifier, cast("ReleaseClient", self.client()))

    def _adapters(self) -> tuple[Any, Any, Any]:
        config = self.config
        with self._lock:
            if self._sinks is None:
                self._sinks = self._sinks_factory(config, self._audit_file)
            return self._sinks


def _default_sinks(config: Config, audit_file: str | None) -> tuple[Any, Any, Any]:
    from butler import wiring

    return wiring.audit_sink(config, audit_file), wiring.notifier(), wiring.influx_writer(config)


class RequestReleaser:
    """One release on request: complete stale leftovers of interrupted runs first, release through the scheduled
    run's executor, send the administrators' digest; ``record`` audits decisions that released nothing."""

    def __init__(self, executor: ReleaseExecutor, audit: AuditTrail, notifier: Notifier | None,
                 client: ReleaseClient) -> None:
        self.executor, self.audit, self.notifier, self.client = executor, audit, notifier, client

    def release(self, decisions: Sequence[Decision],
                recheck: Callable[[Allocation, User | None], Decision]) -> list[Decision]:
        executor = self.executor
        reconcile(self.audit, self.client, now=executor.clock(), actor=executor.actor, holding_run_lock=False,
                  own_run=executor.run_id)
        results = executor.release(decisions, recheck)
        if self.notifier is not None:
            try:
                self.notifier.run_digest(executor.run_id, results, actor=executor.actor, dry_run=executor.dry_run)
            except Exception as exc:  # the release happened; a lost notice must not turn it into a failure
                logger.error("release digest failed", extra={"runId": executor.run_id, "error": type(exc).__name__})
        return results

    def record(self, decisions: Sequence[Decision]) -> None:
        executor = self.executor
        self.audit.write_many([decision_record(d, "decision", run_id=executor.run_id, actor=executor.actor,
                                               at=executor.clock(), dry_run=executor.dry_run) for d in decisions])
