"""The collect function: on each EventBridge Scheduler event, collect license use once (``butler.wiring.run_collect``,
the same service as ``python -m butler collect``), write it to InfluxDB and emit CloudWatch metrics.

Metrics (namespace QlikLicenseButler, dimension ``service``): ``CollectorSuccess`` 1 per successful run, 0 per failed
one (the heartbeat alarm treats missing data as breaching); ``InfluxWriteFailures`` 1 when the write failed. A failed
run raises, so the invocation itself fails visibly (Errors metric, the on-failure destination).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from butler import wiring
from butler.licenses.collect import emit_metrics
from butler.observability import logger, metrics


class CollectionFailed(RuntimeError):
    """The collection ran but its InfluxDB write failed."""


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        config = wiring.load_config()
        summary = wiring.run_collect(config)
    except Exception:
        metrics.add_metric(name="CollectorSuccess", unit=MetricUnit.Count, value=0)
        logger.exception("license collection failed")
        raise
    emit_metrics(summary, config.Butler.licenseMonitoring.costs)
    result = summary.to_json()
    if summary.error:
        metrics.add_metric(name="CollectorSuccess", unit=MetricUnit.Count, value=0)
        metrics.add_metric(name="InfluxWriteFailures", unit=MetricUnit.Count, value=1)
        logger.error("InfluxDB write failed", extra={"summary": result})
        raise CollectionFailed(summary.error)
    metrics.add_metric(name="CollectorSuccess", unit=MetricUnit.Count, value=1)
    logger.info("license collection done", extra={"summary": result})
    return result
