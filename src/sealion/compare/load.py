"""Read evaluation run directories (`sealion eval --out DIR`) into per-item score matrices, and check that runs are
comparable: the same (language, task) pairs, the same items, the same prompts, the same task versions and metrics.

Only the per-item files (`runs/run_<k>/<lang>/<task>.jsonl`) are needed; `results.json` (model name, competency,
group, kind, metric per task) and `config.json` are read when present, and the task specs fill what they lack.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..io import read_jsonl
from .stats import TaskScores

CLASSIFICATION_KINDS = ("choice", "minimal-pairs")  # SEA-HELM scores these with balanced accuracy


@dataclass
class TaskRun:
    """One (language, task) of one evaluation: item ids, labels, a hash of each item's prompt, scores[run, item]."""

    lang: str
    task: str
    competency: str
    group: str | None
    kind: str | None
    metric: str | None
    version: Any
    chance: float | None
    ids: list[str]
    labels: list[Any]
    prompt_hashes: list[str]
    scores: np.ndarray

    @property
    def key(self) -> tuple[str, str]:
        return self.lang, self.task

    def classification(self) -> bool:
        if self.kind is not None:
            return self.kind in CLASSIFICATION_KINDS
        # SEA-HELM's notebook rule when the kind is unknown: binary scores and labels that repeat
        labels = [json.dumps(x, sort_keys=True) for x in self.labels]
        s = self.scores[np.isfinite(self.scores)]
        return len(set(labels)) < len(labels) and bool(np.all((s == 0) | (s == 1)))


@dataclass
class EvalRun:
    path: Path
    label: str
    model: str
    tasks: dict[tuple[str, str], TaskRun] = field(default_factory=dict)


def _run_index(p: Path) -> int:
    m = re.fullmatch(r"run_(\d+)", p.name)
    return int(m.group(1)) if m else -1


def _prompt_hash(prompt: Any) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{path}: invalid JSON ({e})") from None
    return data if isinstance(data, dict) else {}


def _results_entries(results: dict) -> dict[tuple[str, str], tuple[str, dict]]:
    """(lang, task) -> (competency, entry) from results.json; aggregate keys ('total') and non-task values skipped."""
    out = {}
    for lang, comps in (results.get("results") or {}).items():
        if not isinstance(comps, dict):
            continue
        for comp, tasks in comps.items():
            if comp == "total" or not isinstance(tasks, dict):
                continue
            for task, e in tasks.items():
                if task != "total" and isinstance(e, dict) and ("mean" in e or "n_items" in e):
                    out[(lang, task)] = (comp, e)
    return out


def _spec(task: str):
    try:
        from ..evaluate.tasks import get_spec

        return get_spec(task)
    except Exception:  # a task this install does not know (a plug-in, an older spec): results.json must do
        return None


def load_run(path: str | Path, label: str | None = None) -> EvalRun:
    """An evaluation directory (or its results.json) -> EvalRun with every (language, task) it scored."""
    path = Path(path)
    if path.is_file() and path.name == "results.json":
        path = path.parent
    if not path.is_dir():
        raise ConfigError(f"{path}: not an evaluation run directory (or results.json)")
    run_dirs = sorted((p for p in (path / "runs").glob("run_*") if p.is_dir() and _run_index(p) >= 0), key=_run_index)
    if not run_dirs:
        raise DataError(f"{path}: no per-item files (runs/run_<k>/<lang>/<task>.jsonl); is this a `sealion eval` "
                        "output directory?")
    results = _read_json(path / "results.json")
    config = _read_json(path / "config.json")
    entries = _results_entries(results)
    versions = config.get("task_versions") or results.get("task_versions") or {}
    run = EvalRun(path=path, label=label or path.name, model=str(results.get("model") or config.get("model") or path.name))
    # An output directory reused by a later, smaller `sealion eval` still holds the earlier run's files: only the
    # (language, task) pairs its results.json scored, over the runs its config asked for, belong to this run.
    if isinstance(config.get("runs"), int) and config["runs"] > 0:
        run_dirs = [rd for rd in run_dirs if _run_index(rd) < config["runs"]] or run_dirs
    files: dict[tuple[str, str], list[Path]] = {}
    for rd in run_dirs:
        for f in sorted(rd.glob("*/*.jsonl")):
            if entries and (f.parent.name, f.stem) not in entries:
                continue
            files.setdefault((f.parent.name, f.stem), []).append(f)
    for (lang, task), paths in sorted(files.items()):
        rows_per_run = [read_jsonl(p) for p in paths]
        first = rows_per_run[0]
        ids = _item_ids(first)
        for p, rows in zip(paths[1:], rows_per_run[1:]):
            if _item_ids(rows) != ids:
                raise DataError(f"{p}: items differ from {paths[0]} (runs of one evaluation must share items)")
        scores = np.array([[_score(r, p, i) for i, r in enumerate(rows, 1)] for p, rows in zip(paths, rows_per_run)],
                          dtype=float).reshape(len(paths), len(ids))
        comp, entry = entries.get((lang, task), (None, {}))
        spec = _spec(task)
        run.tasks[(lang, task)] = TaskRun(
            lang=lang, task=task,
            competency=comp or (spec.competency if spec else "other"),
            group=entry.get("group", spec.group if spec else None),
            kind=entry.get("kind") or (spec.kind if spec else None),
            metric=entry.get("metric"),
            version=entry.get("version", versions.get(task) if isinstance(versions, dict) else None),
            chance=entry.get("chance", spec.chance if spec else None),
            ids=ids, labels=[r.get("label") for r in first],
            prompt_hashes=[_prompt_hash(r.get("prompt")) for r in first], scores=scores)
    return run


