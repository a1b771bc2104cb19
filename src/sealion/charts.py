"""Small inline-SVG charts for the HTML reports (eval, recipe): grouped bars with error bars, and line charts.
No JavaScript, no fonts to fetch, so the reports open offline."""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
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


def _frame(title: str, names: list[str], width: int, height: int, left: float, top: float, pw: float, ph: float,
           ticks: list[float], ymap, ylabel: str) -> list[str]:
    """The parts every chart shares: the svg element, title, legend, horizontal grid with y labels, y-axis label."""
    out = _svg_open(title, width, height, left)
    out += _legend(names, left, 32)
    for t in ticks:
        y = ymap(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{_fmt(t)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(12,{top + ph / 2:.0f}) rotate(-90)" font-size="11" '
                   f'text-anchor="middle">{escape(ylabel)}</text>')
    return out


def _svg_open(title: str, width: int, height: int, left: float) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
            f'<title>{escape(title)}</title>',
            f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']


def _legend(names: list[str], x: float, y: float) -> list[str]:
    parts, cx = [], x
    for i, name in enumerate(names):
        parts.append(f'<rect x="{cx:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{cx + 14:.1f}" y="{y:.1f}" font-size="11">{escape(name)}</text>')
        cx += 24 + 7 * len(name)
    return parts


def grouped_bars(title: str, categories: list[str], series: dict[str, list[tuple[float, float, float]]], *,
                 ylabel: str = "", width: int = 760, height: int = 300, log_y: bool = False) -> str:
    """Bars per category, one per series, each (value, lo, hi) with an error bar from lo to hi."""
    left, right, top, bottom = 60, 12, 42, 40
    pw, ph = width - left - right, height - top - bottom
    vals = [x for s in series.values() for v in s for x in v if x is not None and math.isfinite(x)]
    vmax = max(vals) if vals else 1.0
    if log_y:
        pos = [v for v in vals if v > 0] or [1.0]
        lo_exp, hi_exp = math.floor(math.log10(min(pos))), math.ceil(math.log10(max(pos)))
        hi_exp = max(hi_exp, lo_exp + 1)
        ticks = [10.0 ** e for e in range(lo_exp, hi_exp + 1)]

        def ymap(v: float) -> float:
            v = max(v, 10.0 ** lo_exp)
            return top + ph - (math.log10(v) - lo_exp) / (hi_exp - lo_exp) * ph
        base_y = top + ph
    else:
        ticks = _nice_ticks(0.0, vmax * 1.05 if vmax > 0 else 1.0)
        ymax = ticks[-1] or 1.0

        def ymap(v: float) -> float:
            return top + ph - max(0.0, v) / ymax * ph
        base_y = ymap(0.0)
    out = _frame(title, list(series), width, height, left, top, pw, ph, ticks, ymap, ylabel)
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


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], *, xlabel: str = "", ylabel: str = "",
               width: int = 760, height: int = 280) -> str:
    left, right, top, bottom = 60, 12, 42, 40
    pw, ph = width - left - right, height - top - bottom
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    xs = [p[0] for p in pts] or [0.0, 1.0]
    ys = [p[1] for p in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    yt = _nice_ticks(min(0.0, min(ys)), max(ys) * 1.05 if max(ys) > 0 else 1.0)
    y0, y1 = yt[0], yt[-1] if yt[-1] > yt[0] else yt[0] + 1

    def xm(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def ym(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph
    out = _frame(title, list(series), width, height, left, top, pw, ph, yt, ym, ylabel)
    for t in _nice_ticks(x0, x1):
        if x0 <= t <= x1:
            out.append(f'<text x="{xm(t):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{_fmt(t)}</text>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2:.0f}" y="{height - 6}" font-size="11" text-anchor="middle">'
                   f'{escape(xlabel)}</text>')
    for i, (name, s) in enumerate(series.items()):
        good = [(x, y) for x, y in s if math.isfinite(y)]
        if not good:
            continue
        d = "M" + " L".join(f"{xm(x):.1f} {ym(y):.1f}" for x, y in good)
        out.append(f'<path class="line" d="{d}" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="1.8" fill="none">'
                   f'<title>{escape(name)}</title></path>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>')
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
