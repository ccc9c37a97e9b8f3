"""Charts of the reports page as server-rendered SVG (DESIGN §12: no CDN, the CSP stays strict): each is
described for screen readers by its title, and a table of the same figures follows it on the page."""

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 220
# The axis is on the right: a narrow screen opens a chart of days scrolled to its latest days, and its axis.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_BOTTOM, MARGIN_TOP = 8, 40, 28, 12
COLORS = ("#1f6f5c", "#d9822b")  # the brand's green, and an orange that tells from it in grey too
WEEKDAYS = ("seg", "ter", "qua", "qui", "sex", "sáb", "dom")


def _scale_top(highest: float) -> int:
    """A round number at or above `highest` for the vertical axis."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000):
        if highest <= step * 4:
            return step * 4
    return int(highest) + 1


def bars_by_day(title: str, days: list[str], series: list[tuple[str, list[int]]]) -> SafeString:
    """Grouped bars, one group a day, one bar a series (at most two), with a legend and a round axis."""
    top = _scale_top(max((v for _, values in series for v in values), default=0) or 1)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    group = plot_width / max(len(days), 1)
    bar = max(group * 0.8 / len(series), 1)
    parts = [
        format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}"><title id="{}">{}</title>',
            WIDTH,
            HEIGHT,
            _id(title),
            _id(title),
            title,
        )
    ]
    for tick in range(5):
        value = top * tick / 4
        y = MARGIN_TOP + plot_height - plot_height * tick / 4
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/><text x="{}" y="{}" class="axis" '
                'text-anchor="start">{}</text>',
                MARGIN_LEFT,
                WIDTH - MARGIN_RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                WIDTH - MARGIN_RIGHT + 4,
                f"{y + 4:.1f}",
                f"{value:g}",
            )
        )
    label_every = max(1, round(len(days) / 10))
    for n, day in enumerate(days):
        x0 = MARGIN_LEFT + n * group + group * 0.1
        for s, (name, values) in enumerate(series):
            height = plot_height * values[n] / top
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {} em {}</title></rect>',
                    f"{x0 + s * bar:.1f}",
                    f"{MARGIN_TOP + plot_height - height:.1f}",
                    f"{bar:.1f}",
                    f"{height:.1f}",
                    COLORS[s % len(COLORS)],
                    name,
                    values[n],
                    day,
                )
            )
        if n % label_every == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>',
                    f"{x0 + group * 0.4:.1f}",
                    HEIGHT - 10,
                    day,
                )
            )
    parts.append(_legend([name for name, _ in series], right=True))
    parts.append(mark_safe("</svg>"))
    return _joined(parts)


def share(title: str, parts: list[tuple[str, int]]) -> SafeString:
    """One horizontal bar split by share (the assistant alone vs. staff), each part labelled with its %."""
    total = sum(n for _, n in parts)
    height = 56
    out = [
        format_html(
            '<svg class="chart share" viewBox="0 0 {} {}" role="img" aria-labelledby="{}"><title id="{}">{}</title>',
            WIDTH,
            height,
            _id(title),
            _id(title),
            title,
        )
    ]
    x = 0.0
    for n, (name, value) in enumerate(parts):
        width = WIDTH * value / total if total else 0
        percent = round(100 * value / total) if total else 0
        out.append(
            format_html(
                '<rect x="{}" y="0" width="{}" height="30" fill="{}"><title>{}: {} ({}%)</title></rect>',
                f"{x:.1f}",
                f"{width:.1f}",
                COLORS[n % len(COLORS)],
                name,
                value,
                percent,
            )
        )
        if width > 60:
            out.append(format_html('<text x="{}" y="20" class="on-bar">{} {}%</text>', f"{x + 8:.1f}", name, percent))
        x += width
    if not total:
        out.append(mark_safe('<rect x="0" y="0" width="720" height="30" class="empty-bar"/>'))
    out.append(_legend([name for name, _ in parts], y=height - 8))
    out.append(mark_safe("</svg>"))
    return _joined(out)


def heatmap(title: str, by_hour: list[list[int]]) -> SafeString:
    """Weekday × hour: a cell per hour, darker the more patients wrote then."""
    highest = max((n for day in by_hour for n in day), default=0)
    cell_w, cell_h, left, top_margin = 27, 22, 40, 16
    width, height = left + 24 * cell_w + 4, top_margin + 7 * cell_h + 4
    out = [
        format_html(
            '<svg class="chart heatmap" viewBox="0 0 {} {}" role="img" aria-labelledby="{}"><title id="{}">{}</title>',
            width,
            height,
            _id(title),
            _id(title),
            title,
        )
    ]
    for hour in range(0, 24, 3):
        out.append(
            format_html(
                '<text x="{}" y="11" class="axis" text-anchor="middle">{}h</text>',
                left + hour * cell_w + cell_w / 2,
                hour,
            )
        )
    for d, day in enumerate(by_hour):
        y = top_margin + d * cell_h
        out.append(
            format_html('<text x="{}" y="{}" class="axis" text-anchor="end">{}</text>', left - 6, y + 15, WEEKDAYS[d])
        )
        for hour, n in enumerate(day):
            opacity = 0.06 + 0.94 * n / highest if highest and n else 0.04
            out.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}" fill-opacity="{}">'
                    "<title>{} {}h: {} mensagens</title></rect>",
                    left + hour * cell_w,
                    y,
                    cell_w - 2,
                    cell_h - 2,
                    COLORS[0],
                    f"{opacity:.2f}",
                    WEEKDAYS[d],
                    hour,
                    n,
                )
            )
    out.append(mark_safe("</svg>"))
    return _joined(out)


def _legend(names: list[str], y: int = 10, right: bool = False) -> SafeString:
    out, x = [], (WIDTH - MARGIN_RIGHT - 140 * len(names)) if right else MARGIN_LEFT
    for n, name in enumerate(names):
        out.append(
            format_html(
                '<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="axis">{}</text>',
                x + n * 140,
                y - 9,
                COLORS[n % len(COLORS)],
                x + n * 140 + 14,
                y,
                name,
            )
        )
    return _joined(out)


def _id(title: str) -> str:
    return "chart-" + "".join(c if c.isalnum() else "-" for c in escape(title).lower())[:40]


def _joined(parts: list) -> SafeString:
    """The parts as one piece of markup: each is escaped unless it is already markup (format_html's)."""
    return format_html_join("", "{}", ((part,) for part in parts))
