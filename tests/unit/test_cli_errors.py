"""Failures of the outside world end the command with one line and exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from butler import wiring
from butler.cli import main
from butler.qrs import QrsUnreachable
from butler.sinks.influx import InfluxWriteError


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "table not found"}}, "PutItem"),
        QrsUnreachable("GET /qrs/license/professionalaccesstype/full: cannot reach https://qlik:4242"),
        InfluxWriteError("InfluxDB write failed: HTTP 500"),
    ],
)
def test_operational_errors_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], error: Exception) -> None:
    config = tmp_path / "butler.yaml"
    config.write_text("Butler:\n  licenseManagement:\n    enable: true\n")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(wiring, "run_evaluate", fail)
    assert main(["evaluate", "--config", str(config), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert "Traceback" not in captured.err


def test_a_bug_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "butler.yaml"
    config.write_text("Butler: {}\n")

    def bug(*args: Any, **kwargs: Any) -> None:
        raise KeyError("programming error")

    monkeypatch.setattr(wiring, "run_evaluate", bug)
    with pytest.raises(KeyError):
        main(["evaluate", "--config", str(config)])


def test_audit_user_needs_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "butler.yaml"
    config.write_text("Butler: {}\n")
    assert main(["audit", "--config", str(config), "--user", "jdoe", "--audit-file", str(tmp_path / "a")]) == 2
    assert "DIRECTORY\\userid" in capsys.readouterr().err
