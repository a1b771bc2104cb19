"""What `sealion recipe` prints when a run ends: the teacher's writing in each language, held-out KL per model and
language, and the verdict. Read from the run's own files (data/train.jsonl, report/report.json), so it is the same
on a rerun that skipped every stage."""

from __future__ import annotations

import json
from pathlib import Path

MODELS = ("teacher", "student-init", "student", "merged")


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def teacher_samples(run_dir: Path, *, width: int = 110) -> list[str]:
    """One prompt and the teacher's response per language, from the data stage's train split."""
    path = Path(run_dir) / "data" / "train.jsonl"
    if not path.is_file():
        return []
    seen: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        seen.setdefault(row.get("lang", "?"), row)
    lines = []
    for lang, row in seen.items():
        user = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
        reply = next((m["content"] for m in row["messages"] if m["role"] == "assistant"), "")
        lines.append(f"  [{lang}] {_one_line(user, width // 2)}")
        lines.append(f"       -> {_one_line(reply, width)}")
    return lines


def heldout_table(run_dir: Path) -> list[str]:
    """Held-out KL(teacher || model) per language and the verdict, as the report stage wrote them."""
    path = Path(run_dir) / "report" / "report.json"
    if not path.is_file():
        return []
    report = json.loads(path.read_text(encoding="utf-8"))
    heldout, verdict = report.get("heldout") or {}, report.get("verdict") or {}
    models = [m for m in MODELS if m in heldout and m != "teacher"]
    if not models:
        return []
    langs = list(next(iter(heldout.values())))
    lines = ["  " + f"{'model':<14}" + "".join(f"{lang:>8}" for lang in langs)]
    for m in models:
        lines.append("  " + f"{m:<14}" + "".join(f"{heldout[m][lang]['kl']['value']:>8.3f}" for lang in langs))
    for m, by_lang in verdict.items():
        worse = [lang for lang, closer in by_lang.items() if not closer]
        lines.append(f"  {m}: closer to the teacher than the student before distillation in "
                     f"{len(by_lang) - len(worse)}/{len(by_lang)}" + (f" (not in: {', '.join(worse)})"
                                                                      if worse else " (all)"))
    return lines


def summary_lines(run_dir: Path) -> list[str]:
    out: list[str] = []
    samples = teacher_samples(run_dir)
    if samples:
        out += ["Training data: the teacher's response to one prompt per language:", *samples]
    table = heldout_table(run_dir)
    if table:
        out += ["Held-out KL(teacher || model), nats per token:", *table]
    turn_end = run_dir / "evaluate" / "turn_end.json"
    if turn_end.is_file():
        models = json.loads(turn_end.read_text(encoding="utf-8")).get("models") or {}
        if models:
            out.append("Replies that end with the turn-end id: " + ", ".join(
                f"{m} {r['ended']}/{r['n']}" + (f" ({r['spelled']} spell it as text)" if r["spelled"] else "")
                for m, r in models.items()))
    from .report import skipped_notes

    out += [f"Not run: {note}" for note in skipped_notes(run_dir)]
    return out
