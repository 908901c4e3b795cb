"""The /v4 routes: one Powertools resolver, used by the api Lambda function and by ``butler serve``.

Routes are thin: parse and check the request, call ``LicenseService``, shape the answer. Every failure is JSON
``{"message": ...}``: bad input is 400 (422 for a parameter that fails its schema), unknown user or no license
404, ambiguity or a protection rule 409, QRS trouble 502/503/504. The user id path segment arrives URL-encoded
(API Gateway REST passes the raw path); it is decoded here, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
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
from butler.config import ConfigError
from butler.observability import logger
from butler.qrs import QrsError, QrsTlsError
from butler.qrs.certs import CertificateError

STATUS_PATH = "/v4/licenses/status"
USER_PATH = "/v4/licenses/user/<userId>"
_KNOWN_PATHS = {re.compile(r"^/v4/licenses/status$"): "GET", re.compile(r"^/v4/licenses/user/[^/]*$"): "GET, DELETE"}

UserIdPath = Annotated[str, Path(description="DIRECTORY\\userid, URL-encoded (DOMAIN%5Cjdoe), or a bare userid")]
UserDirectoryQuery = Annotated[str | None, Query(
    description="the user directory of a bare userid", min_length=1, max_length=MAX_PART_LENGTH)]
LicenseTypeQuery = Annotated[LicenseTypeName | None, Query(description="release only this type's allocation")]
ForceQuery = Annotated[bool, Query(description="release even when a protection rule holds")]


def _answers(model: type, description: str, *codes: int) -> dict[int, Any]:
    texts = {400: "Malformed input", 404: "Unknown user, or no license allocated",
             409: "Ambiguous user id, or a protection rule holds",
             502: "QRS error, certificate problem, or a failed release (the answer lists each allocation)",
             503: "QRS unreachable or unavailable", 504: "QRS did not answer in time"}
    json_of = content_types.APPLICATION_JSON
    answers: dict[int, Any] = {200: {"description": description, "content": {json_of: {"model": model}}}}
    for code in codes:
        answers[code] = {"description": texts[code], "content": {json_of: {"model": ErrorBody}}}
    return answers


def create_app(backend: Backend) -> APIGatewayRestResolver:
    """The resolver with the /v4 routes and JSON error answers. Cheap: nothing is read or connected here."""
    app = APIGatewayRestResolver(enable_validation=True,
                                 response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR)
    _add_routes(app, backend)
    _add_error_handlers(app, backend)
    return app


def _add_routes(app: APIGatewayRestResolver, backend: Backend) -> None:
    upstream = (502, 503, 504)

    @app.get(STATUS_PATH, operation_id="getLicenseStatus", summary="License status", tags=["licenses"],
             description="Live from QRS's access type overview: per access type total, allocated, available, "
                         "utilization (percent), used, quarantined, excess; Analyzer Capacity in minutes.",
             responses=_answers(LicenseStatus, "License status", 400, *upstream))
    def get_status() -> LicenseStatus:
        _only_parameters(app, set())
        return LicenseStatus.model_validate(backend.service().status())

    @app.get(USER_PATH, operation_id="getUserLicenses", summary="One user's licenses", tags=["licenses"],
             description="The user's allocations with lastUsed, daysInactive and quarantine, the protection rules "
                         "that hold (as the evaluation report names them), and when the scheduled evaluation would "
                         "release each allocation under the current configuration.",
             responses=_answers(UserLicenses, "The user's licenses", 400, 404, 409, *upstream))
    def get_user(userId: UserIdPath, userDirectory: UserDirectoryQuery = None) -> UserLicenses:
        _only_parameters(app, {"userDirectory"})
        ref = parse_user(userId, userDirectory)
        return UserLicenses.model_validate(backend.service().user_licenses(ref))

    @app.delete(USER_PATH, operation_id="releaseUserLicenses", summary="Release a user's licenses", tags=["licenses"],
                description="Releases the user's professional and analyzer allocations (or one licenseType's) "
                            "through the scheduled run's executor: re-read before DELETE, audited with the caller's "
                            "IAM identity, SNS notice. 409 when a protection rule holds, unless force=true. In a "
                            "dry-run configuration nothing is released and the answer says dryRun: true.",
                responses=_answers(ReleaseResult, "What was released", 400, 404, 409, *upstream))
    def delete_user(userId: UserIdPath, userDirectory: UserDirectoryQuery = None,
                    licenseType: LicenseTypeQuery = None, force: ForceQuery = False) -> ReleaseResult:
        _only_parameters(app, {"userDirectory", "licenseType", "force"})
        ref = parse_user(userId, userDirectory)
        context = app.current_event.get("requestContext")
        who, run_id = backend.caller(context), backend.run_id(context)
        answer = backend.service().release(ref, licenseType, force=force, caller=who, run_id=run_id,
                                           releaser=lambda: backend.executor(actor=who, run_id=run_id))
        logger.info("release on request", extra={"caller": who, "runId": run_id, "user": str(ref),
                                                 "actions": [a["action"] for a in answer["allocations"]]})
        return ReleaseResult.model_validate(answer)


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

    def qrs_error(exc: Exception) -> Response[str]:
        if isinstance(exc, QrsTlsError | CertificateError):
            backend.forget_client()  # the next request re-reads the (maybe rotated) certificate secret
        return api_error(errors.from_qrs(exc))

    def invalid(exc: RequestValidationError) -> Response[str]:
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
                  for e in exc.errors()]
        where = "; ".join(f"{'.'.join(str(p) for p in d['loc'][1:]) or d['loc']}: {d['msg']}" for d in detail)
        return _json(HTTPStatus.UNPROCESSABLE_ENTITY, {"message": f"invalid request: {where}", "detail": detail})

    def not_found(exc: NotFoundError) -> Response[str]:
        path, method = app.current_event.path, app.current_event.http_method.upper()
        allowed = next((methods for pattern, methods in _KNOWN_PATHS.items() if pattern.match(path)), None)
        if allowed and method in allowed.split(", "):  # the route exists: its {userId} segment is malformed
            return _json(400, {"message": "userId is empty or holds characters that must be URL-encoded "
                                          "(DIRECTORY%5Cuserid)"})
        if allowed:
            return _json(405, {"message": f"method {method} not allowed; use {allowed}"}, {"Allow": allowed})
        return _json(404, {"message": "no such route; the API serves GET /v4/licenses/status and GET or DELETE "
                                      "/v4/licenses/user/{userId}"})

    def bad_config(exc: ConfigError) -> Response[str]:
        logger.error("invalid configuration", extra={"problems": exc.problems})
        return _json(500, {"message": "the service's configuration is invalid", "problems": exc.problems})

    def unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected failure")
        return _json(500, {"message": f"internal error ({type(exc).__name__}); see the function's log"})

    app.exception_handler(errors.ApiError)(api_error)
    app.exception_handler([QrsError, CertificateError])(qrs_error)
    app.exception_handler(RequestValidationError)(invalid)
    app.exception_handler(NotFoundError)(not_found)
    app.exception_handler(ConfigError)(bad_config)
    app.exception_handler(Exception)(unexpected)
