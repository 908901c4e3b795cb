"""The tuning loop's routes (CONTRACT section 6): candidates, what-if, returns and the HTML report.

Read-only, like the CLI commands they mirror (``butler.tuning_service``): a candidates answer is a dry run made now
(nothing audited, no notice sent), paged (``limit`` at most ``CANDIDATES_MAX`` decisions, about 4 MB of JSON, far
below API Gateway's 10 MB) and optionally CSV; the report is one self-contained page served with the same
Content-Security-Policy as its meta tag.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query

from butler.api.backend import Backend
from butler.api.models import ErrorBody, LicenseTypeName
from butler.licenses import tuning
from butler.licenses.model import Action
from butler.report import CONTENT_SECURITY_POLICY

CANDIDATES_PATH = "/v4/licenses/candidates"
REPORT_PATH = "/v4/licenses/report"
WHAT_IF_PATH = "/v4/licenses/what-if"
RETURNS_PATH = "/v4/licenses/returns"
TUNING_ROUTES: dict[str, tuple[str, ...]] = {path: ("GET",) for path in (CANDIDATES_PATH, REPORT_PATH, WHAT_IF_PATH,
                                                                          RETURNS_PATH)}
MAX_DAYS = tuning.MAX_THRESHOLD_DAYS
TUNING_SCHEMA_FAILURES = {
    "action": "action not one of the evaluation report's actions",
    "format": "format not json or csv",
    "limit": f"limit not a whole number from 1 to {tuning.CANDIDATES_MAX}",
    "offset": "offset not a whole number of 0 or more",
    "professional": f"professional not a number of days above 0, at most {MAX_DAYS}",
    "analyzer": f"analyzer not a number of days above 0, at most {MAX_DAYS}",
    "sweep": "sweep not true or false",
    "days": f"days not a number above 0, at most {MAX_DAYS}",
}

ActionQuery = Annotated[Action | None, Query(description="only the decisions of this action")]
TypeQuery = Annotated[LicenseTypeName | None, Query(description="only this license type's decisions")]
FormatQuery = Annotated[Literal["json", "csv"], Query(alias="format", description="json (default) or csv")]
LimitQuery = Annotated[int, Query(ge=1, le=tuning.CANDIDATES_MAX,
                                  description=f"decisions in this answer (default {tuning.CANDIDATES_LIMIT})")]
OffsetQuery = Annotated[int, Query(ge=0, description="decisions to skip (longest idle first)")]
DaysQuery = Annotated[float | None, Query(gt=0, le=MAX_DAYS, description="inactivityDays to try")]
SweepQuery = Annotated[bool, Query(description="try 14, 30, 45, 60, 90, 120 and 180 days for both types")]
ReturnDaysQuery = Annotated[float, Query(gt=0, le=MAX_DAYS, description="releases of the last N days (default 30)")]
UPSTREAM = {
    400: "Bad input: an unknown query parameter",
    502: "QRS or the audit store answered with an error, or the QRS certificates are unusable",
    503: "QRS or an AWS service is unreachable or unavailable",
    504: "QRS or an AWS service did not answer in time",
}


def _answers(description: str, media: str = content_types.APPLICATION_JSON) -> dict[int, Any]:
    error = {content_types.APPLICATION_JSON: {"model": ErrorBody}}
    ok: dict[str, Any] = {media: {"schema": {"type": "string"}}} if media != content_types.APPLICATION_JSON else {
        media: {"schema": {"type": "object"}}}
    return {200: {"description": description, "content": ok},
            **{code: {"description": text, "content": error} for code, text in UPSTREAM.items()}}


def _json(body: dict[str, Any]) -> Response[str]:
    return Response(200, content_types.APPLICATION_JSON, json.dumps(body, default=str))


def add_tuning_routes(app: APIGatewayRestResolver, backend: Backend,
                      only_parameters: Callable[[APIGatewayRestResolver, set[str]], None]) -> None:
    from butler import tuning_service as service

    @app.get(CANDIDATES_PATH, operation_id="getCandidates", summary="Candidates of a dry run made now",
             tags=["tuning"], responses=_answers("The dry-run report (JSON, paged) or its decisions as CSV"),
             description="A dry run made now (nothing audited, no notice): the report without its decisions, "
                         "protectedByRule, then one page of the decisions (action and licenseType filter them; "
                         "longest idle first) with total and nextOffset; format=csv gives that page as text/csv.")
    def get_candidates(action: ActionQuery = None, licenseType: TypeQuery = None,
                       output: FormatQuery = "json", limit: LimitQuery = tuning.CANDIDATES_LIMIT,
                       offset: OffsetQuery = 0) -> Response[str]:
        only_parameters(app, {"action", "licenseType", "format", "limit", "offset"})
        report = service.candidates(backend.config, backend.audit_file)
        chosen = tuning.select(report.decisions, action=action, license_type=licenseType)
        if output == "csv":
            return Response(200, "text/csv; charset=utf-8", tuning.to_csv(chosen[offset:offset + limit]))
        return _json({**report.to_json(decisions=False), "filters": {"action": action, "licenseType": licenseType},
                      **tuning.page_of(chosen, limit, offset)})

    @app.get(WHAT_IF_PATH, operation_id="getWhatIf", summary="What other thresholds would release now",
             tags=["tuning"], responses=_answers("Per type: wouldRelease, protected (by rule), shareFreedPercent, "
                                                 "monthlySaving; or the sweep"),
             description="The CLI's what-if: the evaluation's policy with these inactivity thresholds (the "
                         "configured one for a type not given), ignoring throttles, the breaker and notices; "
                         "sweep=true tries 14 to 180 days.")
    def get_what_if(professional: DaysQuery = None, analyzer: DaysQuery = None,
                    sweep: SweepQuery = False) -> Response[str]:
        only_parameters(app, {"professional", "analyzer", "sweep"})
        asked = {k: v for k, v in (("professional", professional), ("analyzer", analyzer)) if v is not None}
        if sweep and asked:
            from butler.api.errors import BadRequest

            raise BadRequest("sweep tries its own thresholds: leave out professional and analyzer")
        return _json(service.what_if(backend.config, asked, sweep=sweep))  # type: ignore[arg-type]

    @app.get(RETURNS_PATH, operation_id="getReturns", summary="Released users who came back", tags=["tuning"],
             responses=_answers("Per type: released, returned, returnRate (percent), medianDaysToReturn, users"),
             description="The CLI's returns: of the allocations released in the last N days (the audit store), "
                         "those whose user now holds a new allocation of the same type, allocated after the release.")
    def get_returns(days: ReturnDaysQuery = tuning.RETURNS_DAYS) -> Response[str]:
        only_parameters(app, {"days"})
        return _json(service.returns(backend.config, days, backend.audit_file))

    @app.get(REPORT_PATH, operation_id="getReport", summary="The license report (HTML)", tags=["tuning"],
             responses=_answers("One self-contained HTML page (no scripts)", "text/html"),
             description="The CLI's report: utilization, releases and returns per month, savings, the next run's "
                         "candidates, the protection rules at work and the what-if sweep.")
    def get_report() -> Response[str]:
        only_parameters(app, set())
        page = service.report_html(backend.config, backend.audit_file)
        return Response(200, "text/html; charset=utf-8", page,
                        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                 "X-Content-Type-Options": "nosniff"})