def _item_ids(rows: list[dict]) -> list[str]:
    """Item ids, made unique by occurrence (a data file may repeat an id)."""
    seen: dict[str, int] = {}
    out = []
    for i, r in enumerate(rows):
        base = str(r.get("id", i))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}#{n}")
    return out


def _score(row: dict, path: Path, line: int) -> float:
    s = row.get("score")
    if s is None:
        return float("nan")
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        raise DataError(f"{path}:{line}: field 'score' is not a number ({s!r})")
    return float(s)


def check_comparable(runs: list[EvalRun]) -> None:
    """Refuse, in one line naming what differs, runs that do not cover the same items with the same prompts."""
    base = runs[0]
    for other in runs[1:]:
        where = f"{base.path} vs {other.path}"
        missing, extra = sorted(set(base.tasks) - set(other.tasks)), sorted(set(other.tasks) - set(base.tasks))
        if missing or extra:
            parts = ([f"only in {base.label}: " + ", ".join(f"{lang}/{t}" for lang, t in missing[:6])] if missing else []) + \
                    ([f"only in {other.label}: " + ", ".join(f"{lang}/{t}" for lang, t in extra[:6])] if extra else [])
            raise ConfigError(f"runs evaluate different tasks ({where}): " + "; ".join(parts))
        for key, a in base.tasks.items():
            b = other.tasks[key]
            name = f"{key[0]}/{key[1]}"
            if set(a.ids) != set(b.ids) or len(a.ids) != len(b.ids):
                only_a, only_b = sorted(set(a.ids) - set(b.ids)), sorted(set(b.ids) - set(a.ids))
                raise ConfigError(f"{name}: items differ ({where}): {len(a.ids)} vs {len(b.ids)} items"
                                  + (f", e.g. {only_a[0]!r} only in {base.label}" if only_a else "")
                                  + (f", e.g. {only_b[0]!r} only in {other.label}" if only_b else ""))
            if a.version is not None and b.version is not None and a.version != b.version:
                raise ConfigError(f"{name}: task versions differ ({where}): {a.version} vs {b.version}")
            if a.metric and b.metric and a.metric != b.metric:
                raise ConfigError(f"{name}: metrics differ ({where}): {a.metric!r} vs {b.metric!r}")
            order = {i: k for k, i in enumerate(b.ids)}
            diff = [i for i, h in zip(a.ids, a.prompt_hashes) if b.prompt_hashes[order[i]] != h]
            if diff:
                raise ConfigError(f"{name}: prompts differ for {len(diff)} of {len(a.ids)} items ({where}), e.g. item "
                                  f"{diff[0]!r} (different prompt format, shots or mode?)")


def aligned_scores(runs: list[EvalRun], key: tuple[str, str]) -> list[TaskScores]:
    """Every run's TaskScores for one (language, task), items in the first run's order; classification tasks carry
    class indices (the first run's gold labels) for balanced accuracy."""
    base = runs[0].tasks[key]
    classes = None
    if base.classification():
        names = [json.dumps(x, sort_keys=True, ensure_ascii=False) for x in base.labels]
        index = {n: k for k, n in enumerate(dict.fromkeys(names))}
        classes = np.array([index[n] for n in names])
    out = []
    for r in runs:
        t = r.tasks[key]
        order = {i: k for k, i in enumerate(t.ids)}
        cols = [order[i] for i in base.ids]
        out.append(TaskScores(t.scores[:, cols], classes=classes, chance=base.chance))
    return out
