"""What `sealion recipe` prints when a run ends: the teacher's writing in each language, held-out KL per model and
language, and the verdict. Read from the run's own files, so it is the same on a rerun that skipped every stage."""

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
    """Held-out KL(teacher || model) per language; lower is closer to the teacher."""
    path = Path(run_dir) / "evaluate" / "heldout.json"
    if not path.is_file():
        return []
    heldout = json.loads(path.read_text(encoding="utf-8"))
    models = [m for m in MODELS if m in heldout and m != "teacher"]
    if not models:
        return []
    langs = list(next(iter(heldout.values())))
    lines = ["  " + f"{'model':<14}" + "".join(f"{lang:>8}" for lang in langs)]
    for m in models:
        lines.append("  " + f"{m:<14}" + "".join(f"{heldout[m][lang]['kl']['value']:>8.3f}" for lang in langs))
    if "student-init" in heldout:
        for m in ("student", "merged"):
            if m in heldout:
                worse = [lang for lang in langs
                         if not heldout[m][lang]["kl"]["value"] < heldout["student-init"][lang]["kl"]["value"]]
                lines.append(f"  {m}: closer to the teacher than the student before distillation in "
                             f"{len(langs) - len(worse)}/{len(langs)}" + (f" (not in: {', '.join(worse)})"
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
    return out
