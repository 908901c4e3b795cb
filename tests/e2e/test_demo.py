"""`make demo` end to end: the real handlers against the simulator, moto and (when installed) InfluxDB."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from butler.cli import main

ROOT = Path(__file__).parents[2]


def test_demo_runs_the_whole_pipeline() -> None:
    result = subprocess.run([sys.executable, "-m", "butler", "demo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "CollectorSuccess" in out
    assert re.search(r"wouldRelease=[1-9]\d*", out)
    assert "status: aborted" in out and "abortAbovePercent 10%" in out
    released = re.search(r"'released': (\d+)", out)
    assert released and 0 < int(released[1]) <= 100  # the throttles: the longest idle, the rest deferred
    deferred = re.search(r"'deferred': (\d+)", out)
    assert deferred and int(deferred[1]) > 0
    assert f"SNS notice: Qlik Sense licenses: {released[1]} released, 0 failed" in out  # one digest per run
    assert "GET /v4/licenses/status -> 200" in out
    assert re.search(r"DELETE /v4/licenses/user/\S+ -> 409", out)
    assert re.search(r"DELETE /v4/licenses/user/\S+\?force=true -> 200", out)
    kinds = re.search(r"records by kind: (.*)", out)
    assert kinds and "release-outcome=" in kinds[1] and "run=3" in kinds[1]
    assert "arn:aws:iam::123456789012:user/qlik-admin" in out
    # issue 12: a warning, the notice period, the release and its notice (a real SMTP server), a reinstatement
    assert "mail to jdoe@corp.example: Qlik Sense: your Professional license will be released on" in out
    assert re.search(r"CORP\\jdoe +notice-pending", out)
    assert "mail to jdoe@corp.example: Qlik Sense: your Professional license was released" in out
    assert "butler reinstate 'CORP\\jdoe' -> professional allocation" in out


def test_without_the_devtools_the_demo_command_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """As in Lambda, where the layer holds butler but not the demo (devtools/butler_dev)."""
    monkeypatch.setitem(sys.modules, "butler_dev", None)
    monkeypatch.setitem(sys.modules, "butler_dev.demo", None)
    assert main(["demo"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "make demo" in err and "Traceback" not in err
