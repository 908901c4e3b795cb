"""The license report: one self-contained HTML page an administrator can read (``report --out FILE.html``,
``GET /v4/licenses/report``).

The caller gathers the data (QRS, the audit store, the what-if sweep) into a :class:`ReportData`; :func:`render`
turns it into a single HTML5 page: inline CSS, charts as inline SVG, no scripts and nothing fetched from anywhere
(a strict Content-Security-Policy meta says so to the browser). Every text that comes from the data is escaped.
Empty data renders as "no data yet", never as an error.

The dataclasses are JSON-friendly: :meth:`ReportData.to_json` gives camelCase keys (as the rest of the API) and
:meth:`ReportData.from_json` reads them back.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "MAX_CANDIDATE_ROWS",
    "Candidate",
    "MonthRow",
    "ReportData",
    "Savings",
    "SweepRow",
    "TypeUsage",
    "monthly_svg",
    "render",
    "sweep_svg",
    "utilization_svg",
]

#: The page's policy: no scripts, no fetches; only its own inline styles and data: images.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
#: The candidates table shows at most this many rows, then a "… and N more" line.
MAX_CANDIDATE_ROWS = 500


# --- Input ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeUsage:
    """One license type now: ``professional``, ``analyzer`` or ``analyzerCapacity`` (in minutes)."""

    license_type: str
    total: int
    allocated: int
    available: int
    utilization_percent: float | None = None  # allocated / total in percent; None: computed here (or no total)


@dataclass(frozen=True)
class MonthRow:
    """Releases of one type in one month, and how many of those users came back (a new allocation)."""

    month: str  # YYYY-MM
    license_type: str
    released: int
    returned: int


@dataclass(frozen=True)
class Savings:
    """Per type, currency-free (the currency of ``licenseMonitoring.costs``): what the current allocations cost
    a month, and what the releases save a month."""

    monthly_cost_by_type: dict[str, float] = field(default_factory=dict)
    monthly_savings_by_type: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """One decision of the next run (typically would-release, protected, deferred, notice-pending)."""

    user: str  # DIRECTORY\userid
    license_type: str
    days_inactive: float | None
    never_used: bool
    action: str
    reason: str = ""


@dataclass(frozen=True)
class SweepRow:
    """What a dry run with an inactivity threshold of ``days`` would do for one type."""

    days: int
    license_type: str
    would_release: int
    protected: int
    share_freed_percent: float | None = None  # would_release / allocated, in percent
    monthly_saving: float | None = None


@dataclass(frozen=True)
class ReportData:
    site: str
    generated_at: datetime
    dry_run_note: str | None = None  # shown as a banner, e.g. "Dry run: nothing is released"
    utilization: list[TypeUsage] = field(default_factory=list)
    monthly: list[MonthRow] = field(default_factory=list)
    savings: Savings | None = None
    candidates: list[Candidate] = field(default_factory=list)
    protections: dict[str, int] = field(default_factory=dict)  # rule key path -> allocations it holds
    sweep: list[SweepRow] = field(default_factory=list)
    return_rate: dict[str, float | None] = field(default_factory=dict)  # type -> percent of releases returned
    recommendation: dict[str, int | None] = field(default_factory=dict)  # type -> suggested threshold in days

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, camelCase keys (license types and rule keys as given)."""
        return {
            "site": self.site,
            "generatedAt": self.generated_at.isoformat(),
            "dryRunNote": self.dry_run_note,
            "utilization": [
                {"licenseType": u.license_type, "total": u.total, "allocated": u.allocated,
                 "available": u.available, "utilizationPercent": u.utilization_percent}
                for u in self.utilization
            ],
            "monthly": [
                {"month": m.month, "licenseType": m.license_type, "released": m.released, "returned": m.returned}
                for m in self.monthly
            ],
            "savings": None if self.savings is None else {
                "monthlyCostByType": dict(self.savings.monthly_cost_by_type),
                "monthlySavingsByType": dict(self.savings.monthly_savings_by_type),
            },
            "candidates": [
                {"user": c.user, "licenseType": c.license_type, "daysInactive": c.days_inactive,
                 "neverUsed": c.never_used, "action": c.action, "reason": c.reason}
                for c in self.candidates
            ],
            "protections": dict(self.protections),
            "sweep": [
                {"days": s.days, "licenseType": s.license_type, "wouldRelease": s.would_release,
                 "protected": s.protected, "shareFreedPercent": s.share_freed_percent,
                 "monthlySaving": s.monthly_saving}
                for s in self.sweep
            ],
            "returnRate": dict(self.return_rate),
            "recommendation": dict(self.recommendation),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportData:
        """The inverse of :meth:`to_json`."""
        savings = data.get("savings")
        return cls(
            site=str(data["site"]),
            generated_at=datetime.fromisoformat(str(data["generatedAt"])),
            dry_run_note=data.get("dryRunNote"),
            utilization=[
                TypeUsage(u["licenseType"], int(u["total"]), int(u["allocated"]), int(u["available"]),
                          _opt_float(u.get("utilizationPercent")))
                for u in data.get("utilization") or []
            ],
            monthly=[
                MonthRow(m["month"], m["licenseType"], int(m["released"]), int(m["returned"]))
                for m in data.get("monthly") or []
            ],
            savings=None if savings is None else Savings(
                {k: float(v) for k, v in (savings.get("monthlyCostByType") or {}).items()},
                {k: float(v) for k, v in (savings.get("monthlySavingsByType") or {}).items()},
            ),
            candidates=[
                Candidate(c["user"], c["licenseType"], _opt_float(c.get("daysInactive")), bool(c.get("neverUsed")),
                          c["action"], c.get("reason") or "")
                for c in data.get("candidates") or []
            ],
            protections={str(k): int(v) for k, v in (data.get("protections") or {}).items()},
            sweep=[
                SweepRow(int(s["days"]), s["licenseType"], int(s["wouldRelease"]), int(s["protected"]),
                         _opt_float(s.get("shareFreedPercent")), _opt_float(s.get("monthlySaving")))
                for s in data.get("sweep") or []
            ],
            return_rate={str(k): _opt_float(v) for k, v in (data.get("returnRate") or {}).items()},
            recommendation={str(k): None if v is None else int(v)
                            for k, v in (data.get("recommendation") or {}).items()},
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- Formatting -------------------------------------------------------------------------------------------------

_TYPE_LABELS = {
    "professional": "Professional",
    "analyzer": "Analyzer",
    "analyzerCapacity": "Analyzer Capacity (minutes)",
    "analyzer_capacity": "Analyzer Capacity (minutes)",
}
_TYPE_ORDER = ["professional", "analyzer", "analyzerCapacity", "analyzer_capacity"]
_TYPE_COLORS = {"professional": "#2563eb", "analyzer": "#0d9488", "analyzerCapacity": "#7c3aed",
                "analyzer_capacity": "#7c3aed"}
_PALETTE = ["#2563eb", "#0d9488", "#7c3aed", "#db2777", "#65a30d", "#ea580c", "#0891b2", "#4b5563"]
_RELEASED_COLOR = "#2563eb"
_RETURNED_COLOR = "#f59e0b"
_ACTION_CLASSES = {
    "release": "act-release", "would-release": "act-release", "deferred": "act-deferred",
    "protected": "act-protected", "keep": "act-keep", "skip": "act-skip", "failed": "act-failed",
    "warn": "act-warn", "would-warn": "act-warn", "notice-pending": "act-warn",
}


def _e(value: object) -> str:
    """Escaped for HTML text and attribute values (quotes included)."""
    return escape(str(value), quote=True)


def _int(value: int | float) -> str:
    return f"{round(value):,}"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{digits}f}"


def _money(value: float | None) -> str:
    return _num(value, 2)


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1f}%"


