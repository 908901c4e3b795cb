"""The api function behind API Gateway (IAM auth): the /v4 routes of ``butler.api``, the same resolver as
``python -m butler serve``.

Built once per container and cheap: the configuration, the QRS client (certificates from Secrets Manager), the
audit sink and the SNS notifier are created on the first request that needs them. The caller recorded in audit
records is the IAM identity API Gateway puts in the request context, nothing the request itself carries.

Metric (namespace QlikLicenseButler): ``ApiRequests`` 1 per request, dimensions ``service``, ``Route`` (method and
resource, e.g. ``DELETE /v4/licenses/user/{userId}``: never the user) and ``StatusClass`` (``2xx``, ``4xx``, ``5xx``;
``5xx`` too when the function itself fails). Traced with X-Ray: the handler, each QRS request and the DynamoDB audit
writes and queries. An invalid environment variable fails the first request, before any QRS or AWS call: a 500 whose
``problems`` name it (``butler.environment``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from butler.api import Backend, create_app
from butler.observability import emit, logger, tracer
from butler.wiring import load_config

app = create_app(Backend(load_config))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    status = 500
    try:
        response = app.resolve(event, context)
        status = int(response.get("statusCode", 500))
        return response
    finally:
        emit({"ApiRequests": 1}, Route=_route(event), StatusClass=f"{status // 100}xx")


def _route(event: Any) -> str:
    """The route as the template declares it (``resource`` is the path template, not the path asked)."""
    if not isinstance(event, dict):
        return "unknown"
    return f"{event.get('httpMethod') or '?'} {event.get('resource') or '?'}"
