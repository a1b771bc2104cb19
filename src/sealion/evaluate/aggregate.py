"""The SEA-HELM leaderboard's aggregation over runs (its `helpers/results_aggregation.ipynb`, `aggregate_scores`).

Per task: 30 bootstrap replicates; in each, every question draws one of the task's complete runs and takes that
run's item score (`generator.integers(0, n_runs, size=(30, n_items))`). One generator, seeded 94370244, is consumed
task by task in the order the tasks are given (SEA-HELM's config order), languages in order within a task.
A replicate's score:

* multiple-choice tasks (gold labels present and not all unique): balanced accuracy over the gold classes (a wrong
  or unextracted answer is a miss), normalised ``(score - baseline) / (max - baseline)`` with baseline
  1/#distinct gold labels, clipped at 0;
* other tasks: ``100 * mean(item scores)`` (baseline 0, so normalised = raw).

Aggregation groups (translations, pragmatics, thai_exam), competencies, languages and the SEA average
(id, vi, th, ta, tl, ms, my) are element-wise means of replicate vectors; mean and standard error (sample variance,
n - 1, over the replicates: ``sqrt(variance / n)``) are taken at every level, so the stderr is clustered by question
over the runs. Raw (unnormalised) scores are aggregated the same way alongside.

Tasks flagged ``excluded`` (translation without MetricX-24) are reported but left out of every average.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

N_BOOTSTRAPS = 30
BOOTSTRAP_SEED = 94370244
SEA_LANGUAGES = ("id", "vi", "th", "ta", "tl", "ms", "my")


@dataclass
class TaskRuns:
    """One (language, task) over its runs: per-item scores (0..1, None = not scored) per run."""

    lang: str
    task: str
    competency: str
    scores: list[list[float | None] | None]  # [run][item]; None for a run that is missing
    labels: list[Any] | None = None  # gold label per item (multiple choice detection, balanced accuracy)
    group: str | None = None
    metric: str = ""
    per_run_code: list[float] = field(default_factory=list)  # the task's per-run metric (SEA-HELM's per-run code)
    excluded: str | None = None  # reason to leave the task out of the averages
    extra: dict[str, Any] = field(default_factory=dict)  # passed through into the task's entry


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean with the sample variance (n - 1), as SEA-HELM's `calculate_stderr`."""
    vals = [float(v) for v in values]
    if len(vals) < 2:
        return 0.0
    return math.sqrt(statistics.variance(vals) / len(vals))


def summary(vec: Sequence[float]) -> dict[str, float]:
    vals = [float(v) for v in vec]
    if not vals or any(math.isnan(v) for v in vals):
        return {"mean": None, "stderr": None}  # no value (JSON null; NaN would not compare equal to itself)
    return {"mean": statistics.mean(vals), "stderr": stderr(vals)}


def is_multiple_choice(labels: list[Any] | None) -> bool:
    """SEA-HELM's test: labels exist, are hashable, and are not all unique."""
    if not labels:
        return False
    try:
        return len(set(labels)) != len(labels)
    except TypeError:
        return False


def normalize(score: float, baseline: float, maximum: float = 1.0) -> float:
    """(score - baseline) / (max - baseline), clipped at 0. A single gold class has no chance level to remove."""
    if maximum - baseline <= 0:
        return max(score, 0.0)
    return max((score - baseline) / (maximum - baseline), 0.0)


def balanced_accuracy(labels: Sequence[Any], correct: np.ndarray) -> float:
    """Mean per-class recall over the gold classes, from per-item correctness (what balanced_accuracy_score gives
    for predictions that are either the gold label or a miss)."""
    labels = list(labels)
    classes: dict[Any, list[int]] = {}
    for i, lab in enumerate(labels):
        classes.setdefault(lab, []).append(i)
    return float(np.mean([np.mean(correct[idx]) for idx in classes.values()]))


