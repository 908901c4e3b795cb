"""The HTML license report as text: self-contained, escaped, capped, and sensible when there is no data."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser

from butler.report import (
    CONTENT_SECURITY_POLICY,
    MAX_CANDIDATE_ROWS,
    Candidate,
    MonthRow,
    ReportData,
    Savings,
    SweepRow,
    TypeUsage,
    monthly_svg,
    render,
    sweep_svg,
    utilization_svg,
)
from tests.integration.test_report_chromium import HEADINGS, realistic_report

NOW = datetime(2026, 11, 4, 7, 30, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source", "track", "embed"}
SVG_EMPTY = {"rect", "line", "polyline", "circle", "path"}


def empty() -> ReportData:
    return ReportData(site="qlik.corp.example", generated_at=NOW)


def candidates(n: int) -> list[Candidate]:
    return [Candidate(f"CORP\\u{i:05d}", "analyzer", float(i % 997) + 0.5, False, "would-release", "idle")
            for i in range(n)]


class _Balance(HTMLParser):
    """Every element closed in order (void HTML elements aside; SVG shapes may be self-closed)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID | SVG_EMPTY:
            self.problems.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def assert_well_formed(page: str) -> None:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.problems == []
    assert parser.stack == []


def rows_of(page: str, table_class: str) -> list[str]:
    table = re.search(rf'<table class="{table_class}">.*?</table>', page, re.S)
    assert table is not None
    return re.findall(r"<tr[ >].*?</tr>", table.group(0).split("<tbody>", 1)[1], re.S)


def test_the_page_is_self_contained_and_script_free() -> None:
    page = render(realistic_report())
    assert page.startswith("<!DOCTYPE html>\n")
    assert '<meta charset="utf-8">' in page
    assert f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">' in page
    assert CONTENT_SECURITY_POLICY == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert "<style>" in page
    lowered = page.lower()
    assert "<script" not in lowered
    for fetch in ("src=", "url(", "@import", "<link", "<iframe", "<object", "http-equiv=\"refresh\""):
        assert fetch not in lowered
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("#") for h in hrefs)  # only the in-page navigation
    assert_well_formed(page)


def test_every_section_has_its_heading_and_every_chart_its_svg() -> None:
    page = render(realistic_report())
    assert re.findall(r"<h2>(.*?)</h2>", page) == [h.replace("'", "&#x27;") for h in HEADINGS]
    assert page.count("<svg") == 4  # utilization, released/returned per type (2), the sweep
    assert page.count('<svg class="chart"') == 4
    assert 'aria-label="Utilization per license type' in page
    assert 'aria-label="Professional: allocations released and returned per month"' in page
    assert 'aria-label="Analyzer: allocations released and returned per month"' in page
    assert 'aria-label="What-if: allocations a run would release per inactivity threshold"' in page


def test_user_supplied_text_is_escaped_everywhere() -> None:
    data = replace(
        realistic_report(),
        site=XSS,
        dry_run_note=XSS,
        candidates=[Candidate(XSS, XSS, 90.0, False, XSS, XSS), Candidate('CORP\\"quoted"', "analyzer", 40.0, False,
                                                                           "would-release", "a & b")],
        protections={XSS: 3, "exclusions.tags: <b>VIP</b>": 1},
        utilization=[TypeUsage(XSS, 10, 5, 5, None)],
        monthly=[MonthRow("2026-10", XSS, 3, 1)],
        sweep=[SweepRow(30, XSS, 4, 1, 40.0, None)],
        return_rate={XSS: 25.0},
        recommendation={XSS: 30},
        savings=Savings({XSS: 10.0}, {XSS: 2.5}),
    )
    page = render(data)
    assert "<script" not in page.lower()
    assert "<b>VIP</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "CORP\\&quot;quoted&quot;" in page
    assert "a &amp; b" in page
    assert_well_formed(page)


def test_empty_data_says_no_data_yet() -> None:
    page = render(empty())
    assert re.findall(r"<h2>(.*?)</h2>", page) == [h.replace("'", "&#x27;") for h in HEADINGS]
    assert "<svg" not in page
    assert page.count('class="empty"') == 6
    assert "No data yet." in page
    assert "No candidates" in page
    assert "No prices configured (licenseMonitoring.costs)" in page
    assert "<script" not in page.lower()
    assert_well_formed(page)


def test_empty_parts_and_missing_numbers_render() -> None:
    data = replace(
        empty(),
        utilization=[TypeUsage("professional", 0, 0, 0, None), TypeUsage("analyzer", 100, 120, 0, None)],
        savings=Savings({}, {}),
        sweep=[SweepRow(30, "professional", 0, 0, None, None)],
        return_rate={"professional": None},
        recommendation={"professional": None},
        protections={"exclusions.tags: Idle": 0},
        candidates=[Candidate("CORP\\x", "analyzer", float("nan"), False, "keep", "")],
    )
    page = render(data)
    assert "no licenses of this type" in page
    assert "120 of 100 · 120.0%" in page  # over-allocated: the bar is full, the number tells
    assert "no suggestion yet" in page
    assert "No protection rule holds" in page
    assert "—" in page
    assert_well_formed(page)


