"""The evaluate function: EventBridge Scheduler -> one license evaluation (the service behind `butler evaluate`).

Environment: ``BUTLER_CONFIG`` (the YAML file), ``AUDIT_TABLE``, ``LOCK_TABLE`` (defaults to the audit table),
``NOTIFY_TOPIC_ARN`` (optional), ``QRS_*`` overrides (see ``butler.wiring``), ``POWERTOOLS_*``.

The schedule's input (``events/scheduler-evaluate.json``) carries the scheduler's context attributes, which are
logged. ``"dryRun": true`` in the input forces a dry run; the input can never force a live run. A run that fails
(QRS unreachable, audit table down) raises, and so does a run in which any release failed (after its report,
audit records and metrics are written), so the failure destination and the alarms fire; a breaker abort is a
result (``status: aborted``, metric ``EvaluationAborted``), as is a run skipped because another holds the lock.
Traced with X-Ray: the handler, each QRS request and the DynamoDB audit writes and queries. An invalid environment
variable fails the first invocation, before any QRS or AWS call, naming it (``butler.environment``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from butler import wiring
from butler.licenses.evaluate import publish_metrics
from butler.lock import LockBusy
from butler.observability import logger, tracer

_EVENT_KEYS = ("scheduleArn", "scheduledTime", "executionId", "attemptNumber")


class ReleasesFailed(RuntimeError):
    """Some releases of the run failed: the invocation fails so that its failure destination and alarms fire."""


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    logger.append_keys(**{key: event[key] for key in _EVENT_KEYS if key in event})
    try:
        report = wiring.run_evaluate(wiring.load_config(), dry_run=True if event.get("dryRun") is True else None,
                                     actor="scheduler")
    except LockBusy as exc:  # the previous run is still going (or died less than the lock's lifetime ago)
        logger.warning(f"evaluation not run: {exc}")
        return {"status": "locked", "message": str(exc)}
    except Exception:
        logger.exception("license evaluation failed")
        raise
    publish_metrics(report)
    if report.failed:
        logger.error("license evaluation finished with failed releases",
                     extra={"runId": report.run_id, "summary": report.summary()})
        raise ReleasesFailed(f"{report.failed} release(s) failed in run {report.run_id} "
                             f"(butler audit --run {report.run_id})")
    status = "disabled" if not report.enabled else "aborted" if report.aborted else "ok"
    return {"status": status, **report.to_json(decisions=False)}