def task_replicates(t: TaskRuns, rng: np.random.Generator, n_boot: int = N_BOOTSTRAPS) -> dict[str, Any]:
    """-> {"norm": [n_boot], "raw": [n_boot], "incomplete": bool, "n_runs": complete runs}; draws from `rng` only
    when the task has a complete run (as SEA-HELM)."""
    runs = [r for r in t.scores if r is not None and len(r) > 0]
    incomplete = len(runs) != len(t.scores)
    if not runs:
        zero = np.zeros(n_boot)
        return {"norm": zero, "raw": zero, "incomplete": True, "n_runs": 0}
    n_items = len(runs[0])
    if any(len(r) != n_items for r in runs):
        raise ValueError(f"{t.lang}/{t.task}: runs have different item counts")
    mat = np.array([[0.0 if s is None else float(s) for s in r] for r in runs])
    scored = np.array([any(r[i] is not None for r in runs) for i in range(n_items)])  # None everywhere: not scored
    index = rng.integers(0, len(runs), size=(n_boot, n_items))
    drawn = mat[index, np.arange(n_items)]
    if is_multiple_choice(t.labels):
        labels = list(t.labels)
        chance = 1.0 / len(set(labels))
        raw = np.array([balanced_accuracy(labels, row >= 1.0) for row in drawn])
        norm = np.array([normalize(x, chance) for x in raw]) * 100
        raw = raw * 100
    else:
        cols = drawn[:, scored] if scored.any() else drawn[:, :0]
        raw = cols.mean(axis=1) * 100 if cols.shape[1] else np.zeros(n_boot)
        norm = raw
    return {"norm": norm, "raw": raw, "incomplete": incomplete, "n_runs": len(runs)}


