"""The routes of holds and reinstatement (CONTRACT section 6), the CLI's ``hold`` and ``reinstate``:
``PUT|DELETE /v4/licenses/user/{userId}/hold`` and ``POST /v4/licenses/user/{userId}/reinstate``. Each change is
audited with the caller's identity (``butler.licenses.holds``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from butler.api import errors
from butler.api.backend import Backend
from butler.api.identity import MAX_PART_LENGTH, parse_user
from butler.api.models import ErrorBody, LicenseTypeName
from butler.licenses.answers import HoldInfo, ReinstateResult
from butler.licenses.holds import REASON_MAX
from butler.observability import logger

HOLD_PATH = "/v4/licenses/user/<userId>/hold"
REINSTATE_PATH = "/v4/licenses/user/<userId>/reinstate"
NOTICE_ROUTES: dict[str, tuple[str, ...]] = {HOLD_PATH: ("PUT", "DELETE"), REINSTATE_PATH: ("POST",)}
NOTICE_SCHEMA_FAILURES = {"until": "until missing, empty or longer than 10 characters",
                          "reason": f"reason longer than {REASON_MAX} characters"}

UserIdPath = Annotated[str, Path(description="DIRECTORY\\userid URL-encoded (DOMAIN%5Cjdoe), or a bare userid with "
                                             "userDirectory")]
DirectoryQuery = Annotated[str | None, Query(description="the user directory of a bare userid", min_length=1,
                                             max_length=MAX_PART_LENGTH)]
UntilQuery = Annotated[str, Query(description="YYYY-MM-DD, after today: not released before this day (UTC)",
                                  min_length=1, max_length=10)]
ReasonQuery = Annotated[str | None, Query(description="why (shown in the decisions' reason)", max_length=REASON_MAX)]
TypeQuery = Annotated[LicenseTypeName | None, Query(description="allocate this type (even without a release of "
                                                                "ours to undo)")]
TEXTS = {
    400: "Bad input: an unknown query parameter, a malformed userId, or an until that is not a date after today",
    404: "No such user in QRS (PUT, POST), or no hold set for the user (DELETE)",
    409: "A bare userId in several user directories; or (reinstate) nothing was allocated: no license of the type "
         "is available, the user holds one already, or there is no release by this tool to undo",
    502: "QRS or the audit store answered with an error, or the QRS certificates are unusable",
    503: "QRS or an AWS service is unreachable or unavailable",
    504: "QRS or an AWS service did not answer in time",
}


def _answers(model: type, description: str, codes: tuple[int, ...]) -> dict[int, Any]:
    json_of = content_types.APPLICATION_JSON
    answers: dict[int, Any] = {200: {"description": description, "content": {json_of: {"model": model}}}}
    for code in codes:
        answers[code] = {"description": TEXTS[code], "content": {json_of: {"model": ErrorBody}}}
    return answers


def add_notice_routes(app: APIGatewayRestResolver, backend: Backend,
                      only_parameters: Callable[[APIGatewayRestResolver, set[str]], None]) -> None:
    upstream = (502, 503, 504)

    def caller() -> tuple[str, str]:
        run = backend.run_context(app.current_event.get("requestContext"))
        return run.actor, run.run_id

    @app.put(HOLD_PATH, operation_id="setHold", summary="Set a hold on a user", tags=["holds"],
             description="The user's allocations are not released before `until` (decision protected, reason "
                         "`hold: until DATE by CALLER (REASON)`); replaces the user's earlier hold. Audited with the "
                         "caller's identity.",
             responses=_answers(HoldInfo, "The hold set", (400, 404, 409, *upstream)))
    def put_hold(userId: UserIdPath, until: UntilQuery, reason: ReasonQuery = None,
                 userDirectory: DirectoryQuery = None) -> HoldInfo:
        only_parameters(app, {"until", "reason", "userDirectory"})
        ref = parse_user(userId, userDirectory)
        actor, _ = caller()
        try:
            return backend.holds().set(ref.user_id, ref.user_directory, until, reason, actor)
        except ValueError as exc:
            raise errors.BadRequest(str(exc)) from None

    @app.delete(HOLD_PATH, operation_id="removeHold", summary="Lift a user's hold", tags=["holds"],
                description="From now on the user's allocations follow the release rules again. Audited with the "
                            "caller's identity.",
                responses=_answers(HoldInfo, "The hold lifted (active: false)", (400, 404, *upstream)))
    def delete_hold(userId: UserIdPath, userDirectory: DirectoryQuery = None) -> HoldInfo:
        only_parameters(app, {"userDirectory"})
        ref = parse_user(userId, userDirectory)
        actor, _ = caller()
        return backend.holds().remove(ref.user_id, ref.user_directory, actor)

    @app.post(REINSTATE_PATH, operation_id="reinstateUser", summary="Allocate again a released license",
              tags=["holds"],
              description="Allocates again, through QRS, the license type this tool released from the user (the "
                          "latest release not reinstated), or licenseType. 409, nothing allocated, when none is "
                          "available, the user holds one already, or there is no release of ours to undo. Audited "
                          "with the caller's identity.",
              responses=_answers(ReinstateResult, "The allocation made", (400, 404, 409, *upstream)))
    def post_reinstate(userId: UserIdPath, licenseType: TypeQuery = None,
                       userDirectory: DirectoryQuery = None) -> ReinstateResult:
        only_parameters(app, {"licenseType", "userDirectory"})
        ref = parse_user(userId, userDirectory)
        actor, run_id = caller()
        answer = backend.holds().reinstate(ref.user_id, ref.user_directory, licenseType, actor, run_id)
        logger.info("reinstated on request", extra={"caller": actor, "user": str(ref),
                                                    "licenseType": answer.licenseType})
        return answer