def _type_label(license_type: str) -> str:
    return _TYPE_LABELS.get(license_type, license_type)


def _ordered_types(types: Iterable[str]) -> list[str]:
    unique = set(types)
    known = [t for t in _TYPE_ORDER if t in unique]
    return known + sorted(unique - set(known))


def _type_colors(types: Sequence[str]) -> dict[str, str]:
    colors: dict[str, str] = {}
    spare = [c for c in _PALETTE if c not in _TYPE_COLORS.values()]
    for index, license_type in enumerate(types):
        colors[license_type] = _TYPE_COLORS.get(license_type) or spare[index % len(spare)]
    return colors


def _month_label(month: str) -> str:
    try:
        year, number = (int(part) for part in month.split("-", 1))
        return f"{calendar.month_abbr[number]} {year % 100:02d}"
    except (ValueError, IndexError):
        return month


def _utilization(usage: TypeUsage) -> float | None:
    if usage.utilization_percent is not None:
        return usage.utilization_percent
    return usage.allocated / usage.total * 100 if usage.total > 0 else None


def _axis(peak: float, steps: int = 4) -> tuple[float, list[float]]:
    """A count axis from 0 to at least ``peak``: its top and its ticks, whole 1/2/5 x 10^k steps apart."""
    raw = max(peak, 1.0) / steps
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(float(m * magnitude) for m in (1, 2, 5, 10) if raw <= m * magnitude)
    step = max(step, 1.0)
    count = max(1, math.ceil(max(peak, 1.0) / step))
    return step * count, [step * i for i in range(count + 1)]