def _mean_vec(vectors: list[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(vectors), axis=0)


def _both(norm: np.ndarray, raw: np.ndarray) -> dict[str, Any]:
    return {**summary(norm), "raw": summary(raw)}


def aggregate(tasks: list[TaskRuns], *, n_boot: int = N_BOOTSTRAPS, seed: int = BOOTSTRAP_SEED,
              sea_languages: Sequence[str] = SEA_LANGUAGES, expected: dict[str, list[str]] | None = None) -> dict:
    """-> {"results": {lang: {competency: {task: entry, "groups": {...}, "total": ...}, "total": ...}},
    "sea_average": ..., "incomplete_tasks": [...], "excluded_tasks": [...]} (see the module docstring).
    `expected`: {lang: [task, ...]} the set asked for; a language missing any of them is marked incomplete."""
    rng = np.random.default_rng(seed)
    results: dict[str, dict] = {}
    vecs: dict[str, dict[str, dict[str, tuple]]] = {}  # lang -> competency -> unit (task or group) -> (norm, raw)
    group_members: dict[tuple[str, str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    per_run_units: dict[str, dict[str, dict[str, list[list[float]]]]] = {}
    incomplete: list[str] = []
    excluded: list[str] = []
    for t in tasks:
        reps = task_replicates(t, rng, n_boot)
        entry = {**_both(reps["norm"], reps["raw"]), "metric": t.metric, "n_items": len(t.labels or []) or
                 max((len(r) for r in t.scores if r), default=0), "n_runs": reps["n_runs"], "group": t.group,
                 "multiple_choice": is_multiple_choice(t.labels), "incomplete": reps["incomplete"],
                 "per_run": list(t.per_run_code),
                 "per_run_code": {"mean": _mean(t.per_run_code),
                                  "stderr": stderr(t.per_run_code) if _mean(t.per_run_code) is not None else None},
                 **t.extra}
        if t.extra.get("not_scored"):  # no score exists: null, not the zeros of the empty score matrix
            entry.update(mean=None, stderr=None, raw={"mean": None, "stderr": None})
        if t.excluded:
            entry["excluded_from_average"] = t.excluded
            excluded.append(f"{t.lang}/{t.task}")
        if reps["incomplete"]:
            incomplete.append(f"{t.lang}/{t.task}")
        results.setdefault(t.lang, {}).setdefault(t.competency, {})[t.task] = entry
        if t.excluded:
            continue
        pair = (reps["norm"], reps["raw"])
        unit = t.group or t.task
        if t.group:
            group_members.setdefault((t.lang, t.competency, t.group), []).append(pair)
        else:
            vecs.setdefault(t.lang, {}).setdefault(t.competency, {})[unit] = pair
        runs_code = per_run_units.setdefault(t.lang, {}).setdefault(t.competency, {})
        runs_code.setdefault(unit, []).append(list(t.per_run_code))
    for (lang, comp, group), members in group_members.items():
        pair = (_mean_vec([m[0] for m in members]), _mean_vec([m[1] for m in members]))
        vecs.setdefault(lang, {}).setdefault(comp, {})[group] = pair
        results[lang][comp].setdefault("groups", {})[group] = _both(*pair)
    lang_vecs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for lang, comps in results.items():
        comp_pairs = []
        for comp in list(comps):
            units = vecs.get(lang, {}).get(comp)
            if not units:
                comps[comp]["total"] = {"mean": None, "stderr": None, "raw": summary([]),
                                        "note": "every task of this competency is left out of the averages"}
                continue
            pair = (_mean_vec([u[0] for u in units.values()]), _mean_vec([u[1] for u in units.values()]))
            comps[comp]["total"] = {**_both(*pair), "per_run_code": _per_run_code(per_run_units[lang][comp])}
            comp_pairs.append(pair)
        if comp_pairs:
            lang_vecs[lang] = (_mean_vec([p[0] for p in comp_pairs]), _mean_vec([p[1] for p in comp_pairs]))
            lang_code = [comps[c]["total"]["per_run_code"]["mean"] for c in comps
                         if "per_run_code" in comps[c]["total"] and comps[c]["total"]["per_run_code"]["mean"] is not None]
            comps["total"] = {**_both(*lang_vecs[lang]),
                              "per_run_code": {"mean": _mean(lang_code)}}
        else:
            comps["total"] = {"mean": None, "stderr": None, "raw": summary([])}
        if expected is not None:
            missing = [x for x in expected.get(lang, []) if not any(x in c for c in comps.values() if isinstance(c, dict))]
            comps["total"]["complete"] = not missing and not any(s.startswith(lang + "/") for s in incomplete)
            if missing:
                comps["total"]["missing_tasks"] = missing
    sea_langs = [lang for lang in sea_languages if lang in lang_vecs]
    sea = None
    if sea_langs:
        pair = (_mean_vec([lang_vecs[x][0] for x in sea_langs]), _mean_vec([lang_vecs[x][1] for x in sea_langs]))
        sea = {**_both(*pair), "languages": sea_langs,
               "complete": len(sea_langs) == len(sea_languages) and not incomplete
               and all(results[x]["total"].get("complete", True) for x in sea_langs)}
    return {"results": results, "sea_average": sea, "incomplete_tasks": incomplete, "excluded_tasks": excluded,
            "n_bootstraps": n_boot, "bootstrap_seed": seed}


def _per_run_code(units: dict[str, list[list[float]]]) -> dict[str, float]:
    """SEA-HELM's per-run code: group = macro average of its tasks, competency = mean of tasks/groups, per run;
    reported as the mean over runs."""
    per_unit = []
    for members in units.values():
        n = min((len(m) for m in members), default=0)
        if n:
            per_unit.append([statistics.mean(m[r] for m in members) for r in range(n)])
    n = min((len(u) for u in per_unit), default=0)
    if not n:
        return {"mean": None}
    per_run = [_mean([u[r] for u in per_unit]) for r in range(n)]
    return {"mean": _mean(per_run), "per_run": per_run}


def _mean(xs: Sequence[float | None]) -> float | None:
    """Mean, or None when a value is missing (None / NaN) or there is none."""
    vals = [float(x) for x in xs if x is not None and not math.isnan(float(x))]
    return statistics.mean(vals) if vals and len(vals) == len(xs) else None
