"""Logs, traces and metrics for the whole package, with Powertools: one Logger (structured JSON), one Tracer (X-Ray)
and one way to publish metrics (CloudWatch EMF).

Metrics: ``emit`` prints one EMF blob (an ``EphemeralMetrics``) per set of dimensions, at once; the per-license-type
metrics of ``licenses.collect.emit_metrics`` and ``licenses.evaluate.publish_metrics`` are blobs of the same kind.
Nothing is held between invocations, and a handler that raises has already printed what it emitted.

Tracing: ``tracer`` is built when first imported (``from butler.observability import tracer``: the Lambda handlers,
never the CLI), because the X-Ray SDK's import alone builds two botocore clients. Outside Lambda (Powertools' rule:
no ``LAMBDA_TASK_ROOT``, or SAM local), or with ``POWERTOOLS_TRACE_DISABLED``, it is a disabled Tracer on a provider
that records nothing, and the X-Ray SDK is not imported at all. ``subsegment`` and ``traced`` wrap the calls to
other systems (QRS, DynamoDB, InfluxDB); they do nothing until an enabled tracer exists.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

SERVICE = "qlik-license-butler"
NAMESPACE = "QlikLicenseButler"

logger = Logger(service=SERVICE)
tracer: Tracer  # built on first import (module __getattr__ below)
_tracer: Tracer | None = None

F = TypeVar("F", bound=Callable[..., Any])


# --- metrics -----------------------------------------------------------------------------------------------------


def emit(values: Mapping[str, float], unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """Print one EMF blob now: ``values`` under the ``service`` dimension and ``dimensions``."""
    blob = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    for name, value in dimensions.items():
        blob.add_dimension(name=name, value=value)
    for name, amount in values.items():
        blob.add_metric(name=name, unit=unit, value=amount)
    blob.flush_metrics()


# --- tracing -------------------------------------------------------------------------------------------------------


def tracing_enabled() -> bool:
    """Powertools' rule (``Tracer._is_tracer_disabled``) without importing the X-Ray SDK: on in Lambda, off under SAM
    local or Chalice and whenever ``POWERTOOLS_TRACE_DISABLED`` is true."""
    if resolve_truthy_env_var_choice(env=os.getenv("POWERTOOLS_TRACE_DISABLED", "false")):
        return False
    return bool(os.getenv("LAMBDA_TASK_ROOT")) and not os.getenv("AWS_SAM_LOCAL") \
        and not os.getenv("AWS_CHALICE_CLI_MODE")


def get_tracer() -> Tracer:
    """The package's Tracer (service as the Logger's), built once. Enabled, it patches botocore only: the AWS calls
    (DynamoDB, SNS, Secrets Manager) get their own subsegments; QRS and InfluxDB have the explicit ones."""
    global _tracer
    if _tracer is None:
        if tracing_enabled():
            _tracer = Tracer(service=SERVICE, patch_modules=("botocore",))
        else:
            _tracer = Tracer(service=SERVICE, disabled=True, auto_patch=False, provider=_Untraced())
    return _tracer


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "tracer":
            return get_tracer()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def subsegment(name: str) -> AbstractContextManager[Any]:
    """A subsegment of the current trace around a call to another system, or nothing when tracing is off. ``name``
    is what the trace shows (``qrs GET /qrs/about``, ``dynamodb write``): never a secret, never a query string."""
    current = _tracer
    if current is None or current.disabled:
        return nullcontext()
    return current.provider.in_subsegment(name=name)


def traced(name: str) -> Callable[[F], F]:
    """``subsegment(name)`` around each call of the decorated function."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            if _tracer is None or _tracer.disabled:
                return function(*args, **kwargs)
            with subsegment(name):
                return function(*args, **kwargs)

        return cast(F, call)

    return decorate


class _Nothing(BaseSegment):
    """The segment of a disabled tracer: Powertools' decorators annotate it, nothing is kept."""

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class _Untraced(BaseProvider):
    """The provider of a disabled tracer (Powertools' default, the X-Ray recorder, costs its import)."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _Nothing()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _Nothing()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass
