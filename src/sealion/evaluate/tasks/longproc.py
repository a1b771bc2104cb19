"""LongProc (long procedural generation): countdown, path traversal, ToM tracking, HTML to TSV, travel planning, as
SEA-HELM's ``long_context/longproc`` runs them. Scoring rules: `sealion.evaluate.metrics.longproc`.

Rows, prompts and ``max_tokens`` are SEA-HELM's, read at run time: under ``--seahelm PATH`` the tree's task keys
(``countdown_0p5k``, ``tom_tracking_2k`` ...) get these kinds through their metric class; without it, sealion's
specs ``countdown``, ``path-traversal``, ``tom-tracking``, ``html-to-tsv``, ``travel-planning`` take the length as a
name suffix (``countdown@2k``: SEA-HELM's ``countdown_2k`` block) and read that block of the tree's config.yaml
under ``--data``. The tree ships no rows for html_to_tsv and travel_planning (SEA-HELM fetches them from the hub):
give the jsonl under ``--data DIR`` (``DIR/<file name>`` or the tree's layout), else the pair is skipped with a note.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import yaml

from ...errors import ConfigError, DataError
from ..metrics import longproc as lp
from . import Item, ItemScore, TaskKind, TaskSpec, register_kind

TREE_DIR = "long_context/longproc"


def length_token(length: int) -> str:
    """SEA-HELM's key suffix of a length: 500 -> ``0p5k``, 2000 -> ``2k``."""
    return f"{length / 1000:g}".replace(".", "p") + "k"


def template_fields(template: str) -> list[str]:
    return sorted({f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f})


# --------------------------------------------------------------------------------------------------- tree files


def _roots(source: Any) -> list[Path]:
    out = []
    for root in getattr(source, "roots", []) or []:
        out += [Path(root), Path(root) / "seahelm_tasks"]
    return out


def tree_block(spec: TaskSpec, source: Any) -> tuple[dict, Path]:
    """(the tree's config block for this spec's length, its config.yaml) from the `--data` roots."""
    from ..data import MissingData

    task = spec.options["longproc"]
    key = f"{task}_{length_token(int(spec.options['length']))}"
    for base in _roots(source):
        cfg = base / TREE_DIR / task / "config.yaml"
        if cfg.is_file():
            blocks = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
            if key not in blocks:
                have = [k[len(task) + 1:] for k in blocks if k.startswith(task + "_")]
                raise ConfigError(f"task {spec.name!r}: SEA-HELM's {cfg} has no {key} (lengths: {', '.join(have)}; "
                                  f"e.g. {spec.name.split('@')[0]}@2k)")
            return blocks[key], cfg
    raise MissingData(f"task {spec.name!r}: prompts and rows are SEA-HELM's ({TREE_DIR}/{task}/config.yaml); pass "
                      f"--data pointing at a SEA-HELM seahelm_tasks tree, or --seahelm PATH")


def _tree_relative(path: str) -> str:
    """``/x/seahelm_tasks/long_context/...`` -> ``seahelm_tasks/long_context/...`` (the config's filepath)."""
    parts = Path(path).parts
    i = max((j for j, part in enumerate(parts) if part == "seahelm_tasks"), default=len(parts) - 1)
    return str(Path(*parts[i:]))


def find_rows_file(primary: Path | None, filepath: str, source: Any, task: str, name: str, lang: str) -> Path:
    """The first of: the tree's own file, then under each `--data` root the file name or the tree's layout."""
    from ..data import MissingData

    base = Path(filepath).name
    tail = Path(filepath).relative_to("seahelm_tasks") if filepath.startswith("seahelm_tasks/") else Path(filepath)
    candidates = [primary] if primary else []
    for root in getattr(source, "roots", []) or []:
        candidates += [Path(root) / base, Path(root) / tail, Path(root) / "seahelm_tasks" / tail]
    for p in candidates:
        if p is not None and p.is_file():
            return p
    raise MissingData(f"task {name!r} [{lang}]: no rows ({base} is not in the SEA-HELM tree, which ships only some "
                      f"LongProc files): give it under --data DIR as DIR/{base} or DIR/{tail}")


