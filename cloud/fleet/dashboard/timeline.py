"""The expiry timeline as SVG: one row per site, its certificate's lifetime as a bar coloured by
days left, a line at now, a diamond at the next renewal, and a dot per agent at the expiry of
the certificate that agent has installed.

Built with ElementTree, so every name and text from the configuration or an agent is escaped by
the serializer; styles are attributes, so the picture looks the same inline and on its own.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from cloud.fleet.dashboard.view import AMBER_DAYS, RED_DAYS, days_text, level_for, when
from cloud.fleet.status import FleetStatus, SiteStatus

COLOURS = {"red": "#c62828", "amber": "#d98e04", "green": "#2e7d32"}
_INK, _MUTED, _RULE = "#1f2328", "#59636e", "#d1d9e0"
_WIDTH = 1240
_LABEL = 190  # left column: site names and days left
_RIGHT = 24
_TOP = 44  # dates and "now" above the rows
_ROW = 36
_LEGEND = 34
_NAME_CHARS = 24
_DAY = timedelta(days=1)
_TICK_DAYS = (1, 2, 7, 14, 30, 61, 91, 182, 365)


def render(status: FleetStatus) -> str:
    """The SVG document (no XML declaration, so it can also be placed inside HTML)."""
    start, end = _span(status)
    scale = _Scale(start, end)
    height = _TOP + _ROW * max(len(status.sites), 1) + _LEGEND
    svg = ET.Element(
        "svg",
        xmlns="http://www.w3.org/2000/svg",
        width=str(_WIDTH),
        height=str(height),
        viewBox=f"0 0 {_WIDTH} {height}",
        role="img",
        attrib={"aria-labelledby": "timeline-title", "font-family": "system-ui, sans-serif"},
    )
    ET.SubElement(svg, "title", id="timeline-title").text = "Certificate expiry timeline"
    description = f"{len(status.sites)} site(s) from {when(start)} to {when(end)}"
    ET.SubElement(svg, "desc").text = f"{description}, generated {when(status.at)}"
    _axis(svg, scale, height - _LEGEND)
    for index, site in enumerate(status.sites):
        _row(svg, scale, status, site, _TOP + index * _ROW)
    if not status.sites:
        _text(svg, _LABEL, _TOP + _ROW / 2, "no sites configured", fill=_MUTED)
    _now_line(svg, scale, status.at, height - _LEGEND)
    _legend(svg, height - _LEGEND + 22)
    return ET.tostring(svg, encoding="unicode")


class _Scale:
    def __init__(self, start: datetime, end: datetime):
        self.start = start
        self.seconds = (end - start).total_seconds()

    def x(self, moment: datetime) -> float:
        share = (moment - self.start).total_seconds() / self.seconds
        return round(_LABEL + share * (_WIDTH - _LABEL - _RIGHT), 1)


def _span(status: FleetStatus) -> tuple[datetime, datetime]:
    """From the oldest certificate's start to the last expiry shown, with now always in view."""
    moments = [status.at - 7 * _DAY, status.at + 14 * _DAY]
    for site in status.sites:
        moments += [m for m in (site.not_before, site.not_after, site.next_check) if m]
    for agent in status.agents:
        moments += [got.not_after for got in agent.installed.values()]
    start, end = min(moments), max(moments)
    margin = (end - start) * 0.02
    return start - margin, end + margin


def _axis(svg: ET.Element, scale: _Scale, bottom: float) -> None:
    total_days = scale.seconds / 86400
    step = next((d for d in _TICK_DAYS if total_days / d <= 10), _TICK_DAYS[-1])
    day = scale.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    tick = day + _DAY
    end = scale.start + timedelta(seconds=scale.seconds)
    while tick < end:
        x = scale.x(tick)
        ET.SubElement(
            svg, "line", x1=str(x), x2=str(x), y1=str(_TOP - 24), y2=str(bottom), stroke=_RULE
        )
        _text(svg, x, _TOP - 30, f"{tick:%b %d}", fill=_MUTED, anchor="middle", size=11)
        tick += step * _DAY


