"""The /v4 routes: one Powertools resolver, used by the api Lambda function and by ``butler serve``.

Routes are thin: parse and check the request, call ``LicenseService``, shape the answer. Every failure is JSON
``{"message": ...}``: bad input is 400 (422 for a parameter that fails its schema), unknown user or no license
404, a method the route lacks 405, ambiguity or a protection rule 409, trouble with QRS, the certificates,
secrets or AWS 502/503/504 (``errors.from_outside``); 500 only for an invalid deployment or a bug. The user id
path segment arrives URL-encoded (API Gateway REST passes the raw path); it is decoded here, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from butler.api import errors
from butler.api.backend import Backend
from butler.api.identity import MAX_PART_LENGTH, parse_user
from butler.api.models import ErrorBody, LicenseStatus, LicenseTypeName, ReleaseResult, UserLicenses
from butler.api.notice_routes import NOTICE_ROUTES, NOTICE_SCHEMA_FAILURES, add_notice_routes
from butler.api.tuning_routes import TUNING_ROUTES, TUNING_SCHEMA_FAILURES, add_tuning_routes
from butler.config import ConfigError
from butler.licenses.forecast import MAX_HORIZON_DAYS
from butler.licenses.planning import ForecastAnswer
from butler.observability import logger
from butler.qrs import QrsTlsError
from butler.qrs.certs import CertificateError

STATUS_PATH = "/v4/licenses/status"
USER_PATH = "/v4/licenses/user/<userId>"
FORECAST_PATH = "/v4/licenses/forecast"
# Every route and its methods: the 405's Allow header here and in ``butler serve`` (a test keeps it in step with
# the resolver's routes).
ROUTES: dict[str, tuple[str, ...]] = {STATUS_PATH: ("GET",), USER_PATH: ("GET", "DELETE"), FORECAST_PATH: ("GET",),
                                      **TUNING_ROUTES, **NOTICE_ROUTES}
DECLARED_METHODS = frozenset(method for methods in ROUTES.values() for method in methods)
_ROUTE_PATTERNS = [(re.compile("^" + re.sub(r"<\w+>", "[^/]*", path) + "$"), methods)
                   for path, methods in ROUTES.items()]

UserIdPath = Annotated[str, Path(
    description="DIRECTORY\\userid URL-encoded (DOMAIN%5Cjdoe: a raw backslash or slash is not accepted), or a bare "
                "userid (then userDirectory names its directory, or every directory is searched). Each part: 1 to "
                "255 characters, no control characters, at most one backslash.")]
UserDirectoryQuery = Annotated[str | None, Query(
    description="the user directory of a bare userid", min_length=1, max_length=MAX_PART_LENGTH)]
LicenseTypeQuery = Annotated[LicenseTypeName | None, Query(description="release only this type's allocation")]
ForceQuery = Annotated[bool, Query(description="release even when a protection rule holds")]
HorizonQuery = Annotated[int, Query(description="days to look ahead (default 180)", ge=0, le=MAX_HORIZON_DAYS)]

# The error answers, exactly as they occur; each route lists the ones it can give.
ERROR_TEXTS = {
    400: "Bad input: an unknown query parameter (a misspelt one never widens a release), or a userId that is empty, "
         "longer than 255 characters, not URL-encoded UTF-8, holds control characters or more than one backslash, "
         "names another directory than userDirectory, or holds a raw character that must be URL-encoded",
    404: "No such user in QRS, or the user holds no professional or analyzer access allocation",
    409: "A bare userId that exists in several user directories; userDirectories names them",
    422: "A query parameter fails its schema ({}), or is given twice; detail lists each problem",
    500: "The deployment's configuration is invalid, or a bug; never caused by the request",
    502: "QRS answered with an error or a malformed answer, or the QRS certificates (files or Secrets Manager "
         "secret) are missing, unreadable or rejected",
    503: "QRS or Secrets Manager is unreachable or unavailable",
    504: "QRS or Secrets Manager did not answer in time",
}
# What makes each query parameter fail its schema (the 422 of the operations that take it).
SCHEMA_FAILURES = {"userDirectory": "userDirectory empty or longer than 255 characters",
                   "licenseType": "licenseType not professional or analyzer", "force": "force not true or false",
                   "horizon": f"horizon not a whole number of days, 0 to {MAX_HORIZON_DAYS}", **TUNING_SCHEMA_FAILURES,
                   **NOTICE_SCHEMA_FAILURES}
_RELEASE_ERRORS = {
    409: "A bare userId in several user directories (userDirectories names them), or a protection rule holds: "
         "nothing was released (protections and allocations say which; force=true releases anyway)",
    502: ERROR_TEXTS[502] + "; a secret the release needs (InfluxDB) cannot be read or AWS refused to set up the "
         "audit table or notices; or a release failed, e.g. QRS refused the DELETE or DynamoDB the audit record "
         "(the answer then lists each allocation's outcome)",
    503: "QRS or an AWS service (Secrets Manager, DynamoDB) is unreachable or unavailable",
    504: "QRS or an AWS service did not answer in time",
}


def _answers(model: type, description: str, codes: Sequence[int],
             texts: Mapping[int, str] | None = None) -> dict[int, Any]:
    """The operation's documented answers: 200 and ``codes`` (Powertools adds 422 and 500, see openapi.py)."""
    json_of, texts = content_types.APPLICATION_JSON, {**ERROR_TEXTS, **(texts or {})}
    answers: dict[int, Any] = {200: {"description": description, "content": {json_of: {"model": model}}}}
    for code in codes:
        answers[code] = {"description": texts[code], "content": {json_of: {"model": ErrorBody}}}
    return answers


def allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods of the route a raw path names; None when no route does."""
    return next((methods for pattern, methods in _ROUTE_PATTERNS if pattern.match(path)), None)


def create_app(backend: Backend) -> APIGatewayRestResolver:
    """The resolver with the /v4 routes and JSON error answers. Cheap: nothing is read or connected here."""
    app = APIGatewayRestResolver(enable_validation=True,
                                 response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR)
    _add_routes(app, backend)
    add_tuning_routes(app, backend, _only_parameters)  # candidates, what-if, returns, report
    add_notice_routes(app, backend, _only_parameters)  # hold, reinstate
    _add_error_handlers(app, backend)
    return app


def _add_routes(app: APIGatewayRestResolver, backend: Backend) -> None:
    upstream = (502, 503, 504)

    @app.get(STATUS_PATH, operation_id="getLicenseStatus", summary="License status", tags=["licenses"],
             description="Live from QRS's access type overview: per access type total, allocated, available, "
                         "utilization (percent), used, quarantined, excess; Analyzer Capacity in minutes.",
             responses=_answers(LicenseStatus, "License status", (400, *upstream),
                                {400: "Bad input: a query parameter (the route takes none)"}))
    def get_status() -> LicenseStatus:
        _only_parameters(app, set())
        return backend.service().status()

    @app.get(USER_PATH, operation_id="getUserLicenses", summary="One user's licenses", tags=["licenses"],
             description="The user's allocations with lastUsed, daysInactive and quarantine, the protection rules "
                         "that hold (as the evaluation report names them), and when the scheduled evaluation would "
                         "release each allocation under the current configuration.",
             responses=_answers(UserLicenses, "The user's licenses", (400, 404, 409, *upstream)))
    def get_user(userId: UserIdPath, userDirectory: UserDirectoryQuery = None) -> UserLicenses:
        _only_parameters(app, {"userDirectory"})
        ref = parse_user(userId, userDirectory)
        return backend.holds().show(backend.service().user_licenses(ref.user_id, ref.user_directory))

    @app.delete(USER_PATH, operation_id="releaseUserLicenses", summary="Release a user's licenses", tags=["licenses"],
                description="Releases the user's professional and analyzer allocations (or one licenseType's) "
                            "through the scheduled run's executor: re-read before DELETE, audited with the caller's "
                            "IAM identity, the administrators' SNS digest. 409 when a protection rule holds, unless "
                            "force=true. In a dry-run configuration nothing is released and the answer says "
                            "dryRun: true.",
                responses=_answers(ReleaseResult, "What was released", (400, 404, 409, *upstream), _RELEASE_ERRORS))
    def delete_user(userId: UserIdPath, userDirectory: UserDirectoryQuery = None,
                    licenseType: LicenseTypeQuery = None, force: ForceQuery = False) -> ReleaseResult:
        _only_parameters(app, {"userDirectory", "licenseType", "force"})
        ref = parse_user(userId, userDirectory)
        run = backend.run_context(app.current_event.get("requestContext"))
        answer = backend.service().release(ref.user_id, ref.user_directory, licenseType, force=force,
                                           sinks=backend.sinks(), run=run)
        logger.info("release on request", extra={"caller": run.actor, "runId": run.run_id, "user": str(ref),
                                                 "actions": [a.action for a in answer.allocations]})
        return answer


    @app.get(FORECAST_PATH, operation_id="getLicenseForecast", summary="Capacity planning", tags=["licenses"],
             description="The CLI's forecast: per type the trend of allocations per day over the last 90 days "
                         "(with and without releases), the available count, the day the pool runs out within the "
                         "horizon (or null), historyDays; with licenseMonitoring.costs the monthly cost and the "
                         "savings of the last 30 days' releases. History: InfluxDB license_usage when enabled, "
                         "else the audit store's daily snapshots.",
             responses=_answers(ForecastAnswer, "The forecast", (400, 502, 503, 504), {
                 400: "Bad input: an unknown query parameter",
                 502: "InfluxDB or DynamoDB refused the read, or a secret it needs cannot be read",
                 503: "InfluxDB or an AWS service is unreachable or unavailable",
                 504: "An AWS service did not answer in time"}))
    def get_forecast(horizon: HorizonQuery = 180) -> ForecastAnswer:
        _only_parameters(app, {"horizon"})
        return backend.forecast(horizon)


def _only_parameters(app: APIGatewayRestResolver, allowed: set[str]) -> None:
    """Unknown query parameters are errors: a misspelt ``licenceType`` must not release every type. (A repeated
    one already failed validation: a list is not a valid scalar.)"""
    multi: Mapping[str, list[str]] = app.current_event.multi_value_query_string_parameters or {}
    single: Mapping[str, str] = app.current_event.query_string_parameters or {}
    unknown = sorted((set(multi) | set(single)) - allowed)
    if unknown:
        raise errors.BadRequest(f"unknown query parameter(s): {', '.join(unknown)[:300]}; "
                                f"allowed: {', '.join(sorted(allowed)) or 'none'}")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps(body, default=str), headers=headers)


def _add_error_handlers(app: APIGatewayRestResolver, backend: Backend) -> None:
    def api_error(exc: errors.ApiError) -> Response[str]:
        if exc.status >= 500:
            logger.warning("upstream failure", extra={"status": exc.status, "reason": exc.message})
        return _json(exc.status, exc.body())

    def invalid(exc: RequestValidationError) -> Response[str]:
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
                  for e in exc.errors()]
        where = "; ".join(f"{'.'.join(str(p) for p in d['loc'][1:]) or d['loc']}: {d['msg']}" for d in detail)
        return _json(HTTPStatus.UNPROCESSABLE_ENTITY, {"message": f"invalid request: {where}", "detail": detail})

    def not_found(exc: NotFoundError) -> Response[str]:
        path, method = app.current_event.path, app.current_event.http_method.upper()
        allowed = allowed_methods(path)
        if allowed and method in allowed:  # the route exists: its {userId} segment is malformed
            return _json(400, {"message": "userId is empty or holds characters that must be URL-encoded "
                                          "(DIRECTORY%5Cuserid)"})
        if allowed:
            return method_not_allowed(method, allowed)
        return _json(404, {"message": "no such route; the API serves GET /v4/licenses/status and GET or DELETE "
                                      "/v4/licenses/user/{userId}"})

    def bad_config(exc: ConfigError) -> Response[str]:
        logger.error("invalid configuration", extra={"problems": exc.problems})
        return _json(500, {"message": "the service's configuration is invalid", "problems": exc.problems})

    def failure(exc: Exception) -> Response[str]:
        if isinstance(exc, QrsTlsError | CertificateError):
            backend.forget_client()  # the next request re-reads the (maybe rotated) certificate secret
        answer = errors.from_domain(exc) or errors.from_outside(exc)
        if answer is not None:
            return api_error(answer)
        logger.exception("unexpected failure")
        return _json(500, {"message": f"internal error ({type(exc).__name__}); see the function's log"})

    app.exception_handler(errors.ApiError)(api_error)
    app.exception_handler(RequestValidationError)(invalid)
    app.exception_handler(NotFoundError)(not_found)
    app.exception_handler(ConfigError)(bad_config)
    app.exception_handler(Exception)(failure)  # QRS, certificates, secrets, AWS: 502/503/504; anything else 500


def method_not_allowed(method: str, allowed: tuple[str, ...]) -> Response[str]:
    methods = ", ".join(allowed)
    return _json(405, {"message": f"method {method[:20]} not allowed; use {methods}"}, {"Allow": methods})