def read_rows(path: Path, fields: list[str], check_label) -> list[dict]:
    """SEA-HELM rows (``prompts``, ``label``, ``metadata``), each checked: a bad line stops the run with one line
    naming the file and the line."""
    from ..data import normalize_row

    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict):
                    raise DataError("a row must be a JSON object")
                row = normalize_row(raw, len(rows))
                if not row["prompts"]:
                    raise DataError("prompts is empty")
                missing = [k for k in fields if k not in row["prompts"][0]]
                if missing:
                    raise DataError(f"prompts[0] has no {', '.join(missing)} (the prompt template needs them)")
                check_label(row["label"])
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            except DataError as e:
                raise DataError(f"{path}:{n}: {e}") from None
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------- kinds


class _LongProcKind(TaskKind):
    """Loading and prompt assembly shared by the five tasks; subclasses check labels and score."""

    graded_scores = True  # gold outputs are unique texts, not classes: no balanced accuracy
    secondary: tuple[str, ...] = ("accuracy", "partial_accuracy", "extraction_rate")

    def __init__(self):
        self._blocks: dict[tuple[str, str], dict] = {}  # (task, lang) -> the tree block read (sealion specs)

    def check_label(self, label: Any) -> None:
        raise NotImplementedError

    def _template(self, spec: TaskSpec, lang: str) -> dict:
        block = self._blocks.get((spec.name, lang))
        if block is not None:
            return block["prompt_template"]
        ls = spec.lang(lang)
        return ls.extra.get("seahelm_prompt") or {"preamble": ls.prompt.preamble, "task_template": ls.prompt.template}

    def load_rows(self, spec, lang, source, *, model=None, limit=None):
        ls = spec.lang(lang)
        if "longproc" in spec.options and "seahelm" not in spec.options:  # sealion's spec: the tree under --data
            block, cfg = tree_block(spec, source)
            lc = (block.get("languages") or {}).get(lang)
            if not isinstance(lc, dict) or "prompt_template" not in lc:
                raise ConfigError(f"{cfg}: {spec.options['longproc']} has no language {lang!r} with a prompt_template")
            self._blocks[(spec.name, lang)] = lc
            filepath = str(lc.get("filepath") or "")
            primary = cfg.parent / "data" / Path(filepath).name
        else:  # the tree's own spec (--seahelm): the file its config names
            primary = Path(ls.source.file) if ls.source.file else None
            filepath = _tree_relative(ls.source.file) if ls.source.file else ""
        if not filepath:
            raise ConfigError(f"task {spec.name!r} [{lang}]: SEA-HELM's config names no filepath")
        path = find_rows_file(primary, filepath, source, spec.options.get("longproc", spec.name), spec.name, lang)
        fields = template_fields(str(self._template(spec, lang).get("task_template") or ""))
        rows = read_rows(path, fields, self.check_label)
        return rows[:limit] if limit else rows

    # SEA-HELM's assembly: (preamble.format(answer_tag=...) + "\n\n" + task_template.format(**prompts[0])).strip()
    def preamble(self, spec, lang, item=None):
        t = self._template(spec, lang)
        return str(t.get("preamble") or "").format(answer_tag=t.get("answer_tag"))

    def user_turns(self, spec, lang, item):
        body = str(self._template(spec, lang)["task_template"]).format(**item.prompts[0])
        return [(self.preamble(spec, lang, item) + "\n\n" + body).strip()]

    def max_tokens(self, spec, lang):
        block = self._blocks.get((spec.name, lang))
        return int(block.get("max_tokens") or 1024) if block else spec.lang(lang).prompt.max_tokens

    def score(self, spec, lang, items, outputs, ctx):
        return [self.score_one(item, turns[0].answer if turns else "") for item, turns in zip(items, outputs)]

    def score_one(self, item: Item, answer: str) -> ItemScore:
        raise NotImplementedError

    def task_metrics(self, spec, lang, items, scores):
        n = len(scores) or 1
        m = {spec.metric: 100.0 * sum(s.score or 0.0 for s in scores) / n}
        for key in self.secondary:
            vals = [s.details[key] for s in scores if s.details.get(key) is not None]
            if vals:
                m[key] = 100.0 * sum(vals) / len(vals)
        return m


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise DataError(what)


