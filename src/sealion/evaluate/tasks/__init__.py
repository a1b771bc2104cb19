"""Tasks as data, kinds as code: the extension interface of `sealion eval`.

A **task** is one YAML spec (package data, ``specs/<name>.yaml`` beside this file or in any ``specs/`` folder of
a sub-package of ``sealion.evaluate``). A **kind** is a Python class that knows how to turn a spec's rows into
prompts, how to score responses and how to aggregate scores. Many tasks share one kind (sentiment, NLI, causal,
Belebele ... are all kind ``choice``).

Spec (YAML)::

    name: sentiment                 # unique; what --tasks names
    kind: choice                    # a registered TaskKind
    competency: nlu                 # nlu nlg nlr safety linguistic-diagnostics instruction-following
                                    # multi-turn cultural knowledge
    metric: normalized_accuracy     # the key the leaderboard aggregates (0..100)
    group: null                     # optional aggregation group (translations, pragmatics, thai_exam)
    chance: null                    # optional chance level override for normalised accuracy
    base_model: true                # false: skipped for base (few-shot) models, e.g. MT-Bench, IFEval
    max_runs: null                  # optional cap on runs (deterministic tasks)
    version: 1
    languages:
      id:
        source:                     # where rows come from (see sealion.evaluate.data)
          hub: aisingapore/NLU-Sentiment-Analysis   # datasets.load_dataset(hub, config, split=split)
          config: id
          split: eval
          fewshot_split: examples
          local: nlu/sentiment_analysis/data/id_nusax.jsonl          # under --data DIR (SEA-HELM layout)
          local_fewshot: nlu/sentiment_analysis/data/id_nusax_examples.jsonl
        labels: [Positif, Negatif, Netral]          # native label set (choice kinds)
        label_map: {positive: Positif, negative: Negatif, neutral: Netral}  # v1 raw label -> native label
        prompt:
          preamble: "... \"{answer_tag} ANSWER\" ..."   # instruction + quoted answer format; {answer_tag} filled
          template: "Kalimat:\n```\n{text}\n```"        # str.format over the row's prompts[turn] fields
          answer_tag: "Jawaban:"
          max_tokens: 32
          answer_template: "{answer_tag} {label}"      # few-shot assistant turn (base models)

Rows are normalised to the hub shape ``{"id", "prompts": [ {fields}, ... one dict per turn ], "label",
"metadata", ...extra}`` before a kind sees them (stringified lists are parsed, raw v1 labels mapped through
``label_map``), so kinds never care whether data came from the hub or a local directory.

Kind (Python)::

    from sealion.evaluate.tasks import TaskKind, register_kind, Item, TurnOutput, ItemScore, ScoreContext

    @register_kind
    class MyKind(TaskKind):
        name = "my-kind"
        def score(self, spec, lang, items, outputs, ctx):      # the one method a kind must implement
            return [ItemScore(score=..., extracted=...) for item, turns in zip(items, outputs)]

Lifecycle of one (run, language, task), driven by ``sealion.evaluate.runner``:

1. ``kind.make_items(spec, lang, rows)`` -> ``list[Item]`` (default: one Item per row, label mapped).
2. ``kind.user_turns(spec, lang, item)`` -> the user messages, one per turn. Default: turn 1 is
   ``preamble + "\\n\\n" + template.format(**prompts[0])`` (no system prompt), turn k is
   ``template.format(**prompts[k-1])``. The runner generates turn 1 for every item, then turn 2 with the
   conversation so far (user, the model's own answer with reasoning removed, next user), and so on.
   Few-shot (base models): ``kind.fewshot_pair(spec, lang, example_item)`` -> ``(user, assistant)``.
3. ``kind.score(spec, lang, items, outputs, ctx)`` -> ``list[ItemScore]``; ``outputs[i][t]`` is item i's turn t
   (``TurnOutput``: raw text, answer without reasoning, reasoning, finish reason, tokens). A judge-scored kind
   asks ``ctx.engine(ref)`` for a (cached, shared) engine, uses ``ctx.seed``, and keeps its own cache under
   ``ctx.cache_dir``. Per-item ``score`` is on a 0..1 scale (1/0 for correct/incorrect), ``None`` when the item
   cannot be scored (excluded from means).
4. ``kind.task_metrics(spec, lang, items, scores)`` -> ``{metric: value, ...}`` on a 0..100 scale, computed from
   per-item scores only. The runner calls it once per run and again for each bootstrap replicate (where each
   item's ItemScore is drawn from a random run), so it must be a pure function of its arguments. The default is
   ``100 * mean(score)``; kind ``choice`` gives chance-normalised balanced accuracy.

Optional hooks: ``kind.max_tokens(spec, lang)``, ``kind.stop(spec, lang, base_model)``, ``kind.base_model_ok``,
``kind.user_content(spec, lang, item, turn, text)`` (content parts with images; ``kind.needs_images`` skips the
task for models without an image processor),
``kind.finalize(spec, lang, items, scores, ctx)`` (corpus-level extras such as chrF++ or MetricX, added to the run's
metrics but not bootstrapped).

Plug-ins: kinds living in ``sealion.evaluate.<pkg>`` (e.g. ``ifeval``, ``mtbench``) are imported when their package
is listed in ``PLUGIN_PACKAGES``; their specs go in ``sealion/evaluate/<pkg>/specs/*.yaml``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ClassVar

import yaml

from ...errors import ConfigError
from ...io import read_yaml

# Languages of the SEA average (SEA-HELM leaderboard).
SEA_LANGUAGES = ("id", "vi", "th", "ta", "tl", "ms", "my")

# Sub-packages of sealion.evaluate whose kinds/specs join the registry when importable.
PLUGIN_PACKAGES = ("sealion.evaluate.tasks.kinds", "sealion.evaluate.tasks.longcontext",
                   "sealion.evaluate.tasks.longproc", "sealion.evaluate.tasks.logprobs", "sealion.evaluate.ifeval",
                   "sealion.evaluate.mtbench", "sealion.evaluate.vision")

_EVALUATE_DIR = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------------- spec


@dataclass
class PromptSpec:
    preamble: str = ""
    template: str = "{text}"
    answer_tag: str | None = None
    max_tokens: int = 256
    answer_template: str = "{answer_tag} {label}"


@dataclass
class SourceSpec:
    hub: str | None = None
    config: str | None = None
    split: str = "eval"
    fewshot_split: str | None = "examples"
    local: str | None = None
    local_fewshot: str | None = None
    file: str | None = None  # an absolute jsonl path read whatever --data says (SEA-HELM tree files)
    fewshot_file: str | None = None


@dataclass
class LanguageSpec:
    lang: str
    prompt: PromptSpec
    source: SourceSpec
    labels: list[str] = field(default_factory=list)
    label_map: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific settings


@dataclass
class TaskSpec:
    name: str
    kind: str
    competency: str
    metric: str
    languages: dict[str, LanguageSpec]
    group: str | None = None
    chance: float | None = None
    base_model: bool = True
    max_runs: int | None = None
    version: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific, task-wide settings
    path: str | None = None

    def lang(self, lang: str) -> LanguageSpec:
        try:
            return self.languages[lang]
        except KeyError:
            raise ConfigError(f"task {self.name!r} has no language {lang!r} (has {', '.join(self.languages)})") from None


# --------------------------------------------------------------------------------------------------- items


@dataclass
class Item:
    """One evaluation question. `prompts` holds one field dict per user turn."""

    id: str
    prompts: list[dict[str, Any]]
    label: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # other row columns (kwargs, criteria, baselines ...)


@dataclass
class TurnOutput:
    """What the model produced for one turn."""

    text: str  # raw generated text (special tokens kept)
    answer: str  # text with reasoning removed; "" when cut off inside the reasoning
    reasoning: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ItemScore:
    score: float | None  # 0..1; None = not scorable (excluded)
    extracted: Any = None  # the extracted answer (None when nothing matched)
    details: dict[str, Any] = field(default_factory=dict)


class ScoreContext:
    """What a kind may use while scoring: run seed, a cache folder, shared engines (judges, metric models)."""

    def __init__(self, *, run: int, seed: int, cache_dir: Path, engine_factory: Callable[[str], Any] | None = None,
                 options: dict[str, Any] | None = None):
        self.run = run
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        self.options = dict(options or {})  # e.g. {"judge": "http://...", "metricx": "/path"}
        self._factory = engine_factory
        self._engines: dict[str, Any] = {}

    def engine(self, ref: str):
        """An engine for `ref` (judge model or endpoint), opened once and shared across tasks."""
        if ref not in self._engines:
            if self._factory is None:
                from ...engine import open_engine

                self._engines[ref] = open_engine(ref)
            else:
                self._engines[ref] = self._factory(ref)
        return self._engines[ref]

    def close(self) -> None:
        for e in self._engines.values():
            try:
                e.close()
            except Exception:
                pass
        self._engines.clear()


# --------------------------------------------------------------------------------------------------- kinds


class TaskKind:
    """Base class of task kinds. Subclasses set `name` and implement `score`."""

    name: ClassVar[str] = ""
    base_model_ok: ClassVar[bool] = True  # False: skipped for base models (few-shot makes no sense)
    needs_images: ClassVar[bool] = False  # True: skipped for models that take no images (vision kinds)

    # 1. items -------------------------------------------------------------------------------------------
    def load_rows(self, spec: TaskSpec, lang: str, source: Any, *, model: Any = None,
                  limit: int | None = None) -> list[dict]:
        """The rows of (spec, lang), read from the hub or `--data` (`sealion.evaluate.data`). Kinds that generate
        their items (long-context haystacks) override this; `model` is the evaluated model's reference or opened
        engine (for its tokenizer), `limit` the number of rows wanted (None: all)."""
        from ..data import load_rows

        rows = load_rows(spec.lang(lang), source, task=spec.name)
        return rows[:limit] if limit else rows

    def make_items(self, spec: TaskSpec, lang: str, rows: list[dict]) -> list[Item]:
        ls = spec.lang(lang)
        items = []
        # SEA Safeguard rows carry `prompt_label` / `response_label`; the spec names which one is the gold
        label_field = spec.options.get("label_field") or "label"
        for i, row in enumerate(rows):
            label = row.get(label_field)
            items.append(Item(
                id=str(row.get("id", i)),
                prompts=list(row["prompts"]),
                label=map_label(label, ls),
                metadata=dict(row.get("metadata") or {}),
                extra={k: v for k, v in row.items() if k not in ("id", "prompts", "label", "metadata", "prompt_templates")},
            ))
        return items

    # 2. prompts -----------------------------------------------------------------------------------------
    def user_turns(self, spec: TaskSpec, lang: str, item: Item) -> list[str]:
        p = spec.lang(lang).prompt
        turns = [format_fields(p.template, {**item.metadata, **f}, spec.name, lang) for f in item.prompts]
        pre = self.preamble(spec, lang, item)
        if pre:
            turns[0] = (pre + "\n\n" + turns[0]).strip()
        return turns

    def user_content(self, spec: TaskSpec, lang: str, item: Item, turn: int, text: str) -> str | list[dict]:
        """The content of user turn `turn` given its text: the text itself, or OpenAI content parts (the vision
        kinds add the item's images as ``image_url`` parts)."""
        return text

    def preamble(self, spec: TaskSpec, lang: str, item: Item | None = None) -> str:
        """The instruction with the answer format; `{answer_tag}` filled, and row fields too when the spec sets
        `preamble_fields: true` (e.g. Kalahi's per-item option letters)."""
        p = spec.lang(lang).prompt
        if not p.preamble:
            return ""
        text = p.preamble.replace("{answer_tag}", p.answer_tag or "")
        if spec.options.get("preamble_fields") and item is not None:
            text = format_fields(text, {**item.metadata, **item.prompts[0]}, spec.name, lang)
        return text.strip()

    def fewshot_pair(self, spec: TaskSpec, lang: str, example: Item) -> tuple[str, str]:
        p = spec.lang(lang).prompt
        user = format_fields(p.template, {**example.metadata, **example.prompts[0]}, spec.name, lang)
        label = example.label if not isinstance(example.label, list) else example.label[0]
        assistant = p.answer_template.replace("{answer_tag}", p.answer_tag or "").replace("{label}", str(label)).strip()
        return user, assistant

    def max_tokens(self, spec: TaskSpec, lang: str) -> int:
        return spec.lang(lang).prompt.max_tokens

    def stop(self, spec: TaskSpec, lang: str, base_model: bool) -> list[str]:
        return ["\n\n"] if base_model else []

    # SEA-HELM's log-prob variants generate up to the answer tag (their only stop, kept in the text), then score
    stops_at_answer_tag = False

    # 3. scoring -----------------------------------------------------------------------------------------
    def score(self, spec: TaskSpec, lang: str, items: list[Item], outputs: list[list[TurnOutput]],
              ctx: ScoreContext) -> list[ItemScore]:
        raise NotImplementedError

    # 4. aggregation -------------------------------------------------------------------------------------
    def task_metrics(self, spec: TaskSpec, lang: str, items: list[Item], scores: list[ItemScore]) -> dict[str, float]:
        vals = [s.score for s in scores if s.score is not None]
        return {spec.metric: 100.0 * sum(vals) / len(vals) if vals else 0.0}

    def finalize(self, spec: TaskSpec, lang: str, items: list[Item], scores: list[ItemScore],
                 ctx: ScoreContext) -> dict[str, Any]:
        """Corpus-level extras computed once per run (not bootstrapped)."""
        return {}


_KINDS: dict[str, type[TaskKind]] = {}


def register_kind(cls: type[TaskKind]) -> type[TaskKind]:
    """Class decorator: make a TaskKind available to specs as `kind: <cls.name>`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _KINDS[cls.name] = cls
    return cls


def get_kind(name: str) -> TaskKind:
    _load_plugins()
    try:
        return _KINDS[name]()
    except KeyError:
        raise ConfigError(f"unknown task kind {name!r} (known: {', '.join(sorted(_KINDS))})") from None


# --------------------------------------------------------------------------------------------------- helpers


def format_fields(template: str, fields: dict[str, Any], task: str = "", lang: str = "") -> str:
    try:
        return template.format(**fields)
    except KeyError as e:
        raise ConfigError(f"task {task!r} [{lang}]: template field {e} missing from the row (has {sorted(fields)})") from None


def map_label(label: Any, ls: LanguageSpec) -> Any:
    """v1 raw labels (English words, numbers, booleans) -> the native label; native labels pass through."""
    if label is None or isinstance(label, list):
        return label
    key = str(label)
    if ls.labels:
        for native in ls.labels:  # already native (hub data, few-shot examples)
            if key.lower() == native.lower():
                return native
    for raw, native in ls.label_map.items():
        if key.lower() == str(raw).lower():
            return native
    return label if not isinstance(label, (int, float, bool)) else key


# --------------------------------------------------------------------------------------------------- registry


@lru_cache(maxsize=1)
def _load_plugins() -> None:
    for mod in PLUGIN_PACKAGES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name) or e.name == mod:
                continue  # plugin not built (yet)
            raise


def spec_dirs() -> list[Path]:
    return sorted(p for p in _EVALUATE_DIR.glob("**/specs") if p.is_dir())


def _spec_from_dict(d: dict, path: str) -> TaskSpec:
    def need(key):
        if key not in d:
            raise ConfigError(f"{path}: missing field {key!r}")
        return d[key]

    langs = {}
    for lang, ld in (need("languages") or {}).items():
        ld = dict(ld or {})
        prompt = PromptSpec(**(ld.pop("prompt", None) or {}))
        source = SourceSpec(**(ld.pop("source", None) or {}))
        labels = [str(x) for x in ld.pop("labels", []) or []]
        label_map = {str(k): str(v) for k, v in (ld.pop("label_map", None) or {}).items()}
        langs[lang] = LanguageSpec(lang=lang, prompt=prompt, source=source, labels=labels, label_map=label_map, extra=ld)
    known = {"name", "kind", "competency", "metric", "languages", "group", "chance", "base_model", "max_runs", "version"}
    return TaskSpec(
        name=need("name"), kind=need("kind"), competency=need("competency"), metric=need("metric"), languages=langs,
        group=d.get("group"), chance=d.get("chance"), base_model=bool(d.get("base_model", True)),
        max_runs=d.get("max_runs"), version=int(d.get("version", 1)),
        options={k: v for k, v in d.items() if k not in known}, path=path,
    )


@lru_cache(maxsize=1)
def all_specs() -> dict[str, TaskSpec]:
    _load_plugins()
    specs: dict[str, TaskSpec] = {}
    for d in spec_dirs():
        for f in sorted(d.glob("*.yaml")):
            data = read_yaml(f)
            spec = _spec_from_dict(data, str(f))
            if spec.name in specs:
                raise ConfigError(f"{f}: task {spec.name!r} already defined in {specs[spec.name].path}")
            specs[spec.name] = spec
    return specs


def _parse_size(value: str) -> int:
    v = value.strip().lower()
    mult = 1000 if v.endswith("k") else 1
    return int(float(v[:-1] if mult > 1 else v) * mult)


def _variant(name: str, specs: dict[str, TaskSpec]) -> TaskSpec | None:
    """``<task>@<value>``: a copy of a spec that declares `parameter: <option>` with that option set
    (``niah-multikey@32k`` -> context_size 32000). None when `name` is no such variant."""
    base, sep, value = name.partition("@")
    spec = specs.get(base)
    if not sep or spec is None or not spec.options.get("parameter"):
        return None
    option = spec.options["parameter"]
    try:
        parsed = _parse_size(value)
    except ValueError:
        raise ConfigError(f"task {name!r}: {value!r} is not a number for {option} (e.g. {base}@32k)") from None
    if parsed <= 0:
        raise ConfigError(f"task {name!r}: {option} must be positive")
    return replace(spec, name=name, options={**spec.options, option: parsed})


def get_spec(name: str) -> TaskSpec:
    specs = all_specs()
    if name not in specs:
        variant = _variant(name, specs)
        if variant is not None:
            return variant
        raise ConfigError(f"unknown task {name!r} (known: {', '.join(sorted(specs))})")
    return specs[name]


def load_spec_file(path: str | Path) -> TaskSpec:
    """A spec outside the package (user task)."""
    path = Path(path)
    return _spec_from_dict(read_yaml(path), str(path))


@lru_cache(maxsize=1)
def task_sets() -> dict[str, dict[str, list[str]]]:
    """Task sets: name -> {language: [task, ...]}."""
    data = yaml.safe_load((Path(__file__).parent / "sets.yaml").read_text(encoding="utf-8"))
    return {k: {lang: list(v) for lang, v in langs.items()} for k, langs in data.items()}


def resolve_tasks(names: list[str], languages: list[str] | None = None) -> dict[str, list[str]]:
    """--tasks/--languages -> {language: [task names]}, keeping only (task, language) pairs that exist."""
    sets = task_sets()
    specs = dict(all_specs())
    named = [n for n in names if n not in sets] + [t for n in names for ts in sets.get(n, {}).values() for t in ts]
    for name in named:  # parametrised variants (niah-multikey@32k), on the command line or in a set
        if name not in specs and (variant := _variant(name, specs)) is not None:
            specs[name] = variant
    plan: dict[str, list[str]] = {}
    for name in names:
        if name in sets:
            for lang, tasks in sets[name].items():
                for t in tasks:
                    if t in specs and lang in specs[t].languages:
                        plan.setdefault(lang, [])
                        if t not in plan[lang]:
                            plan[lang].append(t)
        elif name in specs:
            for lang in specs[name].languages:
                plan.setdefault(lang, [])
                if name not in plan[lang]:
                    plan[lang].append(name)
        else:
            raise ConfigError(f"--tasks: unknown task or task set {name!r} (sets: {', '.join(sets)}; "
                              f"tasks: {', '.join(sorted(specs))})")
    if languages:
        unknown = [lang for lang in languages if lang not in plan]
        if unknown and not any(lang in plan for lang in languages):
            raise ConfigError(f"--languages: none of {languages} has tasks in {names} (have {', '.join(plan)})")
        plan = {lang: plan[lang] for lang in languages if lang in plan}
    return {lang: tasks for lang, tasks in plan.items() if tasks}


def finite_mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


__all__ = [
    "SEA_LANGUAGES", "PromptSpec", "SourceSpec", "LanguageSpec", "TaskSpec", "Item", "TurnOutput", "ItemScore",
    "ScoreContext", "TaskKind", "register_kind", "get_kind", "all_specs", "get_spec", "load_spec_file", "task_sets",
    "resolve_tasks", "map_label", "format_fields",
]
