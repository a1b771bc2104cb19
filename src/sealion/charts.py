"""Small inline-SVG charts for the HTML reports (eval, recipe): grouped bars with error bars, and line charts.
No JavaScript, no fonts to fetch, so the reports open offline."""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


CHAR_W = 6.6  # mean advance of a sans-serif glyph at 11px, for laying out text without a browser to measure it


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round ticks from at or below `lo` to at or above `hi` (the last tick covers the largest value, so nothing
    drawn on the axis rises above the plot into the title and legend)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step + 1e-9) * step
    ticks, v = [round(start, 12)], start
    while ticks[-1] < hi - step * 1e-9:
        v += step
        ticks.append(round(v, 12))
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _fmt_power(exp: int) -> str:
    """A log axis's tick 10^exp, short: 0.01, 1, 100, 10k, 1M, 1e-5, 1e9."""
    if -3 <= exp < 3:
        return _fmt(10.0 ** exp)
    if 3 <= exp < 9:
        return f"{10 ** (exp % 3)}{'kM'[exp // 3 - 1]}"
    return f"1e{exp}"


def _text_w(text: str, size: float = 11) -> float:
    return len(text) * CHAR_W * size / 11


def _legend(names: list[str], x: float, y: float, max_x: float, swatch: str = "rect") -> tuple[list[str], float]:
    """Entries left to right, wrapping onto a new row before `max_x`; returns the parts and the y below them.
    `swatch`: a filled square (bars) or a short thick line (lines)."""
    parts, cx, row_y = [], x, y
    for i, name in enumerate(names):
        w = 18 + _text_w(name) + 14
        if cx > x and cx + w > max_x:
            cx, row_y = x, row_y + 16
        color = PALETTE[i % len(PALETTE)]
        if swatch == "line":
            parts.append(f'<line class="swatch" x1="{cx:.1f}" x2="{cx + 12:.1f}" y1="{row_y - 4:.1f}" '
                         f'y2="{row_y - 4:.1f}" stroke="{color}" stroke-width="3"/>')
        else:
            parts.append(f'<rect class="swatch" x="{cx:.1f}" y="{row_y - 9:.1f}" width="10" height="10" '
                         f'fill="{color}"/>')
        parts.append(f'<text class="legend" x="{cx + 16:.1f}" y="{row_y:.1f}" font-size="11">{escape(name)}</text>')
        cx += w
    return parts, row_y + 10


def _layout(names: list[str], tick_labels: list[str], width: int, swatch: str) -> tuple[float, float, list[str]]:
    """The left margin (room for the widest y tick label and the rotated axis title) and the plot's top (below the
    title and however many legend rows the names need)."""
    left = max(48.0, 30 + _text_w(max(tick_labels, key=len, default=""), 10))
    legend, below = _legend(names, left, 34, width - 12, swatch)
    return left, below + 8, legend


def _frame(title: str, legend: list[str], width: int, height: int, left: float, top: float, pw: float, ph: float,
           ticks: list[tuple[float, str]], ylabel: str) -> list[str]:
    """The parts every chart shares: the svg element, title, legend, horizontal grid with y labels, y-axis label.
    `ticks` are (y position, label)."""
    out = _svg_open(title, width, height, left)
    out += legend
    for y, label in ticks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text class="tick" x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                   f'{label}</text>')
    if ylabel:
        size = min(11.0, max(8.0, 11 * ph / max(1.0, _text_w(ylabel))))  # shrink a long title to the plot height
        out.append(f'<text class="axis-title" transform="translate(14,{top + ph / 2:.0f}) rotate(-90)" '
                   f'font-size="{size:.1f}" text-anchor="middle">{escape(ylabel)}</text>')
    return out


def _svg_open(title: str, width: int, height: int, left: float) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
            f'<title>{escape(title)}</title>',
            f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']