@register_kind
class CountdownKind(_LongProcKind):
    name = "longproc-countdown"

    def check_label(self, label):
        _need(isinstance(label, dict) and isinstance(label.get("nums"), list) and "target" in label,
              "label must hold nums (a list) and target")

    def score_one(self, item, answer):
        gold = item.label
        solution = lp.tag_span(answer, "<Solution>", "</Solution>")
        ok = lp.countdown_solution_ok(gold["nums"], gold["target"], solution)
        partial = 1.0 if ok else lp.countdown_procedure_partial(answer, str(gold.get("search_procedure") or ""))
        return ItemScore(score=float(ok), extracted=solution,
                         details={"accuracy": float(ok), "partial_accuracy": partial,
                                  "extraction_rate": float(solution is not None)})


@register_kind
class PathTraversalKind(_LongProcKind):
    name = "longproc-path-traversal"
    secondary = ("accuracy", "partial_accuracy", "extraction_rate", "valid_route")

    def check_label(self, label):
        _need(isinstance(label, str) and label.strip() != "", "label must be the gold route (text)")

    def score_one(self, item, answer):
        route = lp.tag_span(answer, "<Route>", "</Route>")
        s = lp.route_scores(route, item.label)
        edges, question = item.metadata.get("context_repr"), item.metadata.get("question_repr")
        if isinstance(edges, list) and isinstance(question, list) and len(question) == 2:
            s["valid_route"] = float(lp.route_is_valid(route, edges, *question))
        return ItemScore(score=s["accuracy"], extracted=route, details=s)


@register_kind
class ToMTrackingKind(_LongProcKind):
    name = "longproc-tom-tracking"
    secondary = ("accuracy", "partial_accuracy")

    def check_label(self, label):
        _need(isinstance(label, str) and label.strip() != "", "label must be the gold belief trace (text)")

    def score_one(self, item, answer):
        s = lp.tom_scores(answer, item.label)
        return ItemScore(score=s["accuracy"], extracted=lp.tom_beliefs(answer), details=s)


@register_kind
class HtmlToTsvKind(_LongProcKind):
    name = "longproc-html-to-tsv"
    secondary = ("f1", "precision", "recall")

    def check_label(self, label):
        _need(isinstance(label, str) and label.strip() != "", "label must be the gold TSV (text)")

    def score_one(self, item, answer):
        table = lp.tag_span(answer, "```tsv", "```")
        s = lp.tsv_scores(table, item.label)
        return ItemScore(score=s["f1"], extracted=table, details=s)


@register_kind
class TravelPlanningKind(_LongProcKind):
    name = "longproc-travel-planning"

    def check_label(self, label):
        _need(isinstance(label, dict) and isinstance(label.get("ground_truth_cities"), str)
              and isinstance(label.get("ground_truth_durations"), str),
              "label must hold ground_truth_cities and ground_truth_durations ('A**B', '3**4')")

    def score_one(self, item, answer):
        gold = item.label
        plan = lp.tag_span(answer, "<Plan>", "</Plan>")
        ok = lp.travel_plan_ok(gold["ground_truth_cities"], gold["ground_truth_durations"], plan)
        procedure = gold.get("solving_procedure")
        partial = 1.0 if ok else (lp.travel_procedure_partial(answer, procedure) if procedure else None)
        return ItemScore(score=float(ok), extracted=plan,
                         details={"accuracy": float(ok), "partial_accuracy": partial,
                                  "extraction_rate": float(plan is not None)})
