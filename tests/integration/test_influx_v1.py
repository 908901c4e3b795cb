"""The InfluxDB 1.x writer against Debian's real influxd, and its exact requests against a recording server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from butler.config import InfluxDb
from butler.sinks.influx import InfluxV1Writer, InfluxWriteError, make_point, writer_from_config
from tests.integration.conftest import CaptureServer, InfluxServer
from tests.support.influxd import free_port, rows

NOW = datetime.now(UTC).replace(microsecond=0)


def settings(port: int, database: str, **extra: Any) -> InfluxDb:
    return InfluxDb.model_validate({"enable": True, "version": 1, "host": "127.0.0.1", "port": port,
                                    "database": database, **extra})


def test_points_round_trip_with_their_types(influx_server: InfluxServer, influx_db: str) -> None:
    writer = writer_from_config(settings(influx_server.port, influx_db), default_tags={"site": "eu-1"})
    point = make_point("user_license_activity", {"user_id": "CORP\\jane doe", "license_type": "professional"},
                       {"last_activity": "2026-05-01T12:00:00.000Z", "days_inactive": 31.0, "quarantined": False},
                       NOW)
    assert writer.write([point]) == 1
    writer.close()
    (row,) = rows(influx_server.query('SELECT * FROM "user_license_activity"', db=influx_db))
    assert row["user_id"] == "CORP\\jane doe"  # a backslash and a space survive line protocol
    assert row["site"] == "eu-1"
    assert (row["days_inactive"], row["last_activity"], row["quarantined"]) == (31, "2026-05-01T12:00:00.000Z", False)
    field_types = rows(influx_server.query('SHOW FIELD KEYS FROM "user_license_activity"', db=influx_db))
    assert {r["fieldKey"]: r["fieldType"] for r in field_types} == {
        "days_inactive": "float", "last_activity": "string", "quarantined": "boolean"}


def test_large_writes_go_in_batches(influx_server: InfluxServer, influx_db: str) -> None:
    writer = writer_from_config(settings(influx_server.port, influx_db, batchSize=1000))
    points = [make_point("license_usage", {"license_type": "professional"}, {"allocated": n},
                         NOW - timedelta(seconds=n)) for n in range(2500)]
    assert writer.write(points) == 2500
    (row,) = rows(influx_server.query('SELECT count("allocated") FROM "license_usage"', db=influx_db))
    assert row["count"] == 2500


def test_a_missing_database_is_created(influx_server: InfluxServer) -> None:
    writer = writer_from_config(settings(influx_server.port, "created_by_butler"))
    assert writer.write([make_point("license_usage", {"license_type": "analyzer"}, {"total": 5}, NOW)]) == 1
    assert rows(influx_server.query('SELECT "total" FROM "license_usage"', db="created_by_butler"))[0]["total"] == 5


def test_a_refused_write_raises_with_influxdbs_reason(influx_server: InfluxServer, influx_db: str) -> None:
    writer = writer_from_config(settings(influx_server.port, influx_db, batchSize=1))
    ok = make_point("license_usage", {"license_type": "professional"}, {"total": 5}, NOW)
    conflict = make_point("license_usage", {"license_type": "professional"}, {"total": "five"}, NOW)
    with pytest.raises(InfluxWriteError) as caught:
        writer.write([ok, conflict])
    assert caught.value.written == 1
    assert "field type conflict" in str(caught.value)
    assert "1 of 2 points written before this batch" in str(caught.value)


def test_an_unreachable_server_raises_without_the_password() -> None:
    writer = writer_from_config(settings(free_port(), "db", username="butler", password="s3cret-pw",
                                         timeoutSeconds=2))
    with pytest.raises(InfluxWriteError, match="cannot reach the server") as caught:
        writer.write([make_point("license_usage", {"license_type": "professional"}, {"total": 1}, NOW)])
    assert "s3cret-pw" not in str(caught.value)


def test_write_request_shape_with_basic_auth(capture_server: CaptureServer) -> None:
    writer = InfluxV1Writer(settings(capture_server.port, "butler_metrics", retentionPolicy="one_year",
                                     username="butler", password="s3cret-pw"))
    writer.write([make_point("license_usage", {"license_type": "professional"}, {"total": 1}, NOW)])
    (request,) = capture_server.requests
    assert request.path == "/write"
    assert request.query == {"db": ["butler_metrics"], "rp": ["one_year"], "precision": ["s"]}
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"butler:s3cret-pw").decode()
    assert request.body == f"license_usage,license_type=professional total=1i {int(NOW.timestamp())}".encode()


def test_mixed_precisions_go_in_one_request_each(capture_server: CaptureServer) -> None:
    writer = InfluxV1Writer(settings(capture_server.port, "db"))
    writer.write([make_point("m", {}, {"f": 1}, NOW), make_point("m", {}, {"f": 2}, NOW, precision="ms")])
    assert sorted(r.query["precision"][0] for r in capture_server.requests) == ["ms", "s"]


def test_a_slow_server_times_out(capture_server: CaptureServer) -> None:
    capture_server.delay = 2.0
    writer = InfluxV1Writer(settings(capture_server.port, "db", timeoutSeconds=0.3))
    with pytest.raises(InfluxWriteError, match=r"no answer within 0\.3 s"):
        writer.write([make_point("m", {}, {"f": 1}, NOW)])


def test_server_errors_are_write_errors(capture_server: CaptureServer) -> None:
    capture_server.status, capture_server.body = 500, b'{"error":"engine: cache maximum memory size exceeded"}'
    writer = InfluxV1Writer(settings(capture_server.port, "db"))
    with pytest.raises(InfluxWriteError, match="HTTP 500 engine: cache maximum memory size exceeded"):
        writer.write([make_point("m", {}, {"f": 1}, NOW)])


def test_nothing_to_write_sends_nothing(capture_server: CaptureServer) -> None:
    writer = InfluxV1Writer(settings(capture_server.port, "db"))
    assert writer.write([]) == 0
    assert capture_server.requests == []


@pytest.fixture
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaptureServer]:
    from qrs_simulator import ensure_certs

    certs = ensure_certs(tmp_path_factory.mktemp("influx-tls"))  # a private CA, unknown to the system's trust
    server = CaptureServer(tls=(certs.server, certs.server_key))
    yield server
    server.stop()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # verifyTls: false, on purpose
def test_tls_is_verified_unless_told_otherwise(https_server: CaptureServer) -> None:
    point = make_point("license_usage", {"license_type": "professional"}, {"total": 1}, NOW)
    with pytest.raises(InfluxWriteError, match="TLS handshake failed"):
        InfluxV1Writer(settings(https_server.port, "db", tls=True)).write([point])
    assert https_server.requests == []
    assert InfluxV1Writer(settings(https_server.port, "db", tls=True, verifyTls=False)).write([point]) == 1
    assert https_server.requests[0].path == "/write"