def _row(svg: ET.Element, scale: _Scale, status: FleetStatus, site: SiteStatus, y: float) -> None:
    row = ET.SubElement(svg, "g", {"class": "site-row", "data-site": site.site})
    middle = y + _ROW / 2
    name = site.site if len(site.site) <= _NAME_CHARS else site.site[: _NAME_CHARS - 1] + "…"
    label = _text(row, _LABEL - 14, middle - 3, name, fill=_INK, anchor="end", weight="600")
    ET.SubElement(label, "title").text = site.site
    ET.SubElement(
        row, "line", x1="0", x2=str(_WIDTH), y1=str(y + _ROW), y2=str(y + _ROW), stroke="#eef1f4"
    )
    if site.not_after is None or site.days_left is None:
        # No certificate: a first issuance failing says so, as the site's health does.
        words = "never issued" if site.health == "never issued" else f"none yet · {site.health}"
        _text(row, _LABEL - 14, middle + 12, words, fill=_MUTED, anchor="end", size=11)
        return
    level = level_for(site.days_left)
    left = scale.x(site.not_before or site.not_after - 90 * _DAY)
    right = scale.x(site.not_after)
    bar = ET.SubElement(
        row,
        "rect",
        x=str(left),
        y=str(middle - 9),
        width=str(max(right - left, 2)),
        height="12",
        rx="3",
        fill=COLOURS[level],
        opacity="0.85",
    )
    word = "expired " if site.days_left <= 0 else ""
    ET.SubElement(bar, "title").text = (
        f"{site.site} v{site.version}: {when(site.not_before)} to {when(site.not_after)}, "
        f"{word}{days_text(site.days_left)}"
    )
    summary = f"v{site.version} · {word}{days_text(site.days_left)}"
    _text(row, _LABEL - 14, middle + 12, summary, fill=COLOURS[level], anchor="end", size=11)
    _renewal(row, scale, site, status.at, middle - 3)
    for agent in status.agents:
        got = agent.installed.get(site.site)
        if got is None:
            continue
        days = (got.not_after - status.at).total_seconds() / 86400
        dot = ET.SubElement(
            row,
            "circle",
            cx=str(scale.x(got.not_after)),
            cy=str(middle + 10),
            r="4",
            fill=COLOURS[level_for(days)] if got.current else "#ffffff",
            stroke=COLOURS[level_for(days)],
            attrib={"stroke-width": "2"},
        )
        standing = "" if got.current else f" ({got.standing})"
        tip = f"{agent.agent_id}: v{got.version}{standing}, expires {when(got.not_after)}"
        ET.SubElement(dot, "title").text = tip


def _renewal(row: ET.Element, scale: _Scale, site: SiteStatus, now: datetime, y: float) -> None:
    x = scale.x(max(site.next_check, now))
    points = f"{x},{y - 7} {x + 6},{y} {x},{y + 7} {x - 6},{y}"
    marker = ET.SubElement(
        row, "polygon", points=points, fill="#ffffff", stroke=_INK, attrib={"stroke-width": "1.5"}
    )
    ET.SubElement(marker, "title").text = (
        f"next renewal: {'now' if site.next_check <= now else when(site.next_check)}"
        f" ({site.next_reason})"
    )


def _now_line(svg: ET.Element, scale: _Scale, now: datetime, bottom: float) -> None:
    x = scale.x(now)
    ET.SubElement(
        svg,
        "line",
        x1=str(x),
        x2=str(x),
        y1=str(_TOP - 6),
        y2=str(bottom),
        stroke=_INK,
        attrib={"stroke-width": "1.5", "stroke-dasharray": "4 3"},
    )
    _text(svg, x, _TOP - 12, "now", fill=_INK, anchor="middle", weight="700", size=11)


def _legend(svg: ET.Element, y: float) -> None:
    x = float(_LABEL)
    for level, label in (
        ("red", f"expired or under {RED_DAYS} days left"),
        ("amber", f"under {AMBER_DAYS} days"),
        ("green", f"{AMBER_DAYS} days or more"),
    ):
        ET.SubElement(
            svg, "rect", x=str(x), y=str(y - 9), width="18", height="10", rx="2",
            fill=COLOURS[level], opacity="0.85",
        )  # fmt: skip
        _text(svg, x + 24, y, label, fill=_MUTED, size=11)
        x += 40 + 5.6 * len(label)
    points = f"{x + 6},{y - 11} {x + 12},{y - 4} {x + 6},{y + 3} {x},{y - 4}"
    ET.SubElement(svg, "polygon", points=points, fill="#ffffff", stroke=_INK)
    _text(svg, x + 18, y, "next renewal", fill=_MUTED, size=11)
    x += 110
    ET.SubElement(svg, "circle", cx=str(x + 5), cy=str(y - 4), r="4", fill=_MUTED)
    ET.SubElement(
        svg, "circle", cx=str(x + 17), cy=str(y - 4), r="4", fill="#ffffff", stroke=_MUTED,
        attrib={"stroke-width": "2"},
    )  # fmt: skip
    dots = "an agent's installed certificate (hollow: not the version published for it)"
    _text(svg, x + 28, y, dots, fill=_MUTED, size=11)


def _text(
    parent: ET.Element,
    x: float,
    y: float,
    content: str,
    *,
    fill: str,
    anchor: str = "start",
    size: int = 12,
    weight: str = "400",
) -> ET.Element:
    element = ET.SubElement(
        parent,
        "text",
        x=str(x),
        y=str(y),
        fill=fill,
        attrib={"text-anchor": anchor, "font-size": str(size), "font-weight": weight},
    )
    element.text = content
    return element
