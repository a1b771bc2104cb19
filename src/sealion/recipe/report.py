"""The run report: one self-contained HTML file (inline SVG, inline CSS, no network) plus `report.json`, the
numbers it shows (stable across reruns: no timings), so two runs can be compared by their data."""

from __future__ import annotations

import json
import math
import os
import time
from html import escape
from pathlib import Path
from typing import Any

from ..io import read_jsonl, write_json, write_text
from .fingerprint import dir_size
from .runner import DONE, read_done
from ..charts import grouped_bars, line_chart

MODEL_LABELS = {"teacher": "teacher", "student-init": "student before", "student": "student after (distilled)",
                "merged": "merged"}
METRIC_INFO = {
    "kl": ("KL(teacher ‖ model) per token", "nats / token (lower is closer)", False),
    "top1": ("top-1 agreement with the teacher", "fraction of tokens (higher is closer)", False),
    "ppl": ("perplexity on the teacher's responses", "perplexity (log scale; lower is better)", True),
}


def _human_bytes(n: int) -> str:
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if x < 1024 or unit == "TiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"


def training_curves(distill_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Loss curves from the trainer's JSONL log (rows with `step` and any `*loss*` / `kd` / `ce` keys)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for log in sorted(distill_dir.rglob("*.jsonl")):
        rows = read_jsonl(log)
        if not rows or not isinstance(rows[0], dict) or "step" not in rows[0]:
            continue
        latest: dict[int, dict] = {}
        for r in rows:  # a resumed trainer logs the steps after its checkpoint again: keep the last of each
            if r.get("split", "train") == "train":
                latest[int(r["step"])] = r
        for step in sorted(latest):
            r = latest[step]
            for k, v in r.items():
                if k == "step" or not isinstance(v, (int, float)) or isinstance(v, bool):
                    continue
                if k in ("loss", "kd", "ce", "top1_agree"):
                    curves.setdefault(k, []).append((float(r["step"]), float(v)))
        if curves:
            break
    return curves


def _stage_rows(run_dir: Path, stage_names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in stage_names:
        d = run_dir / name
        done = read_done(d)
        rows.append({"stage": name, "done": done is not None,
                     "seconds": done.get("seconds") if done else None,
                     "bytes": done.get("bytes") if done else (dir_size(d) if d.exists() else 0),
                     "summary": done.get("summary", {}) if done else {}})
    return rows


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ci(entry: dict) -> str:
    return f'{entry["value"]:.4g} <span class="ci">[{entry["lo"]:.3g}, {entry["hi"]:.3g}]</span>'


def _artefacts(run_dir: Path, report_path: Path) -> list[str]:
    """Links to every artefact: each file at the top of a stage dir, each model/capture directory."""
    links = []
    for d in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        items = []
        for f in sorted(d.iterdir()):
            if f.name.startswith("."):
                continue
            rel = os.path.relpath(f, report_path.parent)
            size = dir_size(f)
            kind = "dir" if f.is_dir() else "file"
            items.append(f'<li><a href="{escape(rel)}{"/" if f.is_dir() else ""}">{escape(f.name)}</a> '
                         f'<span class="muted">({kind}, {_human_bytes(size)})</span></li>')
        links.append(f"<li><b>{escape(d.name)}/</b><ul>{''.join(items)}</ul></li>")
    for f in sorted(p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
        links.append(f'<li><a href="{escape(f.name)}">{escape(f.name)}</a></li>')
    return links


def _seahelm_section(evaluate_dir: Path) -> tuple[str, dict]:
    path = evaluate_dir / "seahelm.json"
    if not path.is_file():
        return "", {}
    data = json.loads(path.read_text(encoding="utf-8"))
    # {model: {"score": x, "languages": {lang: score}}} (flattened by the evaluate stage)
    langs = sorted({lang for m in data.values() for lang in m.get("languages", {})})
    rows = []
    for model, m in data.items():
        cells = [escape(MODEL_LABELS.get(model, model)), _num(m.get("score"))]
        cells += [_num(m.get("languages", {}).get(lang)) for lang in langs]
        rows.append(cells)
    html = "<h2>SEA-HELM</h2>" + _table(["model", "overall", *langs], rows)
    if langs:
        series = {MODEL_LABELS.get(k, k): [(v.get("languages", {}).get(lang) or 0.0,) * 3 for lang in langs]
                  for k, v in data.items()}
        html += grouped_bars("SEA-HELM score per language", langs, series, ylabel="score")
    return html, data


def _stage_effects_section(evaluate_dir: Path) -> tuple[str, dict]:
    """Which stage helped: per language, distillation and then merging, on held-out KL and SEA-HELM, with paired
    intervals and BH-controlled significance (sealion.compare.stages)."""
    from ..compare.stages import stage_effects

    if not evaluate_dir.is_dir():
        return "", {}
    data = stage_effects(evaluate_dir)
    if not data["rows"]:
        return "", data
    rows = []
    for r in data["rows"]:
        if r.get("error"):
            rows.append([escape(r["step"]), escape(r["lang"]), escape(r["measure"]), "", "", escape(r["error"]), "",
                         "not comparable"])
            continue
        change = (f'{r["diff"]:+.4g} <span class="ci">[{r["lo"]:+.3g}, {r["hi"]:+.3g}]</span>'
                  if r.get("lo") is not None else f'{r["diff"]:+.4g}')
        cell = f"<b>{escape(r['verdict'])}</b>" if r["significant"] else escape(r["verdict"])
        rows.append([escape(r["step"]), escape(r["lang"]), escape(r["measure"]), _num(r["a_value"]),
                     _num(r["b_value"]), change, _num(r["q"]), cell])
    html = ("<h2>Which stage helped</h2><p>Distillation: student before → distilled; merging: distilled → merged. "
            "Paired bootstrap (sequences for held-out KL, items for SEA-HELM) with 95% intervals; significant = "
            f"Benjamini-Hochberg q ≤ {data['alpha']:g} over this table.</p>"
            + _table(["step", "language", "measure", "before", "after", "change [95% CI]", "q", "verdict"], rows,
                     "stage-effects"))
    return html, data


def _export_section(export_dir: Path) -> tuple[str, dict]:
    """The GGUF exports: size, fidelity per language against the final model, and llama.cpp's answers."""
    done = read_done(export_dir) or {}
    result = done.get("summary") or {}
    if not result.get("files"):
        return "", {}
    html = "<h2>On-device export (GGUF)</h2>"
    rows = [[escape(q), _human_bytes(f["bytes"]), escape(Path(f["path"]).name)] for q, f in result["files"].items()]
    html += _table(["type", "size", "file"], rows)
    fidelity = result.get("fidelity") or {}
    if fidelity:
        langs = list(next(iter(fidelity.values()))["languages"])
        html += ("<p>Each export against the final model it was made from, on built-in held-out text: KL "
                 "(original || GGUF) in nats per token (0 = identical; below 0.05 is hard to notice), top-1 agreement "
                 "and perplexity ratio (1.0 = no loss).</p>")
        for metric, label in (("kl", "KL per token"), ("top1", "top-1 agreement"), ("ppl_ratio", "perplexity ratio")):
            trows = [[escape(q)] + [f"{r['languages'][lang][metric]:.4f}" for lang in langs]
                     + [f"{r['mean'][metric]:.4f}"] for q, r in fidelity.items()]
            html += f"<h3>{label}</h3>" + _table(["type", *langs, "mean"], trows, "metrics")
    answers = result.get("answers") or {}
    rows_path = export_dir / "answers.jsonl"
    if answers and rows_path.is_file():
        items = [json.loads(x) for x in rows_path.read_text(encoding="utf-8").splitlines() if x.strip()]
        html += (f"<h3>{escape(answers['quant'])} through the llama.cpp backend</h3><p>One held-out prompt per "
                 f"language, greedy; {answers['ended_turn']}/{answers['n']} answers ended their turn (the rest ran "
                 f"to the token limit); {answers.get('tokens_per_s')} tokens/s.</p>")
        html += _table(["lang", "prompt", "answer", "ended"], [
            [escape(r["lang"]), escape(r["prompt"][:120]), escape(r["answer"][:240]),
             "yes" if r["finish_reason"] == "stop" else "no"] for r in items])
    return html, result


def _turn_end_section(evaluate_dir: Path) -> tuple[str, dict]:
    """Whether each model ends its reply with the turn-end id (the engine and llama.cpp stop on it)."""
    path = evaluate_dir / "turn_end.json"
    if not path.is_file():
        return "", {}
    result = json.loads(path.read_text(encoding="utf-8"))
    models = result.get("models") or {}
    if not models:
        return "", {}
    html = ("<h2>Ending the turn</h2><p>Held-out prompts answered greedily through the engine (at most "
            f"{result['max_new_tokens']} new tokens). A chat model must end its reply by emitting the turn-end id "
            "(106, <code>&lt;turn|&gt;</code>); spelling the marker as text never stops a server or llama.cpp.</p>")
    rows = [[escape(MODEL_LABELS.get(m, m)), f"{r['ended']}/{r['n']}", str(r["spelled"]), str(r["length"])]
            for m, r in models.items()]
    html += _table(["model", "ended with the turn-end id", "spelled a marker as text", "ran to the limit"], rows)
    summary = {m: {k: r[k] for k in ("turn_end_id", "n", "ended", "spelled", "length", "share")}
               for m, r in models.items()}
    return html, summary


def _num(v: Any) -> str:
    return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else escape(str(v)))


READING_GUIDE = (
    "The teacher wrote responses to the prompts; the student (a smaller model) was trained to match the "
    "teacher's next-token distribution on them, then merged with a partner (by default its own starting point). "
    "The held-out section "
    "scores all of them on prompts that training never saw. What good looks like: KL(teacher ‖ model) falls from "
    "<i>student before</i> to <i>student after</i> (0 would be the teacher itself), top-1 agreement rises toward "
    "1, and perplexity on the teacher's responses falls toward the teacher's own; an improvement counts when the "
    "95% intervals do not overlap. The merged model usually lands between the two students.")


def skipped_notes(run_dir: Path) -> list[str]:
    """What the evaluate stage left out (e.g. SEA-HELM without --data), from its DONE marker."""
    done = read_done(Path(run_dir) / "evaluate") or {}
    return list((done.get("summary") or {}).get("skipped") or [])


def build_report(run_dir: Path, stage_names: list[str], recipe_yaml: str, *, title: str,
                 description: str = "") -> dict[str, Any]:
    """Write RUN/report.html and RUN/report/report.json; returns the report data."""
    run_dir = Path(run_dir)
    report_path = run_dir / "report.html"
    stages = _stage_rows(run_dir, stage_names)
    heldout_path = run_dir / "evaluate" / "heldout.json"
    heldout = json.loads(heldout_path.read_text(encoding="utf-8")) if heldout_path.is_file() else {}
    curves = training_curves(run_dir / "distill") if (run_dir / "distill").is_dir() else {}
    seahelm_html, seahelm = _seahelm_section(run_dir / "evaluate")
    effects_html, effects = _stage_effects_section(run_dir / "evaluate")
    export_html, export = _export_section(run_dir / "export")
    turn_end_html, turn_end = _turn_end_section(run_dir / "evaluate")

    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="muted">run directory <code>{escape(str(run_dir.resolve()))}</code>; report written '
             f'{time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}</p>']
    if description:
        parts.append(f'<p class="lead">{escape(description.strip())}</p>')
    parts.append(f'<p class="guide">{READING_GUIDE}</p>')
    skipped = skipped_notes(run_dir)
    if skipped:
        parts.append('<div class="skipped"><b>Not run in this report:</b><ul>'
                     + "".join(f"<li>{escape(n)}</li>" for n in skipped) + "</ul></div>")
    # stages
    srows = []
    for s in stages:
        link = f'<a href="{escape(s["stage"])}/{DONE}">{DONE}</a>' if s["done"] else "not done"
        secs = "–" if s["seconds"] is None else f'{s["seconds"]:.1f} s'
        srows.append([escape(s["stage"]), "done" if s["done"] else "–", secs, _human_bytes(s["bytes"] or 0), link])
    total = sum(s["seconds"] or 0 for s in stages)
    parts.append(f"<h2>Stages</h2><p>total {total:.1f} s</p>"
                 + _table(["stage", "status", "time", "output size", "marker"], srows, "stages"))
    # training
    if curves:
        parts.append("<h2>Distillation</h2>")
        groups = [("training loss (KD part and total)", ["loss", "kd"], "nats / token"),
                  ("cross-entropy on the teacher's tokens", ["ce"], "nats / token"),
                  ("top-1 agreement with the teacher (training batches)", ["top1_agree"], "fraction")]
        for gtitle, keys, ylabel in groups:
            series = {k: curves[k] for k in keys if k in curves}
            if series:
                parts.append(line_chart(gtitle, series, xlabel="step", ylabel=ylabel))
    # held-out closeness to the teacher
    verdict: dict[str, Any] = {}
    if heldout:
        models = [m for m in ("teacher", "student-init", "student", "merged") if m in heldout]
        langs = [lang for lang in next(iter(heldout.values())) if lang != "all"]
        parts.append("<h2>Held-out closeness to the teacher</h2>"
                     "<p>Per language, on held-out prompts with the teacher's own responses; error bars are 95% "
                     "bootstrap intervals over sequences.</p>")
        for metric, (mtitle, ylabel, log_y) in METRIC_INFO.items():
            shown = [m for m in models if not (metric in ("kl", "top1") and m == "teacher")]
            series = {MODEL_LABELS[m]: [(heldout[m][lang][metric]["value"], heldout[m][lang][metric]["lo"],
                                         heldout[m][lang][metric]["hi"]) for lang in [*langs, "all"]]
                      for m in shown}
            parts.append(grouped_bars(mtitle, [*langs, "all"], series, ylabel=ylabel, log_y=log_y))
            trows = [[escape(MODEL_LABELS[m])] + [_ci(heldout[m][lang][metric]) for lang in [*langs, "all"]]
                     for m in models]
            parts.append(f"<h3>{escape(mtitle)}</h3>" + _table(["model", *langs, "all"], trows, "metrics"))
        if "student-init" in heldout:
            for m in ("student", "merged"):
                if m in heldout:
                    verdict[m] = {lang: heldout[m][lang]["kl"]["value"] < heldout["student-init"][lang]["kl"]["value"]
                                  for lang in [*langs, "all"]}
            if verdict:
                lines = []
                for m, by_lang in verdict.items():
                    worse = [lang for lang, ok in by_lang.items() if not ok]
                    lines.append(f"<li>{escape(MODEL_LABELS[m])}: closer to the teacher (lower KL) than the student "
                                 f"before distillation in {sum(by_lang.values())}/{len(by_lang)} "
                                 f"{'(all)' if not worse else '(not in: ' + ', '.join(worse) + ')'}</li>")
                parts.append("<h3>Verdict</h3><ul class=\"verdict\">" + "".join(lines) + "</ul>")
    if turn_end_html:
        parts.append(turn_end_html)
    if seahelm_html:
        parts.append(seahelm_html)
    if effects_html:
        parts.append(effects_html)
    if export_html:
        parts.append(export_html)
    parts.append("<h2>Recipe (resolved)</h2><pre>" + escape(recipe_yaml) + "</pre>")
    parts.append("<h2>Artefacts</h2><ul class=\"artefacts\">" + "".join(_artefacts(run_dir, report_path)) + "</ul>")

    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
th {{ background: #f3f3f3; }}
.ci, .muted {{ color: #777; font-size: 11px; }}
.lead, .guide {{ max-width: 900px; line-height: 1.45; }}
.skipped {{ border-left: 4px solid #e15759; background: #fdf1f1; padding: 0.3em 1em; margin: 1em 0; }}
pre {{ background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }}
svg.chart {{ display: block; margin: 1em 0; max-width: 100%; height: auto; }}
</style></head>
<body>
{''.join(parts)}
<script>document.body.dataset.rendered = String(document.querySelectorAll("svg.chart").length);</script>
</body></html>
"""
    write_text(report_path, html)
    data = {"title": title, "stages": [s["stage"] for s in stages if s["done"]], "heldout": heldout,
            "seahelm": seahelm, "verdict": verdict, "stage_effects": effects, "skipped": skipped, "export": export,
            "turn_end": turn_end,
            "curves": {k: [[x, round(y, 6)] for x, y in v] for k, v in curves.items()}}
    write_json(run_dir / "report" / "report.json", _round(data))
    return data


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v) for v in obj]
    return obj