def grouped_bars(title: str, categories: list[str], series: dict[str, list[tuple[float, float, float]]], *,
                 ylabel: str = "", width: int = 760, height: int = 300, log_y: bool = False) -> str:
    """Bars per category, one per series, each (value, lo, hi) with an error bar from lo to hi."""
    vals = [x for s in series.values() for v in s for x in v if x is not None and math.isfinite(x)]
    vmax = max(vals) if vals else 1.0
    if log_y:
        pos = [v for v in vals if v > 0] or [1.0]
        lo_exp, hi_exp = math.floor(math.log10(min(pos))), math.ceil(math.log10(max(pos)))
        hi_exp = max(hi_exp, lo_exp + 1)
        tick_values = [10.0 ** e for e in range(lo_exp, hi_exp + 1)]
        labels = [_fmt_power(e) for e in range(lo_exp, hi_exp + 1)]
    else:
        tick_values = _nice_ticks(0.0, vmax if vmax > 0 else 1.0)
        labels = [_fmt(t) for t in tick_values]
    left, top, legend = _layout(list(series), labels, width, "rect")
    right, bottom = 12, 30
    pw, ph = width - left - right, height - top - bottom
    if log_y:
        def ymap(v: float) -> float:
            v = max(v, 10.0 ** lo_exp)
            return top + ph - (math.log10(v) - lo_exp) / (hi_exp - lo_exp) * ph
        base_y = top + ph
    else:
        ymax = tick_values[-1] or 1.0

        def ymap(v: float) -> float:
            return top + ph - max(0.0, v) / ymax * ph
        base_y = ymap(0.0)
    out = _frame(title, legend, width, height, left, top, pw, ph,
                 [(ymap(t), lab) for t, lab in zip(tick_values, labels)], ylabel)
    n_cat, n_ser = max(1, len(categories)), max(1, len(series))
    group_w = pw / n_cat
    bar_w = group_w * 0.8 / n_ser
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + group_w * 0.1
        for si, (name, vals_s) in enumerate(series.items()):
            v, lo, hi = vals_s[ci]
            x = gx + si * bar_w
            y = ymap(v)
            color = PALETTE[si % len(PALETTE)]
            out.append(f'<rect class="bar" x="{x:.1f}" y="{min(y, base_y):.1f}" width="{bar_w * 0.92:.1f}" '
                       f'height="{abs(base_y - y):.1f}" fill="{color}"><title>{escape(name)} {escape(cat)}: '
                       f'{v:.4g} [{lo:.4g}, {hi:.4g}]</title></rect>')
            cx = x + bar_w * 0.46
            y_lo, y_hi = ymap(lo), ymap(hi)
            out.append(f'<path class="errbar" d="M{cx:.1f} {y_lo:.1f}V{y_hi:.1f}M{cx - 3:.1f} {y_lo:.1f}h6'
                       f'M{cx - 3:.1f} {y_hi:.1f}h6" stroke="#222" fill="none"/>')
        out.append(f'<text x="{left + ci * group_w + group_w / 2:.1f}" y="{top + ph + 16}" font-size="11" '
                   f'text-anchor="middle">{escape(cat)}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    out.append("</svg>")
    return "\n".join(out)


def _merge_identical(series: dict[str, list[tuple[float, float]]]) -> dict[str, list[tuple[float, float]]]:
    """Series with the same points (e.g. the total loss and its KD part when the CE weight is 0) would hide one
    line under the other: draw them once, named together ("loss = kd")."""
    out: dict[str, list[tuple[float, float]]] = {}
    for name, pts in series.items():
        same = next((k for k, v in out.items() if v == list(pts)), None)
        if same is None:
            out[name] = list(pts)
        else:
            out[f"{same} = {name}"] = out.pop(same)
    return out


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], *, xlabel: str = "", ylabel: str = "",
               width: int = 760, height: int = 280) -> str:
    series = _merge_identical(series)
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    xs = [p[0] for p in pts] or [0.0, 1.0]
    ys = [p[1] for p in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    yt = _nice_ticks(min(0.0, min(ys)), max(ys) if max(ys) > 0 else 1.0)
    y0, y1 = yt[0], yt[-1] if yt[-1] > yt[0] else yt[0] + 1
    labels = [_fmt(t) for t in yt]
    left, top, legend = _layout(list(series), labels, width, "line")
    right, bottom = 12, 40
    pw, ph = width - left - right, height - top - bottom

    def xm(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def ym(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph
    out = _frame(title, legend, width, height, left, top, pw, ph, [(ym(t), lab) for t, lab in zip(yt, labels)],
                 ylabel)
    for t in _nice_ticks(x0, x1):
        if x0 <= t <= x1:
            out.append(f'<text x="{xm(t):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{_fmt(t)}</text>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2:.0f}" y="{height - 6}" font-size="11" text-anchor="middle">'
                   f'{escape(xlabel)}</text>')
    # the axis first, so a series lying on 0 (e.g. no agreement yet) is drawn over it, not hidden under it
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
    for i, (name, s) in enumerate(series.items()):
        good = [(x, y) for x, y in s if math.isfinite(y)]
        if not good:
            continue
        color = PALETTE[i % len(PALETTE)]
        d = "M" + " L".join(f"{xm(x):.1f} {ym(y):.1f}" for x, y in good)
        out.append(f'<path class="line" d="{d}" stroke="{color}" stroke-width="1.8" fill="none">'
                   f'<title>{escape(name)}</title></path>')
        if len(good) == 1:  # one point is no line: mark it
            out.append(f'<circle cx="{xm(good[0][0]):.1f}" cy="{ym(good[0][1]):.1f}" r="3" fill="{color}"/>')
    out.append("</svg>")
    return "\n".join(out)


def _diverging(v: float, limit: float) -> str:
    """Blue (negative) - white - orange (positive), saturating at +-limit."""
    t = max(-1.0, min(1.0, v / limit)) if limit > 0 else 0.0
    end = (78, 121, 167) if t < 0 else (242, 142, 43)
    r, g, b = (round(255 + (e - 255) * abs(t)) for e in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(title: str, rows: list[str], cols: list[str], values: list[list[float | None]],
            labels: list[list[str]] | None = None, *, limit: float | None = None, cell: int = 64) -> str:
    """A rows x cols grid coloured by value on a diverging scale around 0 (missing cells grey), with a text label
    per cell (default: the value) and a colour key."""
    left, top = 12 + 8 * max((len(r) for r in rows), default=4), 60
    finite = [abs(v) for row in values for v in row if v is not None and math.isfinite(v)]
    limit = limit or (max(finite) if finite and max(finite) > 0 else 1.0)
    width = int(max(left + cell * max(1, len(cols)) + 20, 24 + 7.5 * len(title)))
    height = int(top + 24 * len(rows) + 50)
    out = _svg_open(title, width, height, 12)
    for ci, c in enumerate(cols):
        out.append(f'<text x="{left + ci * cell + cell / 2:.1f}" y="{top - 8}" font-size="10" text-anchor="middle">'
                   f'{escape(c[:12])}<title>{escape(c)}</title></text>')
    for ri, r in enumerate(rows):
        y = top + ri * 24
        out.append(f'<text x="{left - 6}" y="{y + 16}" font-size="11" text-anchor="end">{escape(r)}</text>')
        for ci, c in enumerate(cols):
            v = values[ri][ci]
            ok = v is not None and math.isfinite(v)
            fill = _diverging(v, limit) if ok else "#eee"
            text = (labels[ri][ci] if labels else f"{v:+.1f}") if ok else ""
            out.append(f'<rect class="cell" x="{left + ci * cell}" y="{y}" width="{cell - 2}" height="22" fill="{fill}">'
                       f'<title>{escape(r)} / {escape(c)}: {escape(text or "n/a")}</title></rect>')
            out.append(f'<text x="{left + ci * cell + cell / 2 - 1:.1f}" y="{y + 15}" font-size="11" '
                       f'text-anchor="middle">{escape(text)}</text>')
    ky = top + 24 * len(rows) + 14
    for i in range(11):
        v = limit * (i - 5) / 5
        out.append(f'<rect x="{left + i * 14}" y="{ky}" width="14" height="10" fill="{_diverging(v, limit)}"/>')
    out.append(f'<text x="{left - 4}" y="{ky + 9}" font-size="10" text-anchor="end">{_fmt(-limit)}</text>')
    out.append(f'<text x="{left + 158}" y="{ky + 9}" font-size="10">{_fmt(limit)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def interval_plot(title: str, labels: list[str], intervals: list[tuple[float, float, float]],
                  highlight: list[bool] | None = None, *, xlabel: str = "", width: int = 760) -> str:
    """One row per label: a point estimate with its interval (lo, hi) on a shared x axis with a zero line;
    highlighted rows (e.g. significant) drawn in colour, the others grey."""
    left = 14 + 7 * max((len(x) for x in labels), default=4)
    top, row_h, right = 40, 18, 16
    height = top + row_h * len(labels) + 36
    pw = width - left - right
    vals = [x for t in intervals for x in t if x is not None and math.isfinite(x)] + [0.0]
    lo_v, hi_v = min(vals), max(vals) if max(vals) > min(vals) else min(vals) + 1
    ticks = _nice_ticks(lo_v, hi_v)
    if ticks[-1] < hi_v:  # the last tick may fall short of the widest interval
        ticks.append(ticks[-1] + (ticks[1] - ticks[0] if len(ticks) > 1 else 1.0))
    x0, x1 = ticks[0], ticks[-1]

    def xm(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw
    out = _svg_open(title, width, height, left)
    y_end = top + row_h * len(labels)
    for t in ticks:
        out.append(f'<line x1="{xm(t):.1f}" x2="{xm(t):.1f}" y1="{top - 6}" y2="{y_end}" stroke="#eee"/>')
        out.append(f'<text x="{xm(t):.1f}" y="{y_end + 14}" font-size="10" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<line x1="{xm(0):.1f}" x2="{xm(0):.1f}" y1="{top - 6}" y2="{y_end}" stroke="#333"/>')
    for i, (lab, (v, lo, hi)) in enumerate(zip(labels, intervals)):
        y = top + i * row_h + row_h / 2
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{escape(lab)}</text>')
        if v is None or not all(x is not None and math.isfinite(x) for x in (v, lo, hi)):
            continue
        color = PALETTE[0] if highlight is None or highlight[i] else "#999"
        out.append(f'<path class="interval" d="M{xm(lo):.1f} {y:.1f}H{xm(hi):.1f}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<circle cx="{xm(v):.1f}" cy="{y:.1f}" r="3.5" fill="{color}"><title>{escape(lab)}: {v:+.3g} '
                   f'[{lo:+.3g}, {hi:+.3g}]</title></circle>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2:.0f}" y="{height - 4}" font-size="11" text-anchor="middle">'
                   f'{escape(xlabel)}</text>')
    out.append("</svg>")
    return "\n".join(out)
