"""Reports: results.json, a markdown leaderboard table (results.md) and a self-contained report.html with inline
SVG plots (per-language and per-competency bars with standard-error bars, per-task table; sealion.charts)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .. import io as sio
from ..charts import grouped_bars


def _fmt(e: dict | None) -> str:
    if e and e.get("not_scored"):
        return "not scored"
    if not e or e.get("mean") is None or (isinstance(e["mean"], float) and math.isnan(e["mean"])):
        return "–"
    text = f"{e['mean']:.2f} ± {e['stderr']:.2f}"
    if e.get("excluded_from_average"):
        text += " (not averaged)"
    if e.get("incomplete"):
        text += " (incomplete)"
    return text


def _raw(e: dict | None) -> str:
    return _fmt((e or {}).get("raw"))


def leaderboard_rows(results: dict) -> list[tuple[str, str, str, dict]]:
    """(language, competency, task, entry) rows; competency 'total' and task 'total' mark aggregates."""
    rows = []
    for lang, comps in results.get("results", {}).items():
        for comp, tasks in comps.items():
            if comp == "total":
                continue
            for task, e in tasks.items():
                if task not in ("total", "groups"):
                    rows.append((lang, comp, task, e))
            rows.append((lang, comp, "total", tasks["total"]))
        rows.append((lang, "total", "", comps["total"]))
    return rows


def markdown_table(results: dict) -> str:
    out = [f"# sealion eval: {results.get('model')}", "",
           f"mode: {results.get('mode')} · runs: {results.get('runs')} · data: {results.get('data')}"
           + (f" · limit: {results['limit']}" if results.get("limit") else ""), ""]
    prompts = results.get("prompts") or {}
    if prompts.get("note"):
        out += [f"prompts: {prompts.get('source')} — {prompts['note']}", ""]
    sea = results.get("sea_average")
    if sea:
        flag = "" if sea.get("complete") else f" (incomplete: over {', '.join(sea['languages'])} only, or a run is missing)"
        out += [f"**SEA average: {_fmt(sea)}** (normalised; raw {_raw(sea)}){flag}", ""]
    langs = list(results.get("results", {}))
    out += ["| language | score (normalised) | raw |", "|---|---|---|"] + [
        f"| {lang} | {_fmt(results['results'][lang]['total'])} | {_raw(results['results'][lang]['total'])} |"
        for lang in langs]
    out += ["", "| language | competency | task | metric | score (mean ± stderr) | raw | per-run code | items | "
            "empty (cut) |", "|---|---|---|---|---|---|---|---|---|"]
    for lang, comp, task, e in leaderboard_rows(results):
        if comp == "total":
            out.append(f"| **{lang}** | **total** | | | **{_fmt(e)}** | {_raw(e)} | | | |")
        elif task == "total":
            out.append(f"| {lang} | *{comp}* | *total* | | *{_fmt(e)}* | {_raw(e)} | | | |")
        else:
            code = (e.get("per_run_code") or {}).get("mean")
            code_s = f"{code:.2f}" if isinstance(code, float) and not math.isnan(code) else "–"
            b = e.get("budget") or {}
            cut = sum((b.get(k) or {}).get("mean", 0) for k in ("empty_cut_in_reasoning", "empty_cut_at_max_tokens"))
            out.append(f"| {lang} | {comp} | {task} | {e.get('metric', '')} | {_fmt(e)} | {_raw(e)} | {code_s} | "
                       f"{e.get('n_items', '')} | {cut:g} |")
    if results.get("notes"):
        out += ["", "Notes:"] + [f"- {n}" for n in results["notes"]]
    return "\n".join(out) + "\n"


def _bar_svg(labels: list[str], means: list[float], errs: list[float], title: str) -> str:
    clean = [(0.0, 0.0) if m is None or math.isnan(m) else (m, 0.0 if e is None or math.isnan(e) else e)
             for m, e in zip(means, errs)]
    return grouped_bars(title, labels, {"mean ± stderr": [(m, max(0.0, m - e), m + e) for m, e in clean]},
                        ylabel="score (0-100)", width=max(320, 70 * len(labels) + 90), height=260)


def html_report(results: dict) -> str:
    res = results.get("results", {})
    langs = list(res)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>sealion eval report</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eee}.tot{font-weight:bold}"
             ".plots{display:flex;flex-wrap:wrap;gap:1em}</style></head><body>",
             f"<h1>sealion eval: {html.escape(str(results.get('model')))}</h1>",
             f"<p>mode: {html.escape(str(results.get('mode')))} · runs: {results.get('runs')} · seeds: "
             f"{html.escape(str(results.get('seeds')))} · data: {html.escape(str(results.get('data')))}</p>"]
    sea = results.get("sea_average")
    if sea:
        parts.append(f"<h2>SEA average: {_fmt(sea)}</h2>")
    parts.append("<div class='plots'>")
    if langs:
        parts.append(_bar_svg(langs, [res[lang]["total"]["mean"] for lang in langs],
                              [res[lang]["total"]["stderr"] for lang in langs], "Per language"))
    for lang in langs:
        comps = [c for c in res[lang] if c != "total"]
        parts.append(_bar_svg(comps, [res[lang][c]["total"]["mean"] for c in comps],
                              [res[lang][c]["total"]["stderr"] for c in comps], f"{lang}: per competency"))
    parts.append("</div><h2>Per task</h2><table><tr><th>language</th><th>competency</th><th>task</th>"
                 "<th>metric</th><th>mean ± stderr</th><th>per run</th><th>items</th></tr>")
    for lang, comp, task, e in leaderboard_rows(results):
        cls = " class='tot'" if comp == "total" or task == "total" else ""
        per_run = ", ".join(f"{v:.1f}" for v in e.get("per_run", []) if isinstance(v, float))
        parts.append(f"<tr{cls}><td>{lang}</td><td>{html.escape(comp)}</td><td>{html.escape(task)}</td>"
                     f"<td>{html.escape(str(e.get('metric', '')))}</td><td>{_fmt(e)}</td><td>{per_run}</td>"
                     f"<td>{e.get('n_items', '')}</td></tr>")
    parts.append("</table>")
    if results.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in results["notes"]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def write_reports(out: Path, results: dict) -> None:
    out = Path(out)
    sio.write_text(out / "results.json", json.dumps(_clean(results), ensure_ascii=False, indent=2, default=str) + "\n")
    sio.write_text(out / "results.md", markdown_table(results))
    sio.write_text(out / "report.html", html_report(results))
