"""Which recipe stage helped: per language, whether distillation (student before -> distilled) and then merging
(distilled -> merged) changed held-out KL and the SEA-HELM scores beyond noise.

Reads what the recipe's evaluate stage wrote: `heldout_rows.jsonl` (per model and sequence: summed KL and tokens)
and `seahelm/<model>/` (evaluation run directories). KL differences come from a paired bootstrap over sequences,
SEA-HELM differences from `sealion compare`'s paired bootstrap over items; Benjamini-Hochberg runs over the table.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..io import read_jsonl
from . import stats

STEPS = (("distillation", "student-init", "student"), ("merging", "student", "merged"))


def _heldout_rows(evaluate_dir: Path, alpha: float, n_boot: int, seed: int) -> list[dict]:
    path = evaluate_dir / "heldout_rows.jsonl"
    if not path.is_file():
        return []
    by: dict[str, dict[tuple[str, str], dict]] = {}
    for r in read_jsonl(path):
        by.setdefault(r["model"], {})[(str(r["lang"]), str(r["id"]))] = r
    out = []
    for step, a, b in STEPS:
        if a not in by or b not in by:
            continue
        keys = [k for k in by[a] if k in by[b]]
        langs = list(dict.fromkeys(lang for lang, _ in keys))
        for lang in [*langs, "all"]:
            sel = [k for k in keys if lang == "all" or k[0] == lang]
            tokens = np.array([by[a][k]["tokens"] for k in sel], dtype=float)
            if not len(sel) or tokens.sum() == 0:
                continue
            kl = np.array([[by[m][k]["kl"] for k in sel] for m in (a, b)], dtype=float)
            rng = np.random.default_rng([seed, zlib.crc32(f"heldout/{step}/{lang}".encode())])
            point, reps = stats.ratio_replicates(kl, tokens, n_boot=n_boot, rng=rng)
            d = stats.difference(float(point[1] - point[0]), reps[1] - reps[0], alpha=alpha)
            out.append({"step": step, "a": a, "b": b, "lang": lang, "measure": "held-out KL", "higher_is_better": False,
                        "a_value": float(point[0]), "b_value": float(point[1]), **d.as_dict(), "n": len(sel)})
    return out


def _seahelm_rows(evaluate_dir: Path, alpha: float, n_boot: int, seed: int) -> list[dict]:
    from ..errors import SealionError
    from .load import load_run
    from .table import levels

    root = evaluate_dir / "seahelm"
    out = []
    for step, a, b in STEPS:
        if not ((root / a / "runs").is_dir() and (root / b / "runs").is_dir()):
            continue
        try:
            runs = [load_run(root / a, label=a), load_run(root / b, label=b)]
            lv = levels(runs, n_boot=n_boot, seed=seed)
        except SealionError as e:  # not comparable (e.g. another suite per model): say so instead of a number
            out.append({"step": step, "a": a, "b": b, "lang": "all", "measure": "SEA-HELM", "error": str(e)})
            continue
        for x in lv:
            if x.level not in ("sea", "language"):
                continue
            d = stats.difference(float(x.points[1] - x.points[0]), x.reps[1] - x.reps[0], alpha=alpha)
            out.append({"step": step, "a": a, "b": b, "lang": "all" if x.level == "sea" else x.lang,
                        "measure": "SEA-HELM", "higher_is_better": True, "a_value": float(x.points[0]),
                        "b_value": float(x.points[1]), **d.as_dict(), "n": x.n_items})
    return out


def verdict(row: dict) -> str:
    if row.get("error"):
        return "not comparable"
    if not row.get("significant"):
        return "no change beyond noise"
    better = (row["diff"] > 0) == row["higher_is_better"]
    if row["measure"] == "held-out KL":
        return "closer to the teacher" if better else "further from the teacher"
    return "better" if better else "worse"


def stage_effects(evaluate_dir: str | Path, *, alpha: float = stats.ALPHA, n_boot: int = stats.N_REPLICATES,
                  seed: int = stats.COMPARE_SEED) -> dict:
    """{"alpha", "rows": [{step, a, b, lang, measure, a_value, b_value, diff, lo, hi, p, q, significant, verdict}]}"""
    evaluate_dir = Path(evaluate_dir)
    rows = _heldout_rows(evaluate_dir, alpha, n_boot, seed) + _seahelm_rows(evaluate_dir, alpha, n_boot, seed)
    qs = stats.benjamini_hochberg([np.nan if r.get("p") is None else r["p"] for r in rows])
    for r, q in zip(rows, qs):
        r["q"] = None if np.isnan(q) else float(q)
        r["significant"] = bool(r["q"] is not None and r["q"] <= alpha)
        r["verdict"] = verdict(r)
    return {"alpha": alpha, "n_replicates": n_boot, "rows": rows}
