"""The api function behind API Gateway (IAM auth): the /v4 routes of ``butler.api``, the same resolver as
``python -m butler serve``.

Built once per container and cheap: the configuration, the QRS client (certificates from Secrets Manager), the
audit sink and the SNS notifier are created on the first request that needs them. The caller recorded in audit
records is the IAM identity API Gateway puts in the request context, nothing the request itself carries.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from butler.api import Backend, create_app
from butler.observability import logger
from butler.wiring import load_config

app = create_app(Backend(load_config))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
