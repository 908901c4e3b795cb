"""The adapters the API needs, built on first use through ``butler.wiring`` and then kept for the container (or the
``butler serve`` process).

Nothing here touches the network or reads the configuration at import or construction: a cold start that only
answers a 400 never opens a QRS connection. Factories default to ``butler.wiring``; tests pass their own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from butler.api.identity import caller
from butler.config import Config
from butler.licenses.holds import Holds
from butler.licenses.model import LicenseSource, RunContext
from butler.licenses.on_request import OnRequest, RequestSinks
from butler.licenses.planning import ForecastAnswer


def utc_now() -> datetime:
    return datetime.now(UTC)


def _default_client(config: Config) -> LicenseSource:
    from butler.wiring import qrs_client

    return qrs_client(config)


def _default_sinks(config: Config, audit_file: str | None) -> RequestSinks:
    from butler.wiring import request_sinks

    return request_sinks(config, audit_file)


class Backend:
    """One per container: the configuration, a QRS client, and the audit, notice and InfluxDB sinks."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        *,
        audit_file: str | None = None,
        actor: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        client_factory: Callable[[Config], LicenseSource] = _default_client,
        sinks_factory: Callable[[Config, str | None], RequestSinks] = _default_sinks,
    ) -> None:
        self._load_config = load_config
        self._audit_file = audit_file
        self._actor = actor  # fixed caller (`local` for butler serve); None: the request context's IAM identity
        self._clock = clock
        self._client_factory = client_factory
        self._sinks_factory = sinks_factory
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._client: LicenseSource | None = None
        self._sinks: RequestSinks | None = None

    @property
    def config(self) -> Config:
        with self._lock:
            if self._config is None:
                self._config = self._load_config()
            return self._config

    def client(self) -> LicenseSource:
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

    def service(self) -> OnRequest:
        return OnRequest(self.client(), self.config.Butler.licenseManagement, self._clock)

    def holds(self) -> Holds:
        """Holds and reinstatement: the container's QRS client and audit store."""
        return Holds(self.client, self.sinks().audit, self.config.Butler.licenseManagement, self._clock)

    def sinks(self) -> RequestSinks:
        config = self.config
        with self._lock:
            if self._sinks is None:
                self._sinks = self._sinks_factory(config, self._audit_file)
            return self._sinks

    def forecast(self, horizon_days: int) -> ForecastAnswer:
        """Capacity planning from the audit store this container writes to (and InfluxDB when enabled)."""
        from butler.wiring import run_forecast

        return run_forecast(self.config, audit=self.sinks().audit, horizon_days=horizon_days, now=self._clock())

    @property
    def audit_file(self) -> str | None:
        """The JSON Lines audit file (``butler serve --audit-file``); DynamoDB when ``AUDIT_TABLE`` is set."""
        return self._audit_file

    def run_context(self, request_context: dict[str, Any] | None) -> RunContext:
        """A release on request is a run of its own: its id, the caller, the mode of the configuration."""
        request_id = (request_context or {}).get("requestId")
        run_id = f"api-{request_id}" if isinstance(request_id, str) and request_id else f"api-{uuid.uuid4()}"
        actor = self._actor or caller(request_context)
        return RunContext(run_id, actor, self.service().mode, self._clock)
