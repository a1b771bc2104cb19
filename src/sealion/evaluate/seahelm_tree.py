"""SEA-HELM fidelity mode: tasks, languages, prompts and settings read at run time from a SEA-HELM checkout (or its
`seahelm_tasks` tree), so that prompts are byte-equal to the ones SEA-HELM builds.

What is taken from the tree, per task key (`sentiment`, `global_mmlu_lite`, `thai_exam_ic`, ...) and language:
`prompt_template.{preamble, task_template, answer_template, answer_tag}`, `max_tokens`, `filepath` /
`example_filepath` (a hub id, or a jsonl path relative to the checkout), `competency`, `metric`,
`aggregation_group`, `fewshot_num_examples`, `max_n_runs`; from `task_config.yaml` the task sets (a group name such
as `thai_exam` in a set stands for every task of that group); from `constants.yaml` the base-model skip list and
few-shot stop strings; from `chat_templates/base_model.jinja` the base-model prompt layout.

What stays sealion's: the task *kind* (how to extract and score; matched by name, `_` read as `-`, or by SEA-HELM's
metric class), the hub configs and local-file patterns of sealion's spec of the same task, and label maps for v1 files.

The assembly, as SEA-HELM's dataloaders do it (`generate_formatted_conversation`): the user turn is
`task_template.format(**prompts[turn])`; few-shot examples (base models) are user `task_template` / assistant
`answer_template.format(**row, **prompts[0], answer_tag=...)` pairs; the first content gets
`(preamble.format(answer_tag=...) + "\\n\\n" + content).strip()`. Base models render the contents with the tree's
`base_model.jinja` (each content trimmed, joined by blank lines, a blank line at the end).
"""

from __future__ import annotations

import copy
import glob
import re
import string
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .tasks import Item, LanguageSpec, PromptSpec, SourceSpec, TaskSpec, all_specs, task_sets

# SEA-HELM task keys whose sealion spec has another name.
SEALION_NAMES = {"mt-bench-judge": "mt-bench-criteria"}

# SEA-HELM metric class -> sealion kind, for tree tasks sealion has no spec of.
KIND_BY_METRIC_CLASS = {
    "F1AccMetric": "choice",
    "QuestionAnsweringMetric": "extractive-qa",
    "SummarizationMetric": "summarization",
    "TranslationMetric": "translation",
    "MinimalPairsMetric": "minimal-pairs",
    "PragmaticReasoningMetric": "choice",
    "IFEvalMetric": "ifeval",
    "CriteriaJudgeMetric": "mtbench-criteria",  # kalahi-judge
    "LindseaJudgeMetric": "mtbench-criteria",  # syntax-criteria
    "CountdownMetric": "longproc-countdown",  # LongProc (tasks/longproc.py)
    "PathTraversalMetric": "longproc-path-traversal",
    "ToMTrackingMetric": "longproc-tom-tracking",
    "HtmlToTsvMetric": "longproc-html-to-tsv",
    "TravelPlanningMetric": "longproc-travel-planning",
}

_INTERP = re.compile(r"\$\{([^}]+)\}")


# --------------------------------------------------------------------------------------------------- reading


def _resolve(value: Any, root: dict, where: str, depth: int = 0) -> Any:
    """OmegaConf-style `${a.b.c}` interpolation against the merged task configs (SEA-HELM resolves the same way)."""
    if depth > 20:
        raise ConfigError(f"{where}: interpolation too deep (a cycle?)")
    if isinstance(value, dict):
        return {k: _resolve(v, root, where, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, where, depth) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(ref: str) -> Any:
        node: Any = root
        for part in ref.strip().split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{where}: interpolation ${{{ref}}} names nothing in the task configs")
            node = node[part]
        return _resolve(node, root, where, depth + 1)

    whole = _INTERP.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return _INTERP.sub(lambda m: str(lookup(m.group(1))), value)


def find_tasks_dir(path: str | Path) -> tuple[Path, Path]:
    """-> (checkout root, seahelm_tasks dir) for a checkout or its `seahelm_tasks` folder."""
    p = Path(path).expanduser().resolve()
    if (p / "seahelm_tasks" / "task_config.yaml").is_file():
        return p, p / "seahelm_tasks"
    if (p / "task_config.yaml").is_file():
        return p.parent, p
    raise ConfigError(f"--seahelm {path}: neither {p}/seahelm_tasks/task_config.yaml nor {p}/task_config.yaml exists "
                      "(give a SEA-HELM checkout or its seahelm_tasks folder)")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None


@dataclass
class SeahelmTree:
    root: Path  # the checkout (parent of seahelm_tasks); jsonl filepaths are relative to it
    tasks_dir: Path
    tasks: dict[str, dict]  # task key -> resolved config block
    config_files: dict[str, Path]
    sets: dict[str, dict[str, list[str]]]
    constants: dict[str, Any]
    base_template: str | None = None
    _specs: dict[str, TaskSpec] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "SeahelmTree":
        root, tasks_dir = find_tasks_dir(path)
        raw: dict[str, dict] = {}
        files: dict[str, Path] = {}
        # glob.glob's order, as SEA-HELM merges its configs: the task order its aggregation consumes draws in
        for name in glob.glob(f"{tasks_dir}/**/config.yaml", recursive=True):
            f = Path(name)
            data = _read_yaml(f) or {}
            if not isinstance(data, dict):
                raise ConfigError(f"{f}: expected a mapping of task blocks")
            for key, block in data.items():
                if isinstance(block, dict) and "languages" in block:
                    raw[key] = block
                    files[key] = f
        tasks = {k: _resolve(v, raw, str(files[k])) for k, v in raw.items()}
        sets = _read_yaml(tasks_dir / "task_config.yaml") or {}
        const_file = tasks_dir / "constants.yaml"
        constants = (_read_yaml(const_file) or {}) if const_file.is_file() else {}
        jinja = root / "chat_templates" / "base_model.jinja"
        return cls(root=root, tasks_dir=tasks_dir, tasks=tasks, config_files=files,
                   sets={k: {lang: list(v or []) for lang, v in (langs or {}).items()} for k, langs in sets.items()},
                   constants=constants, base_template=jinja.read_text(encoding="utf-8") if jinja.is_file() else None)

    # ----------------------------------------------------------------------------------------- task sets
    def group_members(self, group: str, lang: str) -> list[str]:
        return [k for k, c in self.tasks.items() if c.get("aggregation_group") == group and lang in c["languages"]]

    def sealion_name(self, key: str) -> str:
        if key in SEALION_NAMES:
            return SEALION_NAMES[key]
        specs = all_specs()
        return key if key in specs else key.replace("_", "-")

    def resolve_plan(self, names: list[str], languages: list[str] | None = None) -> dict[str, list[str]]:
        """--tasks -> {language: [SEA-HELM task keys]} in SEA-HELM's config order. A name is a task set of the tree,
        a task set of sealion (its tasks mapped to the tree's keys), a tree task key or a sealion task name."""
        by_sealion = {self.sealion_name(k): k for k in self.tasks}
        plan: dict[str, list[str]] = {}

        def add(lang: str, entry: str) -> None:
            key = entry if entry in self.tasks else by_sealion.get(entry) or self._variant_key(entry)
            keys = [key] if key else self.group_members(entry, lang)
            for k in keys:
                if lang in self.tasks[k]["languages"] and k not in plan.setdefault(lang, []):
                    plan[lang].append(k)

        for name in names:
            if name in self.sets:
                for lang, entries in self.sets[name].items():
                    for e in entries:
                        add(lang, e)
            elif name in task_sets():
                for lang, entries in task_sets()[name].items():
                    for e in entries:
                        add(lang, e)
            elif name in self.tasks or name in by_sealion or self._variant_key(name):
                key = name if name in self.tasks else by_sealion.get(name) or self._variant_key(name)
                for lang in self.tasks[key]["languages"]:
                    add(lang, key)
            elif any(c.get("aggregation_group") == name for c in self.tasks.values()):  # e.g. `longproc`
                for lang in sorted({lang for c in self.tasks.values() if c.get("aggregation_group") == name
                                    for lang in c["languages"]}):
                    add(lang, name)
            else:
                raise ConfigError(f"--tasks: {name!r} is neither a task set nor a task of the SEA-HELM tree "
                                  f"{self.tasks_dir} (sets: {', '.join(self.sets)})")
        if languages:
            plan = {lang: plan[lang] for lang in languages if lang in plan}
            if not plan:
                raise ConfigError(f"--languages: none of {languages} has tasks in {names} in {self.tasks_dir}")
        return {lang: keys for lang, keys in plan.items() if keys}

    def _variant_key(self, name: str) -> str | None:
        """A sealion LongProc name with its length (`countdown@2k`) -> the tree's key (`countdown_2k`)."""
        from .tasks import _parse_size
        from .tasks.longproc import length_token

        base, sep, value = name.partition("@")
        spec = all_specs().get(base)
        if not sep or spec is None or "longproc" not in spec.options:
            return None
        try:
            key = f"{spec.options['longproc']}_{length_token(_parse_size(value))}"
        except ValueError:
            return None
        return key if key in self.tasks else None

    def skipped_for_base(self, key: str) -> bool:
        return key in set(self.constants.get("base_models_skip_tasks") or [])

    def fewshot_stop(self) -> list[str]:
        return list(self.constants.get("few_shot_stop_tokens") or ["\n\n"])

    # ----------------------------------------------------------------------------------------- specs
    def spec(self, key: str) -> TaskSpec:
        """A TaskSpec for tree task `key`: sealion's spec of the same task (kind, hub configs, label maps) with the
        tree's prompts, languages and settings; or, with no such spec, one derived from the metric class."""
        if key in self._specs:
            return self._specs[key]
        if key not in self.tasks:
            raise ConfigError(f"task {key!r} is not in the SEA-HELM tree {self.tasks_dir}")
        cfg = self.tasks[key]
        where = str(self.config_files[key])
        # `sentiment-logprobs` etc.: sealion's spec of the generative task gives the labels; the kind scores them
        stem = key[: -len("-logprobs")] if key.endswith("-logprobs") else key
        base = all_specs().get(self.sealion_name(stem))
        kind = base.kind if base else KIND_BY_METRIC_CLASS.get(str(cfg.get("metric_class")), "")
        if cfg.get("use_logprobs"):
            kind = "logprob-choice"
        if cfg.get("task_modality") == "vision" and not base:
            kind = ""  # an image task sealion has no loader for: skipped with a note, never run on text alone
        langs: dict[str, LanguageSpec] = {}
        for lang, lc in (cfg.get("languages") or {}).items():
            if not isinstance(lc, dict):
                raise ConfigError(f"{where}: {key}.languages.{lang} must be a mapping")
            tmpl = lc.get("prompt_template") or {}
            for f in ("task_template",):
                if f not in tmpl:
                    raise ConfigError(f"{where}: {key}.languages.{lang}.prompt_template has no {f!r}")
            old = base.languages.get(lang) if base else None
            prompt = PromptSpec(preamble=str(tmpl.get("preamble") or ""), template=str(tmpl["task_template"]),
                                answer_tag=tmpl.get("answer_tag"), max_tokens=int(lc.get("max_tokens") or 256),
                                answer_template=str(tmpl.get("answer_template") or "{answer_tag} {label}"))
            langs[lang] = LanguageSpec(
                lang=lang, prompt=prompt, source=self._source(lc, old.source if old else None, lang),
                labels=list(old.labels) if old else [], label_map=dict(old.label_map) if old else {},
                extra={**(copy.deepcopy(old.extra) if old else {}), "seahelm_prompt": dict(tmpl)})
        options = dict(copy.deepcopy(base.options)) if base else {}
        fewshot = cfg.get("fewshot_num_examples")
        fewshot = fewshot if isinstance(fewshot, dict) else {}
        n_shots = fewshot.get("base", self.constants.get("base_num_in_context_examples", 5))
        judge = cfg.get("judge")
        if kind == "mtbench-criteria" and isinstance(judge, dict) and judge.get("judge_prompts"):
            if not isinstance(judge.get("classifications"), dict):
                raise ConfigError(f"{where}: {key}.judge has judge_prompts but no classifications mapping")
            options["seahelm_judge"] = {"judge_prompts": judge["judge_prompts"],
                                        "classifications": judge["classifications"]}
            per_turn = judge["judge_prompts"].get("criteria_prompt")
            options["turns"] = len(per_turn) if isinstance(per_turn, dict) else 1  # turn_1, turn_2: multi-turn
        if cfg.get("metric_class") == "LindseaJudgeMetric":
            options["criteria_weighting"] = "severity"  # its severity-weighted criteria x generic product
        label_field = _label_field(cfg)
        if label_field:
            options["label_field"] = label_field
        options.update({"seahelm": key, "seahelm_dataloader": cfg.get("dataloader_class"),
                        "seahelm_fewshot_base": int(n_shots or 0),
                        "seahelm_metric_class": cfg.get("metric_class"), "seahelm_config": where})
        spec = TaskSpec(name=key, kind=kind, competency=str(cfg.get("competency") or (base.competency if base else "")),
                        metric=str(cfg.get("metric") or (base.metric if base else "score")), languages=langs,
                        group=cfg.get("aggregation_group"), chance=base.chance if base else None,
                        base_model=not self.skipped_for_base(key) and (base.base_model if base else True),
                        max_runs=cfg.get("max_n_runs") or (base.max_runs if base else None),
                        version=base.version if base else 1, options=options, path=where)
        self._specs[key] = spec
        return spec

    def _source(self, lc: dict, old: SourceSpec | None, lang: str) -> SourceSpec:
        """Local jsonl files of the tree are read directly; hub ids keep the config/split of sealion's spec."""
        src = replace(old) if old else SourceSpec(config=lang)
        fp, ex = lc.get("filepath"), lc.get("example_filepath")
        if isinstance(fp, str) and fp.endswith(".jsonl"):
            src.file = str(self.root / fp)
            src.fewshot_file = str(self.root / ex) if isinstance(ex, str) and ex.endswith(".jsonl") else None
        elif isinstance(fp, str) and fp:
            src.hub = fp
        return src


def _label_field(cfg: dict) -> str | None:
    """The row field that holds the gold when it is not `label`. SEA Safeguard rows carry `prompt_label` and
    `response_label`; its `...PromptDataLoader` / `...ResponseDataLoader` classes pick one (the answer templates
    are not a safe guide: some languages' say `{label}`). Else: the one field an answer template shows."""
    loader = str(cfg.get("dataloader_class") or "")
    for suffix, name in (("PromptDataLoader", "prompt_label"), ("ResponseDataLoader", "response_label")):
        if loader.endswith(suffix):
            return name
    for lc in (cfg.get("languages") or {}).values():
        tmpl = (lc or {}).get("prompt_template") or {}
        names = [f for _, f, _, _ in string.Formatter().parse(str(tmpl.get("answer_template") or "")) if f]
        names = [f for f in names if f != "answer_tag"]
        if len(names) == 1 and names[0] != "label":
            return names[0]
    return None


@lru_cache(maxsize=4)
def load_tree(path: str) -> SeahelmTree:
    return SeahelmTree.load(path)


# --------------------------------------------------------------------------------------------------- assembly


def _tmpl(ls: LanguageSpec) -> dict:
    return ls.extra.get("seahelm_prompt") or {"preamble": ls.prompt.preamble, "task_template": ls.prompt.template,
                                              "answer_template": ls.prompt.answer_template,
                                              "answer_tag": ls.prompt.answer_tag}


def _fmt(template: str, fields: dict, where: str) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError) as e:
        raise ConfigError(f"{where}: template field {e} missing from the row (has {sorted(fields)})") from None


def example_row(item: Item) -> dict:
    """An Item back in the row shape SEA-HELM formats answer templates with (`**row, **prompts[0]`)."""
    label = item.label[0] if isinstance(item.label, list) and item.label else item.label
    return {**item.extra, "id": item.id, "label": label, "metadata": item.metadata, "prompts": item.prompts}


def contents(spec: TaskSpec, lang: str, item: Item, turn: int = 0, examples: list[Item] = ()) -> list[str]:
    """The contents of one SEA-HELM turn: few-shot user/assistant pairs (base models), then the user turn; the
    preamble in front of the first content."""
    t = _tmpl(spec.lang(lang))
    where = f"{spec.path} [{spec.name}/{lang}]"
    tag = t.get("answer_tag")
    out: list[str] = []
    for ex in examples:
        row = example_row(ex)
        out.append(_fmt(t["task_template"], {**ex.prompts[0], "answer_tag": tag}, where))
        out.append(_fmt(t.get("answer_template") or "{answer_tag} {label}",
                        {**row, **ex.prompts[0], "answer_tag": tag}, where))
    out.append(_fmt(t["task_template"], dict(item.prompts[turn]), where))
    out[0] = (_fmt(t.get("preamble") or "", {"answer_tag": tag}, where) + "\n\n" + out[0]).strip()
    return out


