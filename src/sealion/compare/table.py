"""Scores of several runs at every SEA-HELM level, and the paired comparison table.

Levels (as the leaderboard): task -> aggregation group (e.g. translations) -> competency -> language -> SEA average.
Every level carries each model's point score and its bootstrap replicate vector; a level's vectors are element-wise
means of its members', and every task's item draw is shared by all models (`stats.paired_replicates`), so any two
models' difference at any level is a paired difference.
"""

from __future__ import annotations

import zlib

from dataclasses import dataclass, field

import numpy as np

from ..evaluate.tasks import SEA_LANGUAGES
from . import stats
from .load import EvalRun, aligned_scores, check_comparable


@dataclass
class Level:
    level: str  # "task" | "competency" | "language" | "sea"
    lang: str | None
    competency: str | None
    task: str | None
    points: np.ndarray  # [models]
    reps: np.ndarray  # [models, n_boot]
    n_items: int = 0
    binary: list[np.ndarray] | None = None  # per model, per-item majority outcome (binary tasks only)
    languages: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.level == "sea":
            return "SEA average"
        if self.level == "language":
            return f"{self.lang}"
        if self.level == "competency":
            return f"{self.lang}/{self.competency}"
        return f"{self.lang}/{self.competency}/{self.task}"


def _mean(levels: list[Level]) -> tuple[np.ndarray, np.ndarray]:
    return np.mean([x.points for x in levels], axis=0), np.mean([x.reps for x in levels], axis=0)


def levels(runs: list[EvalRun], *, n_boot: int = stats.N_REPLICATES, seed: int = stats.COMPARE_SEED) -> list[Level]:
    """All levels, in table order: SEA average, then per language its total, and per competency its total and tasks."""
    check_comparable(runs)
    tree: dict[str, dict[str, list[tuple[str | None, Level]]]] = {}
    for key in sorted(runs[0].tasks):
        t = runs[0].tasks[key]
        models = aligned_scores(runs, key)
        reps = stats.paired_replicates(models, n_boot=n_boot, rng=_cell_rng(seed, *key))
        points = np.array([stats.task_score(m) for m in models])
        binary = [stats.majority(m.scores) for m in models] if all(stats.is_binary(m.scores) for m in models) else None
        lv = Level("task", t.lang, t.competency, t.task, points, reps, n_items=len(t.ids), binary=binary)
        tree.setdefault(t.lang, {}).setdefault(t.competency, []).append((t.group, lv))
    out: list[Level] = []
    lang_levels: dict[str, Level] = {}
    body: list[Level] = []
    for lang in _lang_order(tree):
        comp_levels, rows = [], []
        for comp in sorted(tree[lang]):
            members = tree[lang][comp]
            units: dict[str, list[Level]] = {}
            for group, lv in members:
                units.setdefault(group or lv.task, []).append(lv)
            p, r = _mean([Level("group", lang, comp, g, *_mean(v)) for g, v in units.items()])
            cl = Level("competency", lang, comp, None, p, r, n_items=sum(x.n_items for _, x in members))
            comp_levels.append(cl)
            rows += [cl] + [lv for _, lv in members]
        p, r = _mean(comp_levels)
        ll = Level("language", lang, None, None, p, r, n_items=sum(c.n_items for c in comp_levels))
        lang_levels[lang] = ll
        body += [ll] + rows
    sea = [lang for lang in SEA_LANGUAGES if lang in lang_levels]
    if sea:
        p, r = _mean([lang_levels[lang] for lang in sea])
        out.append(Level("sea", None, None, None, p, r, n_items=sum(lang_levels[x].n_items for x in sea),
                         languages=sea))
    return out + body


def _lang_order(tree: dict) -> list[str]:
    return [x for x in SEA_LANGUAGES if x in tree] + sorted(x for x in tree if x not in SEA_LANGUAGES)


def compare(runs: list[EvalRun], *, alpha: float = stats.ALPHA, n_boot: int = stats.N_REPLICATES,
            seed: int = stats.COMPARE_SEED, lv: list[Level] | None = None) -> dict:
    """Each run after the first against the first (the baseline): rows per level with B - A, its interval, p-value,
    BH q-value over the whole table (all levels, all comparisons), McNemar's exact p for binary tasks, and MDE."""
    lv = lv if lv is not None else levels(runs, n_boot=n_boot, seed=seed)
    comparisons = []
    for j in range(1, len(runs)):
        rows = []
        for x in lv:
            d = stats.difference(float(x.points[j] - x.points[0]), x.reps[j] - x.reps[0], alpha=alpha)
            row = {"level": x.level, "name": x.name, "lang": x.lang, "competency": x.competency, "task": x.task,
                   "a": float(x.points[0]), "b": float(x.points[j]), **d.as_dict(), "n_items": x.n_items}
            if x.binary is not None:
                only_a, only_b = stats.discordant(x.binary[0], x.binary[j])
                row.update(mcnemar_p=stats.mcnemar_exact(only_a, only_b), only_a=only_a, only_b=only_b)
            if x.languages:
                row["languages"] = x.languages
            rows.append(row)
        comparisons.append({"a": runs[0].label, "b": runs[j].label, "rows": rows})
    flat = [r for c in comparisons for r in c["rows"]]
    qs = stats.benjamini_hochberg([np.nan if r["p"] is None else r["p"] for r in flat])
    for r, q in zip(flat, qs):
        r["q"] = None if np.isnan(q) else float(q)
        r["significant"] = bool(r["q"] is not None and r["q"] <= alpha)
    return {"runs": [{"label": r.label, "path": str(r.path), "model": r.model,
                      "n_runs": max(t.scores.shape[0] for t in r.tasks.values())} for r in runs],
            "alpha": alpha, "n_replicates": n_boot, "seed": seed, "comparisons": comparisons}


def _cell_rng(seed: int, *key: str) -> np.random.Generator:
    """One generator per table cell: a cell's replicates do not depend on which other cells were compared."""
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, key)).encode())])
