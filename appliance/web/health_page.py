"""The health page for browsers: one HTML document with inline CSS and SVG.

It loads nothing from anywhere (no scripts, fonts, images or style sheets), so
it renders on a laptop plugged into the phone VLAN with no internet access. It
shows no contact data.
"""

from __future__ import annotations

import time
from html import escape
from typing import Iterable, Sequence

from appliance.health import Check, HealthReport, SyncRun, iso_time

CHART_WIDTH = 600
CHART_HEIGHT = 140
_MARGIN_LEFT = 48
_MARGIN_BOTTOM = 20
# Room above the highest value, so its dot is not cut in half by the edge.
_PAD_TOP = 6

STYLE = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2733;
background:#f4f6f8}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0}
h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #dde3ea;vertical-align:top}
th{background:#e9eef3;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.time{white-space:nowrap;font-variant-numeric:tabular-nums}
.status{display:inline-block;min-width:3.2em;text-align:center;border-radius:4px;
padding:1px 6px;font-weight:600;color:#fff}
.pass{background:#2e7d32}.warn{background:#b26a00}.fail{background:#c62828}
.ok{background:#2e7d32}.error{background:#c62828}.running{background:#546e7a}
.overall{font-size:18px;padding:4px 12px}
.meta{color:#52606d;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;background:#fff;padding:8px;border:1px solid #dde3ea}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font:11px system-ui,sans-serif;fill:#52606d}
.empty{color:#52606d;font-style:italic}
"""


def render_health_page(report: HealthReport, runs: Sequence[SyncRun],
                       history: Sequence[tuple[float, int, float | None, float | None]]) -> str:
    """Render the whole health page as an HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Health: {escape(report.status)} | Phonebook Appliance</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<h1>Phonebook Appliance health "
        f'<span id="overall" class="status overall {escape(report.status)}">'
        f"{escape(report.status)}</span></h1>",
        f'<p class="meta">Version {escape(report.version)}, checked at '
        f"{escape(iso_time(report.time))}. Machines get the same data as JSON from "
        '<a href="/health?format=json">/health?format=json</a>.</p>',
        "<h2>Components</h2>",
        _render_checks(report.checks),
        "<h2>Last sync runs</h2>",
        _render_runs(runs),
        "<h2>Requests in the last hour</h2>",
        '<p class="meta">Phone and admin requests per minute, without the monitoring '
        "routes (/metrics, /health, /livez, /readyz).</p>",
        '<div class="charts">',
        _render_rate_chart(history),
        _render_latency_chart(history),
        "</div></main></body></html>",
    ]
    return "\n".join(parts)


def _render_checks(checks: Iterable[Check]) -> str:
    rows = ['<table id="checks"><thead><tr><th>Component</th><th>Status</th>'
            "<th>Observed</th><th>Detail</th></tr></thead><tbody>"]
    for check in checks:
        rows.append(
            f'<tr data-check="{escape(check.key)}"><td>{escape(check.key)}</td>'
            f'<td><span class="status {escape(check.status)}">{escape(check.status)}</span>'
            f"</td><td>{escape(format_observed(check))}</td><td>{escape(check.output)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def format_observed(check: Check) -> str:
    """Format a check's observed value with its unit for people."""
    value, unit = check.observed_value, check.observed_unit
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "bytes":
        return _format_bytes(value)
    if unit == "s":
        return _format_seconds(value)
    if unit:
        return f"{value} {unit}"
    return str(value) if value != "" else "none"


def _format_bytes(value: float) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} bytes"


def _format_seconds(value: float) -> str:
    if value >= 86400:
        return f"{value / 86400:.1f} days"
    if value >= 3600:
        return f"{value / 3600:.1f} hours"
    if value >= 60:
        return f"{value / 60:.0f} minutes"
    return f"{value:.0f} seconds"


def _render_runs(runs: Sequence[SyncRun]) -> str:
    if not runs:
        return '<p id="runs" class="empty">No sync runs recorded yet.</p>'
    rows = ['<table id="runs"><thead><tr><th>Started (UTC)</th><th>Kind</th>'
            "<th>Outcome</th><th>Duration</th><th>Added</th><th>Updated</th>"
            "<th>Deleted</th><th>Error</th></tr></thead><tbody>"]
    for run in runs:
        duration = ("" if run.finished_at is None
                    else f"{max(0.0, run.finished_at - run.started_at):.1f} s")
        rows.append(
            f'<tr><td class="time">{escape(_format_time(run.started_at))}</td>'
            f"<td>{escape(run.kind)}</td>"
            f'<td><span class="status {escape(run.outcome)}">{escape(run.outcome)}</span>'
            f'</td><td class="num">{duration}</td><td class="num">{run.added}</td>'
            f'<td class="num">{run.updated}</td><td class="num">{run.deleted}</td>'
            f"<td>{escape(run.error[:200])}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _format_time(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_s))


def _render_rate_chart(history: Sequence[tuple[float, int, float | None, float | None]]) -> str:
    counts = [row[1] for row in history]
    top = max(counts, default=0) or 1
    plot_w = CHART_WIDTH - _MARGIN_LEFT
    plot_h = CHART_HEIGHT - _MARGIN_BOTTOM
    bar_w = plot_w / max(len(counts), 1)
    bars = []
    for index, count in enumerate(counts):
        if count == 0:
            continue
        height = (plot_h - _PAD_TOP) * count / top
        x = _MARGIN_LEFT + index * bar_w
        bars.append(f'<rect x="{x:.1f}" y="{plot_h - height:.1f}" width="{bar_w * 0.8:.1f}" '
                    f'height="{height:.1f}" fill="#1565c0"><title>{count} requests</title>'
                    "</rect>")
    total = sum(counts)
    return _figure("rate-chart", f"Requests per minute ({total} in the hour)",
                   _axes(f"{top}", "0") + "".join(bars))


def _render_latency_chart(history: Sequence[tuple[float, int, float | None, float | None]]) -> str:
    means = [row[2] for row in history]
    p95s = [row[3] for row in history]
    top = max((value for value in p95s + means if value is not None), default=0.0) or 0.001
    lines = (_polyline(means, top, "#1565c0", "mean")
             + _polyline(p95s, top, "#b26a00", "95th percentile"))
    legend = (f'<text x="{_MARGIN_LEFT + 6}" y="12" style="fill:#1565c0">mean</text>'
              f'<text x="{_MARGIN_LEFT + 50}" y="12" style="fill:#b26a00">'
              "95th percentile (estimate)</text>")
    return _figure("latency-chart", "Latency per minute",
                   _axes(f"{top * 1000:.0f} ms", "0 ms") + lines + legend)


def _polyline(values: Sequence[float | None], top: float, colour: str, name: str) -> str:
    plot_w = CHART_WIDTH - _MARGIN_LEFT
    plot_h = CHART_HEIGHT - _MARGIN_BOTTOM
    step = plot_w / max(len(values), 1)
    points = [(_MARGIN_LEFT + (index + 0.4) * step,
               plot_h - (plot_h - _PAD_TOP) * value / top)
              for index, value in enumerate(values) if value is not None]
    if not points:
        return ""
    # A dot per minute, so a minute between two quiet ones still shows.
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>'
                   for x, y in points)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{name}</title></polyline>{dots}")


def _axes(top_label: str, bottom_label: str) -> str:
    plot_h = CHART_HEIGHT - _MARGIN_BOTTOM
    return (f'<line x1="{_MARGIN_LEFT}" y1="0" x2="{_MARGIN_LEFT}" y2="{plot_h}" '
            'stroke="#9aa5b1"/>'
            f'<line x1="{_MARGIN_LEFT}" y1="{plot_h}" x2="{CHART_WIDTH}" y2="{plot_h}" '
            'stroke="#9aa5b1"/>'
            f'<text x="{_MARGIN_LEFT - 4}" y="10" text-anchor="end">{escape(top_label)}</text>'
            f'<text x="{_MARGIN_LEFT - 4}" y="{plot_h}" text-anchor="end">'
            f"{escape(bottom_label)}</text>"
            f'<text x="{_MARGIN_LEFT}" y="{CHART_HEIGHT - 4}">60 min ago</text>'
            f'<text x="{CHART_WIDTH}" y="{CHART_HEIGHT - 4}" text-anchor="end">now</text>')


def _figure(element_id: str, caption: str, content: str) -> str:
    return (f'<figure id="{element_id}"><figcaption>{escape(caption)}</figcaption>'
            f'<svg role="img" aria-label="{escape(caption)}" width="{CHART_WIDTH}" '
            f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}">'
            f"{content}</svg></figure>")