def select_examples(spec: TaskSpec, item: Item, pool: list[Item], k: int) -> list[Item]:
    """SEA-HELM's few-shot choice: the first k example rows; Global-MMLU-Lite: the first k of the item's subject."""
    if k <= 0 or not pool:
        return []
    if spec.options.get("seahelm_dataloader") == "GlobalMMLULiteDataloader":
        def subject(x: Item) -> str:
            return str(x.metadata.get("subject", "")).lower()

        counts: dict[str, int] = {}
        for ex in pool:
            counts[subject(ex)] = counts.get(subject(ex), 0) + 1
        if min(counts.values()) >= k:  # SEA-HELM keeps every example when some subject has fewer than k
            seen: dict[str, int] = {}
            kept = []
            for ex in pool:
                seen[subject(ex)] = seen.get(subject(ex), 0) + 1
                if seen[subject(ex)] <= k:
                    kept.append(ex)
            pool = kept
        want = str(item.prompts[0].get("subject", "")).lower()
        return [ex for ex in pool if subject(ex) == want]
    return pool[:k]


def render_base(tree: SeahelmTree | None, parts: list[str], bos_token: str = "") -> str:
    """Base models: the tree's base_model.jinja (with generation prompt); SEA-HELM's layout when it is absent."""
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": c} for i, c in enumerate(parts)]
    if tree is not None and tree.base_template is not None:
        import jinja2

        env = jinja2.Environment(keep_trailing_newline=True)
        return env.from_string(tree.base_template).render(messages=messages, bos_token=bos_token,
                                                          add_generation_prompt=True)
    return bos_token + "\n\n".join(c.strip() for c in parts) + "\n\n"


def gold_labels(items: list[Item]) -> list[str]:
    """SEA-HELM's label set of a choice task: the distinct gold labels of the eval rows."""
    labels = {str(lab) for it in items for lab in (it.label if isinstance(it.label, list) else [it.label])
              if lab is not None}
    return sorted(labels)
