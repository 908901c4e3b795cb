"""The HTML license report in a real headless Chromium (Debian's ``chromium``; ``make test`` installs it).

The page must render without a single console message (it has no scripts, and its Content-Security-Policy would
report anything it blocked), the screenshot is saved under the test's temporary folder, and the DOM Chromium
built holds every section and chart. The harness itself is proven to see errors on a deliberately broken page.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from butler.report import Candidate, MonthRow, ReportData, Savings, SweepRow, TypeUsage, render
from tests.support.chromium import console_messages, dump_dom, render_page, require_chromium

SWEEP_DAYS = (14, 30, 45, 60, 90, 120, 180)
HEADINGS = (
    "Utilization",
    "Releases and returns per month",
    "Savings",
    "Candidates of the next run",
    "Protection rules at work",
    "What-if: inactivity thresholds",
)


def realistic_report() -> ReportData:
    """A site of a few hundred users: two access types and Analyzer Capacity, a year of releases, 30 candidates,
    the protection rules at work and a sweep of seven thresholds."""
    rng = random.Random(13)
    months = [f"2025-{m:02d}" for m in range(12, 13)] + [f"2026-{m:02d}" for m in range(1, 12)]
    monthly = []
    for month in months:
        released_p = rng.randint(2, 14)
        released_a = rng.randint(5, 30)
        monthly.append(MonthRow(month, "professional", released_p, rng.randint(0, released_p // 3)))
        monthly.append(MonthRow(month, "analyzer", released_a, rng.randint(0, released_a // 4)))
    actions = ["would-release"] * 6 + ["protected", "deferred", "notice-pending"]
    reasons = {
        "would-release": "inactive past licenseManagement.release.{t}.inactivityDays",
        "protected": "exclusions.tags: VIP-User",
        "deferred": "licenseManagement.maxReleasesPerRun",
        "notice-pending": "notifications.warnDaysBefore: warned 2026-10-28",
    }
    candidates = []
    for i in range(30):
        license_type = "professional" if i % 3 == 0 else "analyzer"
        action = actions[i % len(actions)]
        never = i % 7 == 3
        candidates.append(Candidate(
            user=f"CORP\\user{i:03d}",
            license_type=license_type,
            days_inactive=None if never else round(rng.uniform(31, 400), 1),
            never_used=never,
            action=action,
            reason=reasons[action].format(t=license_type),
        ))
    sweep = []
    for license_type, allocated, price in (("professional", 182, 40.0), ("analyzer", 410, 10.0)):
        for days in SWEEP_DAYS:
            would = int(allocated * 0.55 * (30 / (days + 16)))
            sweep.append(SweepRow(days, license_type, would, int(would * 0.15),
                                  round(would / allocated * 100, 1), would * price))
    return ReportData(
        site="qlik.corp.example",
        generated_at=datetime(2026, 11, 4, 7, 30, tzinfo=UTC),
        dry_run_note="Dry run: licenseManagement.dryRun is true, nothing is released.",
        utilization=[
            TypeUsage("professional", 200, 182, 18, 91.0),
            TypeUsage("analyzer", 500, 410, 90, 82.0),
            TypeUsage("analyzerCapacity", 6000, 1220, 4780, 20.3),
        ],
        monthly=monthly,
        savings=Savings({"professional": 7280.0, "analyzer": 4100.0}, {"professional": 1240.0, "analyzer": 650.0}),
        candidates=candidates,
        protections={
            "exclusions.tags: VIP-User": 7,
            "exclusions.customProperties: Department=Finance": 4,
            "exclusions.users: CORP\\ceo": 1,
            "quarantine.gracePeriod": 3,
            "hold: until 2026-12-31 (audit season)": 2,
        },
        sweep=sweep,
        return_rate={"professional": 12.5, "analyzer": 7.1},
        recommendation={"professional": 60, "analyzer": 45},
    )


@pytest.fixture(scope="module")
def chromium() -> None:
    require_chromium()  # a clear failure, not a skip: `make test` installs it


@pytest.mark.usefixtures("chromium")
def test_the_report_renders_without_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(realistic_report()), encoding="utf-8")
    screenshot = tmp_path / "report.png"

    errors = render_page(page, screenshot, width=1280, height=4200)

    assert errors == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000


@pytest.mark.usefixtures("chromium")
def test_chromium_builds_every_section_and_chart(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(realistic_report()), encoding="utf-8")

    dom = dump_dom(page)

    headings = re.findall(r"<h2>(.*?)</h2>", dom)
    assert headings == list(HEADINGS)
    assert dom.count("<svg") == 4  # utilization, released/returned for two types, the sweep
    assert dom.count("<polyline") == 2  # one sweep line per type
    assert "<script" not in dom.lower()
    assert dom.count('<tr><td class="n">') == 30  # every candidate row, numbered
    assert "never used" in dom
    assert "exclusions.tags: VIP-User" in dom
    assert 'Content-Security-Policy' in dom


@pytest.mark.usefixtures("chromium")
def test_the_harness_sees_a_broken_page(tmp_path: Path) -> None:
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    blocked = tmp_path / "blocked.html"
    blocked.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
        f'content="{csp}"><title>x</title></head><body><p>x</p><script>document.title = "ran"</script></body></html>',
        encoding="utf-8",
    )
    logged = tmp_path / "logged.html"
    logged.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body><p>x</p>'
        '<script>console.error("deliberate\\nfailure"); missingFunction();</script></body></html>',
        encoding="utf-8",
    )

    csp_errors = render_page(blocked, tmp_path / "blocked.png", width=400, height=300)
    script_errors = render_page(logged, tmp_path / "logged.png", width=400, height=300)

    assert len(csp_errors) == 1
    assert "Content Security Policy" in csp_errors[0]
    assert script_errors[0].startswith("deliberate\nfailure (file://")
    assert "Uncaught ReferenceError: missingFunction is not defined" in script_errors[1]
    assert len(script_errors) == 2


def test_console_lines_are_parsed_in_both_spellings() -> None:
    stderr = (
        "[1:1:1204/220256.1:ERROR:dbus/bus.cc:405] Failed to connect to the bus\n"
        '[1:1:1204/220256.2:INFO:CONSOLE:1] "new style", source: file:///a.html (1)\n'
        '[1:1:1204/220256.3:ERROR:CONSOLE(7)] "old style\nsecond line", source: file:///a.html (7)\n'
        "[1:1:1204/220256.4:WARNING:ui/base/idle/idle_linux.cc:111] no screensaver\n"
    )
    assert console_messages(stderr) == [
        "new style (file:///a.html:1)",
        "old style\nsecond line (file:///a.html:7)",
    ]
