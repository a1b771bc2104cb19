"""compare.html: a self-contained page (inline SVG from sealion.charts, no scripts, nothing fetched) with, per
comparison, a language x competency heat map of differences, interval plots and the full table; and the leaderboard
when one was asked for."""

from __future__ import annotations

import html
import math

from ..charts import heatmap, interval_plot

STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}"
         "td,th{border:1px solid #ccc;padding:2px 7px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
         "tr.sig td{background:#fff3e0}tr.agg td{font-weight:bold}.plots{display:flex;flex-wrap:wrap;gap:1em}"
         ".tier1{background:#e8f5e9}")


def _n(v, fmt="{:.2f}") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def _p(v) -> str:
    return "–" if v is None else ("&lt;0.001" if v < 0.001 else f"{v:.3f}")


def _heat(c: dict) -> str:
    rows = [r for r in c["rows"] if r["level"] in ("language", "competency")]
    langs = list(dict.fromkeys(r["lang"] for r in rows))
    comps = sorted({r["competency"] for r in rows if r["level"] == "competency"}) + ["total"]
    cell = {(r["lang"], r["competency"] if r["level"] == "competency" else "total"): r for r in rows}
    values = [[cell[(lang, comp)]["diff"] if (lang, comp) in cell else None for comp in comps] for lang in langs]
    labels = [[(f"{cell[(lang, comp)]['diff']:+.1f}" + ("*" if cell[(lang, comp)]["significant"] else ""))
               if (lang, comp) in cell and cell[(lang, comp)]["diff"] is not None else "" for comp in comps]
              for lang in langs]
    return heatmap(f"{c['b']} - {c['a']}: language x competency (* significant)", langs, comps, values, labels)


def _intervals(c: dict, levels: tuple[str, ...], title: str) -> str:
    rows = [r for r in c["rows"] if r["level"] in levels]
    if not rows:
        return ""
    return interval_plot(title, [r["name"] for r in rows], [(r["diff"], r["lo"], r["hi"]) for r in rows],
                         [r["significant"] for r in rows], xlabel=f"{c['b']} - {c['a']} (score points)")


def _table(c: dict) -> str:
    head = ("<table><tr><th class='l'>level</th><th>" + html.escape(c["a"]) + "</th><th>" + html.escape(c["b"])
            + "</th><th>diff</th><th>CI</th><th>p</th><th>q (BH)</th><th>McNemar p</th><th>MDE</th><th>items</th></tr>")
    body = []
    for r in c["rows"]:
        cls = " ".join(x for x in ("sig" if r["significant"] else "", "agg" if r["level"] != "task" else "") if x)
        body.append(f"<tr class='{cls}'><td class='l'>{html.escape(r['name'])}</td><td>{_n(r['a'])}</td>"
                    f"<td>{_n(r['b'])}</td><td>{_n(r['diff'], '{:+.2f}')}{'*' if r['significant'] else ''}</td>"
                    f"<td>[{_n(r['lo'], '{:+.2f}')}, {_n(r['hi'], '{:+.2f}')}]</td><td>{_p(r['p'])}</td>"
                    f"<td>{_p(r['q'])}</td><td>{_p(r.get('mcnemar_p'))}</td><td>{_n(r['mde'])}</td>"
                    f"<td>{r['n_items']}</td></tr>")
    return head + "".join(body) + "</table>"


def _board(board: dict) -> str:
    models = board["models"]
    out = [f"<h2>Leaderboard</h2><p>score ± bootstrap SE (tier); tier 1 (green): not separable from the leader at "
           f"FDR {board['alpha']:g}.</p><table><tr><th class='l'>level</th>"
           + "".join(f"<th>{html.escape(m)}</th>" for m in models) + "</tr>"]
    for col in board["columns"]:
        by = {r["model"]: r for r in col["rows"]}
        cells = "".join(f"<td class='{'tier1' if by[m]['tier'] == 1 else ''}'>{by[m]['score']:.2f} ± "
                        f"{by[m]['se']:.2f} ({by[m]['tier']})</td>" for m in models)
        out.append(f"<tr class='{'agg' if col['level'] != 'competency' else ''}'><td class='l'>"
                   f"{html.escape(col['name'])}</td>{cells}</tr>")
    return "".join(out) + "</table>"


def compare_html(result: dict, board: dict | None = None) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>sealion compare</title>",
             f"<style>{STYLE}</style></head><body><h1>sealion compare</h1>",
             "<table><tr><th class='l'>run</th><th class='l'>path</th><th class='l'>model</th><th>runs</th></tr>"]
    for r in result["runs"]:
        parts.append(f"<tr><td class='l'>{html.escape(r['label'])}</td><td class='l'>{html.escape(r['path'])}</td>"
                     f"<td class='l'>{html.escape(r['model'])}</td><td>{r['n_runs']}</td></tr>")
    parts.append(f"</table><p>Paired bootstrap over items ({result['n_replicates']} replicates, seed "
                 f"{result['seed']}), each item with all its runs; {100 * (1 - result['alpha']):g}% percentile "
                 f"intervals; * = significant after Benjamini-Hochberg over the whole table at FDR "
                 f"{result['alpha']:g}; McNemar's exact test on binary tasks (per-item majority over runs); MDE = "
                 f"smallest true difference detectable with 80% power.</p>")
    if board:
        parts.append(_board(board))
    for c in result["comparisons"]:
        parts.append(f"<h2>{html.escape(c['b'])} − {html.escape(c['a'])}</h2><div class='plots'>")
        parts.append(_heat(c))
        parts.append(_intervals(c, ("sea", "language", "competency"), "SEA average, languages, competencies"))
        parts.append(_intervals(c, ("task",), "Tasks"))
        parts.append("</div>" + _table(c))
    parts.append("</body></html>")
    return "\n".join(parts)