def test_candidates_are_capped_with_a_count_line_and_the_page_stays_small() -> None:
    page = render(replace(empty(), candidates=candidates(10_000)))
    rows = rows_of(page, "candidates")
    assert len(rows) == MAX_CANDIDATE_ROWS + 1
    assert "… and 9,500 more not shown" in rows[-1]
    assert 'colspan="6"' in rows[-1]
    assert "10,000 allocations (10,000 would-release)" in page
    assert len(page.encode("utf-8")) < 2_000_000
    days = [float(re.findall(r'<td class="n">([\d,.]+)</td>', r)[1].replace(",", "")) for r in rows[:-1]]
    assert days == sorted(days, reverse=True)
    assert days[0] == 996.5


def test_exactly_the_cap_shows_no_count_line() -> None:
    page = render(replace(empty(), candidates=candidates(MAX_CANDIDATE_ROWS)))
    assert len(rows_of(page, "candidates")) == MAX_CANDIDATE_ROWS
    assert "more not shown" not in page


def test_never_used_allocations_say_so_and_come_first() -> None:
    data = replace(empty(), candidates=[
        Candidate("CORP\\recent", "professional", 31.0, False, "would-release", "idle"),
        Candidate("CORP\\ghost", "analyzer", None, True, "would-release", "never used since allocation"),
        Candidate("CORP\\old", "professional", 300.25, False, "protected", "exclusions.tags: VIP-User"),
        Candidate("CORP\\unknown", "professional", None, False, "deferred", "licenseManagement.maxReleasesPerRun"),
    ])
    rows = rows_of(render(data), "candidates")
    users = [re.search(r'<td class="user">(.*?)</td>', r).group(1) for r in rows]  # type: ignore[union-attr]
    assert users == ["CORP\\ghost", "CORP\\old", "CORP\\recent", "CORP\\unknown"]
    assert '<td class="n never">never used</td>' in rows[0]
    assert "300.2" in rows[1] or "300.3" in rows[1]
    assert '<span class="pill act-protected">protected</span>' in rows[1]
    assert '<td class="n">—</td>' in rows[3]


def test_protection_rules_are_listed_most_used_first() -> None:
    page = render(replace(empty(), protections={"quarantine.gracePeriod": 2, "exclusions.tags: VIP-User": 9,
                                                "exclusions.users: CORP\\ceo": 2}))
    rules = re.findall(r"<code>(.*?)</code>", page)
    assert rules == ["exclusions.tags: VIP-User", "exclusions.users: CORP\\ceo", "quarantine.gracePeriod"]
    assert 'style="width:100.0%"' in page


def test_savings_table_totals_per_month_and_year() -> None:
    page = render(replace(empty(), savings=Savings({"professional": 7280.0, "analyzer": 4100.0},
                                                   {"professional": 1240.0, "analyzer": 650.0})))
    total = re.search(r'<tr class="total">.*?</tr>', page, re.S)
    assert total is not None
    assert re.findall(r'<td class="n">(.*?)</td>', total.group(0)) == ["11,380.00", "1,890.00", "22,680.00"]
    assert "1,890.00" in page.split("</header>", 1)[1].split("<section", 1)[0]  # the summary card


def test_charts_are_svg_built_from_the_numbers() -> None:
    util = utilization_svg([TypeUsage("professional", 200, 182, 18, 91.0), TypeUsage("analyzer", 500, 100, 400)])
    assert util.startswith("<svg") and util.endswith("</svg>")
    assert util.count('class="track"') == 2
    assert 'class="fill-high"' in util and 'class="fill-ok"' in util
    assert "100 of 500 · 20.0%" in util  # the percentage computed when not given

    months = [MonthRow(f"2026-{m:02d}", "professional", m, m // 3) for m in range(1, 13)]
    bars = monthly_svg(months, "professional")
    assert bars.count('class="bar-released"') == 12
    assert bars.count('class="bar-returned"') == 12
    assert ">Jan 26<" in bars and ">Dec 26<" in bars
    assert monthly_svg(months, "analyzer") == ""

    sweep = [SweepRow(d, t, 100 // (i + 1), 1) for t in ("professional", "analyzer")
             for i, d in enumerate((14, 30, 45, 60, 90, 120, 180))]
    line = sweep_svg(sweep, {"professional": 60, "analyzer": None})
    assert line.count("<polyline") == 2
    assert line.count("<circle") == 14
    assert "suggested: 60 days" in line
    assert ">180 d<" in line
    assert sweep_svg([]) == "" and utilization_svg([]) == ""


def test_chart_axes_use_whole_steps() -> None:
    bars = monthly_svg([MonthRow("2026-01", "analyzer", 25, 3)], "analyzer")
    ticks = re.findall(r'class="axis">(\d[\d,]*)</text>', bars)
    assert ticks == ["0", "10", "20", "30"]


def test_the_input_is_json_friendly() -> None:
    data = realistic_report()
    document = data.to_json()
    text = json.dumps(document)
    assert ReportData.from_json(json.loads(text)) == data
    assert document["generatedAt"] == "2026-11-04T07:30:00+00:00"
    assert set(document["candidates"][0]) == {"user", "licenseType", "daysInactive", "neverUsed", "action", "reason"}
    assert ReportData.from_json(empty().to_json()) == empty()


def test_a_naive_time_and_the_dry_run_banner() -> None:
    page = render(replace(empty(), generated_at=datetime(2026, 1, 2, 3, 4), dry_run_note="Dry run"))
    assert "Generated 2026-01-02 03:04 by" in page
    assert '<p class="banner">Dry run</p>' in page
    assert "banner" not in render(empty()).split("<main>", 1)[1]
