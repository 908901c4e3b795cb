"""``butler forecast`` from a subprocess on a real InfluxDB 1.x history (``license_usage``, this site's tags only)
and on the audit file's daily snapshots; the collect function's ``DaysToExhaustion`` metric."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from butler.config import InfluxDb
from butler.sinks.influx import InfluxV1Writer, make_point
from tests.integration.conftest import InfluxServer, influx_config, license_scenario
from tests.support.lambda_harness import Context, load_handler

ROOT = Path(__file__).parents[2]
TODAY = datetime.now(UTC).date()


def seed_influx(server: InfluxServer, database: str, series: dict[str, list[int]], *, total: int = 500,
                site: str = "north", days_ago: int = 0) -> None:
    """One ``license_usage`` point per type per day (and an earlier, lower one the same day), the last
    ``days_ago`` days before today."""
    writer = InfluxV1Writer(InfluxDb.model_validate(influx_config(server, database)), default_tags={"site": site})
    points = []
    for kind, counts in series.items():
        for i, count in enumerate(counts):
            day = TODAY - timedelta(days=len(counts) - 1 - i + days_ago)
            for hour, value in ((1, count - 7), (min(12, datetime.now(UTC).hour), count)):
                at = datetime.combine(day, time(hour), UTC)
                points.append(make_point("license_usage", {"license_type": kind},
                                         {"total": total, "allocated": value, "available": total - value}, at))
    writer.write(points)
    writer.close()


def butler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "butler", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, check=False)


def config_file(tmp_path: Path, butler_section: dict[str, Any]) -> Path:
    path = tmp_path / "butler.yaml"
    path.write_text(yaml.safe_dump({"Butler": butler_section}))
    return path


def test_forecast_reads_this_sites_license_usage(tmp_path: Path, influx_server: InfluxServer, influx_db: str) -> None:
    seed_influx(influx_server, influx_db, {"professional": [100 + 2 * i for i in range(60)],
                                           "analyzer": [300] * 60})
    seed_influx(influx_server, influx_db, {"professional": [490] * 60}, site="south")  # another site: not ours
    config = config_file(tmp_path, {"influxDb": influx_config(influx_server, influx_db),
                                    "licenseMonitoring": {"tags": {"site": "north"},
                                                          "costs": {"professional": 40, "analyzer": 10}}})
    done = butler("forecast", "--config", str(config), "--json", "--audit-file", str(tmp_path / "none.jsonl"),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["source"] == "influxdb"
    professional, analyzer = answer["professional"], answer["analyzer"]
    assert (professional["allocatedPerDay"], professional["available"], professional["historyDays"]) == (2.0, 282, 60)
    assert professional["daysToExhaustion"] == 141
    assert professional["exhaustionDate"] == (TODAY + timedelta(days=141)).isoformat()
    assert (analyzer["allocatedPerDay"], analyzer["daysToExhaustion"], analyzer["exhaustionDate"]) == (0.0, None, None)
    assert answer["cost"]["monthlyCost"] == 218 * 40 + 300 * 10
    assert not (tmp_path / "none.jsonl").exists()  # reading never creates the audit file
    table = butler("forecast", "--config", str(config), "--horizon", "100", cwd=tmp_path)
    assert table.returncode == 0 and "not within 100 d" in table.stdout


def test_a_release_spike_in_the_audit_does_not_move_the_influx_trend(tmp_path: Path, influx_server: InfluxServer,
                                                                    influx_db: str) -> None:
    seed_influx(influx_server, influx_db, {"professional": [200 + 2 * i - (100 if i >= 30 else 0) for i in range(60)]})
    audit = tmp_path / "audit.jsonl"
    spike = datetime.combine(TODAY - timedelta(days=29), time(2), UTC).isoformat().replace("+00:00", "Z")
    audit.write_text("".join(json.dumps({
        "kind": "release-outcome", "runId": "r1", "at": spike, "actor": "scheduler", "dryRun": False,
        "allocationId": f"a{n}", "licenseType": "professional", "userDirectory": "CORP", "userId": f"u{n}",
        "action": "release", "reason": "idle", "daysInactive": 40.0, "lastUsed": None}) + "\n" for n in range(100)))
    config = config_file(tmp_path, {"influxDb": influx_config(influx_server, influx_db),
                                    "licenseMonitoring": {"tags": {"site": "north"}}})
    done = butler("forecast", "--config", str(config), "--json", "--audit-file", str(audit), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    professional = json.loads(done.stdout)["professional"]
    assert (professional["allocatedPerDayWithoutReleases"], professional["daysToExhaustion"]) == (2.0, 141)
    assert json.loads(done.stdout)["releasedLast30Days"]["professional"] == 100


def test_forecast_from_the_audit_files_snapshots(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    lines = [{"kind": "snapshot", "day": (TODAY - timedelta(days=59 - i)).isoformat(), "licenseType": "analyzer",
              "at": "x", "total": 1000, "allocated": 500 + 5 * i} for i in range(60)]
    audit.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = config_file(tmp_path, {})
    done = butler("forecast", "--config", str(config), "--json", "--audit-file", str(audit), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["source"] == "audit"
    assert (answer["analyzer"]["allocatedPerDay"], answer["analyzer"]["daysToExhaustion"]) == (5.0, 41)  # 205 left
    assert answer["professional"]["note"] == "not enough history: 0 days, need 14"


@pytest.mark.parametrize("horizon", ["-1", "36501", "soon"])
def test_a_bad_horizon_is_exit_2(tmp_path: Path, horizon: str) -> None:
    done = butler("forecast", "--config", str(config_file(tmp_path, {})), "--horizon", horizon, cwd=tmp_path)
    assert done.returncode == 2 and "horizon" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_influxdb_is_exit_1(tmp_path: Path) -> None:
    from tests.support.influxd import free_port

    config = config_file(tmp_path, {"influxDb": {"enable": True, "host": "127.0.0.1", "port": free_port(),
                                                 "timeoutSeconds": 2}})
    done = butler("forecast", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("error: InfluxDB") and "Traceback" not in done.stderr


def test_the_collect_function_publishes_days_to_exhaustion(
        influx_server: InfluxServer, influx_db: str, write_config: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from butler import wiring
    from qrs_simulator import Simulator

    # The simulated site holds 3 of 10 professional licenses today; the history climbs to it, one every 20 days.
    seed_influx(influx_server, influx_db, {"professional": [0] * 20 + [1] * 20 + [2] * 20}, total=10, days_ago=1)
    sim = Simulator(license_scenario(datetime.now(UTC)), certs_dir=tmp_path / "certs")
    sim.start()
    try:
        monkeypatch.chdir(tmp_path)
        path = write_config(sim, {"influxDb": influx_config(influx_server, influx_db),
                                  "licenseMonitoring": {"enable": True, "tags": {"site": "north"}}})
        monkeypatch.setenv("BUTLER_CONFIG", str(path))
        capsys.readouterr()
        load_handler("collect").handler({"source": "butler.scheduler"}, Context())
    finally:
        sim.stop()
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    published = {r["LicenseType"]: r["DaysToExhaustion"] for r in records if "DaysToExhaustion" in r}
    expected = wiring.run_forecast(wiring.load_config(path))
    assert expected.professional.historyDays == 61
    assert expected.professional.daysToExhaustion is not None and expected.professional.daysToExhaustion < 180
    assert published == {"professional": [float(expected.professional.daysToExhaustion)]}  # analyzer: 1 day only


def test_collect_keeps_the_snapshots_that_forecast_reads(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    from qrs_simulator import Simulator

    sim = Simulator(license_scenario(datetime.now(UTC)), certs_dir=tmp_path / "certs")
    sim.start()
    try:
        config = write_config(sim, {"licenseMonitoring": {"enable": True}})
        audit = tmp_path / "audit.jsonl"
        for _ in range(2):  # the day's second collection replaces the first
            done = butler("collect", "--config", str(config), "--audit-file", str(audit), cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["history"] == "kept (3 snapshots)"
        assert not (tmp_path / "butler-audit.jsonl").exists()
        plain = butler("collect", "--config", str(config), cwd=tmp_path)  # no audit store asked for: none written
        assert json.loads(plain.stdout)["history"] == "not kept" and not (tmp_path / "butler-audit.jsonl").exists()
    finally:
        sim.stop()
    done = butler("forecast", "--config", str(config), "--json", "--audit-file", str(audit), cwd=tmp_path)
    professional = json.loads(done.stdout)["professional"]
    assert (professional["total"], professional["allocated"], professional["historyDays"]) == (10, 3, 1)
    assert professional["note"] == "not enough history: 1 days, need 14" and professional["daysToExhaustion"] is None
