"""The collect function: on each EventBridge Scheduler event, collect license use once (``butler.wiring.run_collect``,
the same service as ``python -m butler collect``), write it to InfluxDB and emit CloudWatch metrics.

Metrics (namespace QlikLicenseButler, dimension ``service``): ``CollectorSuccess`` 1 per successful run, 0 per failed
one (the heartbeat alarm treats missing data as breaching); ``InfluxWriteFailures`` 1 when the write failed;
``DaysToExhaustion`` per ``LicenseType`` from the forecast after each collection (the daily snapshots go to
``AUDIT_TABLE``). A failed
run raises, so the invocation itself fails visibly (Errors metric, the on-failure destination). Traced with X-Ray:
the handler, each QRS request and the InfluxDB write. An invalid environment variable fails the first invocation,
before any QRS or AWS call, naming it (``butler.environment``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from butler import wiring
from butler.licenses.collect import emit_metrics
from butler.licenses.planning import FORECAST_METRIC, exhaustion_metrics
from butler.observability import emit, logger, tracer


class CollectionFailed(RuntimeError):
    """The collection ran but its InfluxDB write (or the daily snapshots' write) failed."""


def publish_forecast(config: Any) -> None:
    """``DaysToExhaustion`` per type after each collection (``butler.licenses.planning``). A failed forecast is
    logged and publishes nothing (the alarm keeps its state); it never fails the collection itself."""
    try:
        answer = wiring.run_forecast(config)
    except Exception:
        logger.exception("forecast failed: DaysToExhaustion not published")
        return
    for license_type, days in exhaustion_metrics(answer).items():
        emit({FORECAST_METRIC: days}, LicenseType=license_type)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        config = wiring.load_config()
        summary = wiring.run_collect(config)
    except Exception:
        emit({"CollectorSuccess": 0})
        logger.exception("license collection failed")
        raise
    emit_metrics(summary, config.Butler.licenseMonitoring.costs)
    if summary.enabled:
        publish_forecast(config)
    result = summary.to_json()
    if summary.error:
        emit({"CollectorSuccess": 0, **({"InfluxWriteFailures": 1} if summary.influx == "failed" else {})})
        logger.error("collection failed", extra={"summary": result})
        raise CollectionFailed(summary.error)
    emit({"CollectorSuccess": 1})
    logger.info("license collection done", extra={"summary": result})
    return result
