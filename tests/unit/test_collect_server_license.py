"""The collector's ``server_license`` point and ``ServerLicenseDaysLeft`` metric; a failed ``GET /qrs/license``
fails closed (days left 0) and breaks nothing else."""

from __future__ import annotations

import pytest

from butler.licenses import collect
from butler.licenses.server_license import NO_EXPIRY_DAYS, ServerLicense
from butler.qrs.errors import QrsBadAnswer, QrsHttpError

from .test_collect_service import NOW, FakeQrs, FakeWriter, config, emf_records, metric_values

STAMP = str(int(NOW.replace(microsecond=0).timestamp()))


class Site(FakeQrs):
    def __init__(self, answer: ServerLicense | Exception) -> None:
        super().__init__()
        self.answer = answer

    def server_license(self) -> ServerLicense:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def server_line(site: Site) -> tuple[collect.CollectionSummary, str]:
    writer = FakeWriter()
    summary = collect.run_collection(config(), site, writer, now=NOW)
    lines = [text for text in writer.lines if text.startswith("server_license")]
    assert len(lines) == 1
    return summary, lines[0]


@pytest.mark.parametrize(("license", "fields"), [
    (ServerLicense(keyDetails="Valid To: 2026-07-01"), "days_until_expiry=30i,expired=false"),
    (ServerLicense(keyDetails="Valid From: 2020-01-01\r\nValid To: 2026-06-01 23:59"),
     "days_until_expiry=0i,expired=false"),  # today: valid through its last day
    (ServerLicense(keyDetails="Valid To: 2026-05-30"), "days_until_expiry=-2i,expired=true"),
    (ServerLicense(keyDetails="Product: x"), f"days_until_expiry={NO_EXPIRY_DAYS}i,expired=false"),
    (ServerLicense(keyDetails="Valid To: 2030-12-31", isBlacklisted=True), "days_until_expiry=-1i,expired=false"),
    (ServerLicense(keyDetails="Valid To: soon"), "days_until_expiry=0i,expired=false"),  # unreadable: fail closed
])
def test_one_point_at_the_collection_timestamp(license: ServerLicense, fields: str) -> None:
    summary, line = server_line(Site(license))
    assert line == f"server_license,site=test {fields} {STAMP}"
    assert summary.ok and summary.written["server_license"] == 1


@pytest.mark.parametrize("error", [
    QrsHttpError("GET", "/qrs/license", 403, "Forbidden"),
    QrsBadAnswer("GET /qrs/license", "the answer is not JSON"),
])
def test_a_failed_read_fails_closed_and_the_rest_is_collected(error: Exception,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    summary, line = server_line(Site(error))
    assert line == f"server_license,site=test days_until_expiry=0i,expired=false {STAMP}"
    assert summary.ok and summary.written == {"license_usage": 3, "user_license_activity": 6, "server_license": 1}
    problem = summary.to_json()["serverLicense"]["problem"]
    assert problem.startswith("GET /qrs/license failed: ") and "\n" not in problem
    capsys.readouterr()
    collect.emit_metrics(summary)
    records = emf_records(capsys.readouterr().out)
    assert metric_values(records, None)["ServerLicenseDaysLeft"] == 0.0
    assert metric_values(records, "professional")["Total"] == 10  # the access licenses still reach CloudWatch


def test_the_metric_is_the_point_s_days(capsys: pytest.CaptureFixture[str]) -> None:
    summary = collect.run_collection(config(), Site(ServerLicense(keyDetails="Valid To: 2026-05-30")), None, now=NOW)
    collect.emit_metrics(summary)
    records = [r for r in emf_records(capsys.readouterr().out) if "ServerLicenseDaysLeft" in r]
    assert len(records) == 1 and records[0]["ServerLicenseDaysLeft"] in (-2.0, [-2.0])
    assert records[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert summary.to_json()["serverLicense"]["isExpired"] is True
