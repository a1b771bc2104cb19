"""Rows for a (task, language): from the Hugging Face hub (`datasets`) or a local directory in SEA-HELM's layout.

Every row comes out in the hub shape ``{"id", "prompts": [ {fields}, ... ], "label", "metadata", ...}``:
stringified Python lists (v1 files) are parsed; rows without ``prompts`` (Global-MMLU-Lite and ThaiExam on the hub)
have their columns turned into the single prompt dict; ``None`` fields become "".
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .tasks import LanguageSpec

_LABEL_COLUMNS = ("label", "answer")
_META_COLUMNS = ("id", "metadata", "prompt_templates")


@dataclass
class DataSource:
    """`hub`: datasets.load_dataset; `local`: the first of `roots` that holds the spec's file."""

    kind: str = "hub"  # "hub" | "local"
    roots: list[Path] = field(default_factory=list)

    @classmethod
    def parse(cls, value: str | None) -> "DataSource":
        if value in (None, "", "hub"):
            return cls("hub")
        roots = [Path(p).expanduser() for p in str(value).split(",") if p]
        for r in roots:
            if not r.is_dir():
                raise DataError(f"--data: {r} is not a directory (give 'hub' or a folder in SEA-HELM's layout)")
        return cls("local", roots)

    def describe(self) -> str:
        return "hub" if self.kind == "hub" else ",".join(str(r) for r in self.roots)


class MissingData(DataError):
    """No data for this (task, language) in the chosen source; the runner skips the pair."""


def _maybe_literal(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{" and value[-1:] in "]}":
        try:
            return json.loads(value)
        except ValueError:
            try:
                return ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return value
    return value


def normalize_row(row: dict, index: int) -> dict:
    row = dict(row)
    prompts = _maybe_literal(row.get("prompts"))
    if prompts is None:  # flat hub row: the columns are the template fields
        prompts = [{k: v for k, v in row.items() if k not in _LABEL_COLUMNS + _META_COLUMNS}]
    elif isinstance(prompts, dict):
        prompts = [prompts]
    if not isinstance(prompts, list) or not all(isinstance(p, dict) for p in prompts):
        raise DataError(f"row {index}: 'prompts' must be a list of field dicts")
    prompts = [{k: ("" if v is None else v) for k, v in p.items()} for p in prompts]
    label = row.get("label", row.get("answer"))
    label = _maybe_literal(label)
    meta = _maybe_literal(row.get("metadata")) or {}
    if not isinstance(meta, dict):
        meta = {"value": meta}
    out = {k: v for k, v in row.items() if k not in ("prompts", "label", "metadata", "prompt_templates")}
    out.update({"id": row.get("id", index), "prompts": prompts, "label": label, "metadata": meta})
    return out


def read_local_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(normalize_row(json.loads(line), len(rows)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: invalid JSON ({e.msg})") from None
            except DataError as e:
                raise DataError(f"{path}:{i}: {e}") from None
    return rows


def _local_file(ls: LanguageSpec, source: DataSource, which: str) -> Path | None:
    patterns = ls.source.local if which == "eval" else ls.source.local_fewshot
    if not patterns:
        return None
    if isinstance(patterns, str):
        patterns = [patterns]
    for root in source.roots:
        for pat in patterns:
            for base in (root, root / "seahelm_tasks"):
                p = base / pat.format(lang=ls.lang)
                if p.is_file():
                    return p
    return None


def _hub_rows(ls: LanguageSpec, split: str) -> list[dict]:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a dependency
        raise DataError("loading from the hub needs the `datasets` package") from e
    if not ls.source.hub:
        raise MissingData(f"no hub dataset for language {ls.lang}")
    try:
        ds = datasets.load_dataset(ls.source.hub, ls.source.config, split=split)
    except Exception as e:  # network, gating, missing config: one line for the user
        raise MissingData(f"hub dataset {ls.source.hub} [{ls.source.config}/{split}]: {type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200]}") from None
    return [normalize_row(dict(r), i) for i, r in enumerate(ds)]


def load_rows(ls: LanguageSpec, source: DataSource, *, task: str = "") -> list[dict]:
    if ls.source.file:  # a file the spec names directly (the SEA-HELM tree's own data)
        if not Path(ls.source.file).is_file():
            raise MissingData(f"task {task!r} [{ls.lang}]: {ls.source.file} does not exist")
        return read_local_jsonl(Path(ls.source.file))
    if source.kind == "hub":
        return _hub_rows(ls, ls.source.split)
    path = _local_file(ls, source, "eval")
    if path is None:
        where = repr(ls.source.local) if ls.source.local else "(no local dataset known; use --data hub)"
        raise MissingData(f"task {task!r} [{ls.lang}]: no local file {where} under {source.describe()}")
    return read_local_jsonl(path)


def load_fewshot_rows(ls: LanguageSpec, source: DataSource, *, task: str = "") -> list[dict]:
    """Few-shot pool (base models). Missing pool -> [] (the runner then falls back to zero-shot)."""
    try:
        if ls.source.file:
            fs = ls.source.fewshot_file
            return read_local_jsonl(Path(fs)) if fs and Path(fs).is_file() else []
        if source.kind == "hub":
            return _hub_rows(ls, ls.source.fewshot_split) if ls.source.fewshot_split else []
        path = _local_file(ls, source, "fewshot")
        if path is None:
            if ls.source.fewshot_split == ls.source.split:  # ThaiExam: examples are the first test rows
                return load_rows(ls, source, task=task)
            return []
        return read_local_jsonl(path)
    except MissingData:
        return []