def _svg_open(width: int, height: int, label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{_e(label)}" xmlns="http://www.w3.org/2000/svg"><title>{_e(label)}</title>')


def _text(x: float, y: float, content: str, *, anchor: str = "start", cls: str = "", extra: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}{extra}>{_e(content)}</text>'


def _empty(message: str = "No data yet.") -> str:
    return f'<p class="empty">{_e(message)}</p>'


# --- Charts -----------------------------------------------------------------------------------------------------


def utilization_svg(usages: Sequence[TypeUsage]) -> str:
    """A horizontal bar per type: allocated (filled) against total (the track)."""
    if not usages:
        return ""
    width, row_h, top = 760, 46, 8
    label_w, bar_x, bar_w = 226, 236, 340
    height = top + row_h * len(usages) + 4
    parts = [_svg_open(width, height, "Utilization per license type: allocated against total")]
    for index, usage in enumerate(usages):
        y = top + index * row_h
        percent = _utilization(usage)
        share = min(max(usage.allocated / usage.total, 0.0), 1.0) if usage.total > 0 else 0.0
        level = "ok" if percent is None or percent < 85 else ("high" if percent < 98 else "full")
        parts.append(_text(label_w, y + 21, _type_label(usage.license_type), anchor="end", cls="lbl"))
        parts.append(f'<rect class="track" x="{bar_x}" y="{y + 6}" width="{bar_w}" height="22" rx="4"/>')
        if share > 0:
            parts.append(f'<rect class="fill-{level}" x="{bar_x}" y="{y + 6}" width="{bar_w * share:.1f}" '
                         f'height="22" rx="4"/>')
        if usage.total > 0:
            detail = f"{_int(usage.allocated)} of {_int(usage.total)} · {_pct(percent)}"
        else:
            detail = f"{_int(usage.allocated)} allocated · no licenses of this type"
        parts.append(_text(bar_x + bar_w + 10, y + 21, detail, cls=f"val val-{level}"))
        parts.append(_text(bar_x, y + 42, f"{_int(usage.available)} available", cls="sub"))
    parts.append("</svg>")
    return "".join(parts)


def monthly_svg(rows: Sequence[MonthRow], license_type: str) -> str:
    """Grouped bars per month for one type: released next to returned."""
    mine = sorted((r for r in rows if r.license_type == license_type), key=lambda r: r.month)
    if not mine:
        return ""
    by_month: dict[str, list[int]] = {}
    for row in mine:
        counts = by_month.setdefault(row.month, [0, 0])
        counts[0] += row.released
        counts[1] += row.returned
    months = sorted(by_month)
    width, height = 760, 250
    left, right, top, bottom = 48, 12, 30, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak, ticks = _axis(max(max(c) for c in by_month.values()))
    label = f"{_type_label(license_type)}: allocations released and returned per month"
    parts = [_svg_open(width, height, label)]
    parts.append(f'<rect class="legend-released" x="{left}" y="6" width="12" height="12" rx="2"/>')
    parts.append(_text(left + 17, 16, "released", cls="sub"))
    parts.append(f'<rect class="legend-returned" x="{left + 90}" y="6" width="12" height="12" rx="2"/>')
    parts.append(_text(left + 107, 16, "returned (user came back)", cls="sub"))
    for tick in ticks:
        y = top + plot_h - tick / peak * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(_text(left - 6, y + 4, _int(tick), anchor="end", cls="axis"))
    group = plot_w / len(months)
    bar = min(group * 0.36, 28.0)
    for index, month in enumerate(months):
        released, returned = by_month[month]
        center = left + group * (index + 0.5)
        for offset, value, cls in ((-bar - 1, released, "bar-released"), (1, returned, "bar-returned")):
            h = value / peak * plot_h
            x = center + offset
            parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}"><title>{_e(f"{month}: {_int(value)} {cls[4:]}")}</title></rect>')
            if value:
                parts.append(_text(x + bar / 2, top + plot_h - h - 3, _int(value), anchor="middle", cls="num"))
        parts.append(_text(center, height - bottom + 16, _month_label(month), anchor="middle", cls="axis"))
    parts.append(f'<line class="base" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    return "".join(parts)


def sweep_svg(rows: Sequence[SweepRow], recommendation: Mapping[str, int | None] | None = None) -> str:
    """Lines per type: how many allocations a run would release at each inactivity threshold (days)."""
    if not rows:
        return ""
    recommendation = recommendation or {}
    types = _ordered_types(r.license_type for r in rows)
    colors = _type_colors(types)
    days = sorted({r.days for r in rows})
    width, height = 760, 270
    left, right, top, bottom = 48, 20, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = min(days), max(days)
    span = hi - lo

    def x_of(day: float) -> float:
        return left + plot_w / 2 if span == 0 else left + (day - lo) / span * plot_w

    peak, ticks = _axis(max(r.would_release for r in rows))
    highest: dict[int, int] = {}
    for row in rows:
        highest[row.days] = max(highest.get(row.days, 0), row.would_release)
    parts = [_svg_open(width, height, "What-if: allocations a run would release per inactivity threshold")]
    legend_x = float(left)
    for license_type in types:
        parts.append(f'<rect x="{legend_x:.1f}" y="8" width="12" height="12" rx="2" fill="{colors[license_type]}"/>')
        name = _type_label(license_type)
        parts.append(_text(legend_x + 17, 18, name, cls="sub"))
        legend_x += 40 + 7 * len(name)
    for tick in ticks:
        y = top + plot_h - tick / peak * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(_text(left - 6, y + 4, _int(tick), anchor="end", cls="axis"))
    for day in days:
        parts.append(f'<line class="tick" x1="{x_of(day):.1f}" x2="{x_of(day):.1f}" y1="{top + plot_h}" '
                     f'y2="{top + plot_h + 5}"/>')
        parts.append(_text(x_of(day), top + plot_h + 18, f"{day} d", anchor="middle", cls="axis"))
    parts.append(_text(left + plot_w / 2, height - 4, "inactivity threshold (days)", anchor="middle", cls="sub"))
    for index, license_type in enumerate(types):
        color = colors[license_type]
        suggested = recommendation.get(license_type)
        if suggested is not None and lo <= suggested <= hi:
            x = x_of(suggested)
            parts.append(f'<line class="rec" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
                         f'stroke="{color}"/>')
            near_end = x > width - right - 130
            parts.append(_text(x - 5 if near_end else x + 5, top + 10 + 15 * index, f"suggested: {suggested} days",
                               anchor="end" if near_end else "start", cls="tag", extra=f' fill="{color}"'))
        points = sorted((r for r in rows if r.license_type == license_type), key=lambda r: r.days)
        coords = [(x_of(p.days), top + plot_h - p.would_release / peak * plot_h, p) for p in points]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            parts.append(f'<polyline class="line" points="{path}" stroke="{color}"/>')
        for x, y, point in coords:
            tip = f"{_type_label(license_type)}, {point.days} days: {_int(point.would_release)} would be released"
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{_e(tip)}</title></circle>')
            # The highest value at a threshold is labelled above its point, the others below: no overlaps.
            above = point.would_release >= highest[point.days]
            parts.append(_text(x, y - 8 if above else y + 16, _int(point.would_release), anchor="middle",
                               cls="tag", extra=f' fill="{color}"'))
    parts.append(f'<line class="base" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    return "".join(parts)


# --- Sections ---------------------------------------------------------------------------------------------------


_N = ' class="n"'
_REC = ' class="rec"'


def _section(anchor: str, title: str, body: str, intro: str = "") -> str:
    lead = f'<p class="intro">{_e(intro)}</p>' if intro else ""
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{lead}{body}</section>'


def _table(head: Sequence[str], rows: Iterable[str], *, numeric: Sequence[int] = (), cls: str = "") -> str:
    cells = "".join(f'<th{_N if i in numeric else ""} scope="col">{_e(h)}</th>' for i, h in enumerate(head))
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _summary(data: ReportData) -> str:
    cards: list[str] = []
    for usage in data.utilization:
        percent = _utilization(usage)
        cards.append(
            f'<div class="card"><div class="k">{_e(_type_label(usage.license_type))}</div>'
            f'<div class="v">{_e(_pct(percent))}</div>'
            f'<div class="s">{_e(_int(usage.allocated))} of {_e(_int(usage.total))} allocated, '
            f'{_e(_int(usage.available))} available</div></div>')
    releasing = sum(1 for c in data.candidates if c.action in ("release", "would-release"))
    cards.append(
        f'<div class="card"><div class="k">Next run</div><div class="v">{_e(_int(releasing))}</div>'
        f'<div class="s">to release, of {_e(_int(len(data.candidates)))} listed candidates</div></div>')
    if data.savings is not None and data.savings.monthly_savings_by_type:
        total = sum(data.savings.monthly_savings_by_type.values())
        cards.append(
            f'<div class="card"><div class="k">Savings per month</div><div class="v">{_e(_money(total))}</div>'
            f'<div class="s">{_e(_money(total * 12))} a year</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _utilization_section(data: ReportData) -> str:
    if not data.utilization:
        return _section("utilization", "Utilization", _empty())
    usages = sorted(data.utilization, key=lambda u: _ordered_types(x.license_type for x in data.utilization)
                    .index(u.license_type))
    rows = [
        f'<tr><th scope="row">{_e(_type_label(u.license_type))}</th><td class="n">{_e(_int(u.total))}</td>'
        f'<td class="n">{_e(_int(u.allocated))}</td><td class="n">{_e(_int(u.available))}</td>'
        f'<td class="n">{_e(_pct(_utilization(u)))}</td></tr>'
        for u in usages
    ]
    body = (f'<figure>{utilization_svg(usages)}</figure>'
            + _table(["License type", "Total", "Allocated", "Available", "Utilization"], rows, numeric=(1, 2, 3, 4)))
    intro = ("Allocated access licenses against the licenses owned (Analyzer Capacity: minutes this period). "
             "Amber from 85%, red from 98%.")
    return _section("utilization", "Utilization", body, intro)


def _monthly_section(data: ReportData) -> str:
    if not data.monthly:
        return _section("monthly", "Releases and returns per month",
                        _empty("No releases yet: nothing has been released by this tool."))
    types = _ordered_types(r.license_type for r in data.monthly)
    charts = "".join(
        f'<figure><figcaption>{_e(_type_label(t))}</figcaption>{monthly_svg(data.monthly, t)}</figure>' for t in types
    )
    counts: dict[tuple[str, str], list[int]] = {}
    for row in data.monthly:
        pair = counts.setdefault((row.month, row.license_type), [0, 0])
        pair[0] += row.released
        pair[1] += row.returned
    months = sorted({r.month for r in data.monthly})
    head = ["Month"] + [f"{_type_label(t)} {what}" for t in types for what in ("released", "returned")]
    rows: list[str] = []
    totals = [0] * (2 * len(types))
    for month in months:
        cells: list[str] = []
        for i, license_type in enumerate(types):
            released, returned = counts.get((month, license_type), [0, 0])
            totals[2 * i] += released
            totals[2 * i + 1] += returned
            cells.append(f'<td class="n">{_e(_int(released))}</td><td class="n">{_e(_int(returned))}</td>')
        rows.append(f'<tr><th scope="row">{_e(month)}</th>{"".join(cells)}</tr>')
    rows.append('<tr class="total"><th scope="row">Total</th>'
                + "".join(f'<td class="n">{_e(_int(t))}</td>' for t in totals) + "</tr>")
    table = _table(head, rows, numeric=range(1, len(head)))
    rates = ""
    if data.return_rate:
        items = "".join(
            f"<li><strong>{_e(_type_label(t))}</strong>: "
            f"{_e(_pct(data.return_rate[t])) if data.return_rate[t] is not None else 'no releases yet'}</li>"
            for t in _ordered_types(data.return_rate)
        )
        rates = (f'<div class="note"><p>Return rate (share of released users who got the same type again; '
                 f'a high rate suggests the threshold is too short):</p><ul>{items}</ul></div>')
    return _section("monthly", "Releases and returns per month", charts + rates + table,
                    "Allocations this tool released, and how many of those users came back for a new allocation.")


def _savings_section(data: ReportData) -> str:
    savings = data.savings
    if savings is None or not (savings.monthly_cost_by_type or savings.monthly_savings_by_type):
        return _section("savings", "Savings",
                        _empty("No prices configured (licenseMonitoring.costs), so no savings are computed."))
    types = _ordered_types([*savings.monthly_cost_by_type, *savings.monthly_savings_by_type])
    rows: list[str] = []
    for license_type in types:
        cost = savings.monthly_cost_by_type.get(license_type)
        saved = savings.monthly_savings_by_type.get(license_type)
        rows.append(
            f'<tr><th scope="row">{_e(_type_label(license_type))}</th><td class="n">{_e(_money(cost))}</td>'
            f'<td class="n">{_e(_money(saved))}</td>'
            f'<td class="n">{_e(_money(None if saved is None else saved * 12))}</td></tr>')
    total_cost = sum(savings.monthly_cost_by_type.values())
    total_saved = sum(savings.monthly_savings_by_type.values())
    rows.append(f'<tr class="total"><th scope="row">Total</th><td class="n">{_e(_money(total_cost))}</td>'
                f'<td class="n">{_e(_money(total_saved))}</td><td class="n">{_e(_money(total_saved * 12))}</td></tr>')
    body = _table(["License type", "Monthly cost of allocations", "Monthly savings", "Yearly savings"], rows,
                  numeric=(1, 2, 3))
    return _section("savings", "Savings", body,
                    "Amounts in the currency of licenseMonitoring.costs (price per allocation and month).")


def _candidate_key(candidate: Candidate) -> tuple[float, str, str]:
    if candidate.days_inactive is not None:
        days = candidate.days_inactive
    else:
        days = math.inf if candidate.never_used else -1.0
    return (-days, candidate.user.casefold(), candidate.license_type)


def _days_cell(candidate: Candidate) -> str:
    if candidate.never_used:
        return '<td class="n never">never used</td>'
    return f'<td class="n">{_e(_num(candidate.days_inactive))}</td>'


def _candidates_section(data: ReportData) -> str:
    title = "Candidates of the next run"
    if not data.candidates:
        return _section("candidates", title, _empty("No candidates: every allocation is in use or protected."))
    ordered = sorted(data.candidates, key=_candidate_key)
    shown = ordered[:MAX_CANDIDATE_ROWS]
    rows = [
        f'<tr><td class="n">{i}</td><td class="user">{_e(c.user)}</td><td>{_e(_type_label(c.license_type))}</td>'
        f'{_days_cell(c)}<td><span class="pill {_ACTION_CLASSES.get(c.action, "act-other")}">{_e(c.action)}</span>'
        f'</td><td class="reason">{_e(c.reason)}</td></tr>'
        for i, c in enumerate(shown, 1)
    ]
    more = len(ordered) - len(shown)
    if more > 0:
        rows.append(f'<tr class="more"><td colspan="6">… and {_e(_int(more))} more not shown '
                    f'(the {_e(_int(MAX_CANDIDATE_ROWS))} longest idle are listed)</td></tr>')
    actions: dict[str, int] = {}
    for candidate in data.candidates:
        actions[candidate.action] = actions.get(candidate.action, 0) + 1
    tally = ", ".join(f"{_int(n)} {a}" for a, n in sorted(actions.items(), key=lambda kv: (-kv[1], kv[0])))
    intro = f"{_int(len(data.candidates))} allocations ({tally}), longest idle first."
    body = _table(["#", "User", "License type", "Days inactive", "Action", "Reason"], rows, numeric=(0, 3),
                  cls="candidates")
    return _section("candidates", title, body, intro)


def _protections_section(data: ReportData) -> str:
    title = "Protection rules at work"
    held = {k: v for k, v in data.protections.items() if v > 0}
    if not held:
        return _section("protections", title, _empty("No protection rule holds any allocation right now."))
    peak = max(held.values())
    rows = [
        f'<tr><td><code>{_e(rule)}</code></td><td class="n">{_e(_int(count))}</td>'
        f'<td class="barcell"><span class="hbar" style="width:{count / peak * 100:.1f}%"></span></td></tr>'
        for rule, count in sorted(held.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    body = _table(["Rule (configuration key: value)", "Allocations held", ""], rows, numeric=(1,), cls="rules")
    return _section("protections", title, body,
                    "Allocations inactive past their threshold that a protection rule keeps, per rule.")


def _sweep_section(data: ReportData) -> str:
    title = "What-if: inactivity thresholds"
    if not data.sweep:
        return _section("sweep", title, _empty())
    types = _ordered_types(r.license_type for r in data.sweep)
    ordered = sorted(data.sweep, key=lambda r: (types.index(r.license_type), r.days))
    rows: list[str] = []
    for row in ordered:
        suggested = data.recommendation.get(row.license_type) == row.days
        mark = ' <span class="pill act-keep">suggested</span>' if suggested else ""
        rows.append(
            f'<tr{_REC if suggested else ""}><td>{_e(_type_label(row.license_type))}</td>'
            f'<td class="n">{_e(row.days)}{mark}</td><td class="n">{_e(_int(row.would_release))}</td>'
            f'<td class="n">{_e(_int(row.protected))}</td><td class="n">{_e(_pct(row.share_freed_percent))}</td>'
            f'<td class="n">{_e(_money(row.monthly_saving))}</td></tr>')
    table = _table(["License type", "Threshold (days)", "Would release", "Protected", "Share freed",
                    "Monthly saving"], rows, numeric=(1, 2, 3, 4, 5))
    recs = ""
    if data.recommendation:
        items = "".join(
            f"<li><strong>{_e(_type_label(t))}</strong>: "
            + (f"{_e(data.recommendation[t])} days" if data.recommendation[t] is not None else "no suggestion yet")
            + "</li>"
            for t in _ordered_types(data.recommendation)
        )
        recs = f'<div class="note"><p>Suggested inactivity thresholds:</p><ul>{items}</ul></div>'
    return _section("sweep", title, f"<figure>{sweep_svg(data.sweep, data.recommendation)}</figure>{recs}{table}",
                    "What a dry run would release now with each inactivity threshold (throttles and notices ignored).")


# --- Page -------------------------------------------------------------------------------------------------------

_CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
header{background:#0f172a;color:#f8fafc;padding:22px 32px}
header h1{margin:0;font-size:24px;font-weight:650}
header .meta{margin:4px 0 0;color:#cbd5e1;font-size:14px}
nav{background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;font-size:14px}
nav a{color:var(--accent);text-decoration:none;margin-right:18px}
main{max-width:1160px;margin:0 auto;padding:20px 32px 40px}
.banner{background:#fef3c7;border:1px solid #f59e0b;color:#78350f;border-radius:8px;padding:10px 14px;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:14px;margin:0 0 20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card .k{color:var(--muted);font-size:13px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:28px;font-weight:650;margin:2px 0}
.card .s{color:var(--muted);font-size:13px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:0 0 20px}
h2{margin:0 0 4px;font-size:19px}
.intro{margin:0 0 12px;color:var(--muted)}
.empty{margin:6px 0;color:var(--muted);font-style:italic}
figure{margin:6px 0 14px}
figcaption{font-weight:600;margin:0 0 2px}
svg.chart{display:block;width:100%;max-width:860px;height:auto;font-size:12px}
svg .lbl{font-size:14px;font-weight:600;fill:var(--ink)}
svg .val{font-size:13px;fill:var(--ink)}
svg .val-high{fill:#b45309;font-weight:600}
svg .val-full{fill:#b91c1c;font-weight:600}
svg .sub{font-size:12px;fill:var(--muted)}
svg .axis{font-size:11px;fill:var(--muted)}
svg .num{font-size:10px;fill:var(--ink)}
svg .tag{font-size:11px;font-weight:600}
svg .tag,svg .num{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg .track{fill:#e5e7eb}
svg .fill-ok{fill:#2563eb}
svg .fill-high{fill:#f59e0b}
svg .fill-full{fill:#dc2626}
svg .grid{stroke:#eef0f3;stroke-width:1}
svg .base,svg .tick{stroke:#9ca3af;stroke-width:1}
svg .bar-released,svg .legend-released{fill:""" + _RELEASED_COLOR + """}
svg .bar-returned,svg .legend-returned{fill:""" + _RETURNED_COLOR + """}
svg .line{fill:none;stroke-width:2.5}
svg .rec{stroke-dasharray:4 4;stroke-width:1.5}
table{border-collapse:collapse;width:100%;font-size:14px;margin:4px 0}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#f1f5f9;font-weight:600;border-bottom:2px solid #cbd5e1;white-space:nowrap}
tbody th{font-weight:600}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total th,tr.total td{font-weight:650;border-top:2px solid #cbd5e1}
tr.more td{color:var(--muted);font-style:italic;text-align:center}
tr.rec td{background:#f0fdf4}
td.never{color:#b45309;font-style:italic}
td.user{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;word-break:break-all}
td.reason{color:#374151;font-size:13px}
table.candidates tbody tr:nth-child(even) td{background:#fafafa}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;background:#f1f5f9;
padding:1px 5px;border-radius:4px}
.barcell{width:40%}
.hbar{display:block;height:12px;background:#7c3aed;border-radius:3px;margin-top:4px}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap}
.act-release{background:#dbeafe;color:#1e40af}
.act-deferred{background:#e0e7ff;color:#3730a3}
.act-protected{background:#ede9fe;color:#5b21b6}
.act-keep{background:#dcfce7;color:#166534}
.act-skip,.act-other{background:#f3f4f6;color:#374151}
.act-failed{background:#fee2e2;color:#991b1b}
.act-warn{background:#fef3c7;color:#92400e}
.note{background:#f8fafc;border-left:4px solid #94a3b8;padding:6px 14px;margin:0 0 14px;font-size:14px}
.note p{margin:4px 0}
.note ul{margin:2px 0 6px;padding-left:20px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 24px}
@media print{
body{background:#fff;font-size:11pt}
header{background:#fff;color:#000;border-bottom:2px solid #000;padding:0 0 8px}
header .meta{color:#333}
nav{display:none}
main{max-width:none;padding:8px 0}
section,.card{border:none;padding:0;break-inside:auto}
section{margin:0 0 16px}
h2,figure,tr{break-inside:avoid}
h2{break-after:avoid}
thead{display:table-header-group}
table.candidates tbody tr:nth-child(even) td{background:none}
}
"""


def _generated(moment: datetime) -> str:
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render(data: ReportData) -> str:
    """The whole report as one self-contained HTML5 page (no scripts, no external resources)."""
    title = f"Qlik Sense license report — {data.site}"
    banner = f'<p class="banner">{_e(data.dry_run_note)}</p>' if data.dry_run_note else ""
    nav = "".join(
        f'<a href="#{anchor}">{_e(label)}</a>'
        for anchor, label in (("utilization", "Utilization"), ("monthly", "Releases and returns"),
                              ("savings", "Savings"), ("candidates", "Candidates"),
                              ("protections", "Protection rules"), ("sweep", "What-if"))
    )
    sections = [
        _utilization_section(data),
        _monthly_section(data),
        _savings_section(data),
        _candidates_section(data),
        _protections_section(data),
        _sweep_section(data),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>"
        f'<header><h1>{_e(title)}</h1><p class="meta">Generated {_e(_generated(data.generated_at))} '
        f"by Qlik Sense license butler</p></header>"
        f"<nav>{nav}</nav><main>{banner}{_summary(data)}\n" + "\n".join(sections) + "</main>"
        "<footer>A self-contained page: no scripts, nothing loaded from elsewhere.</footer>"
        "</body></html>\n"
    )
