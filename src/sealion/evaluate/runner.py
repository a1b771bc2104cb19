"""The evaluation runner: plan -> items -> prompts -> (cached) generation -> scores -> bootstrap -> reports.

Layout of an output directory::

    <out>/config.json                              what was asked (model, tasks, languages, runs, seeds ...)
    <out>/cache/<model-key>/run_<k>/<lang>/<task>/turn<t>.jsonl
                                                   append-only response cache, keyed by prompt hash
    <out>/runs/run_<k>/<lang>/<task>.jsonl         per-item outputs (prompt, response, reasoning, answer, score ...)
    <out>/results.json, results.md, report.html

A killed run resumes: every finished chunk of generations is already in the cache, so a rerun regenerates only
what is missing. Changing the prompt, sampling settings or seed changes the key, so stale entries are never reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .. import io as sio
from ..errors import ConfigError
from . import seahelm_tree
from .aggregate import BOOTSTRAP_SEED, N_BOOTSTRAPS, TaskRuns, aggregate
from .data import DataSource, MissingData, load_fewshot_rows
from .reasoning import split_reasoning
from .tasks import (SEA_LANGUAGES, Item, ItemScore, ScoreContext, TaskKind, TaskSpec, TurnOutput, get_kind, get_spec,
                    resolve_tasks)

# SEA-HELM's fixed run seeds (run_evaluation.slurm), run k uses SEEDS[k].
SEEDS = (25008113, 42008474, 15226423, 28126671, 19128282, 39305000, 17765035, 23194592)
FEWSHOT_K = 5
THINK_BUDGET = 20000  # extra tokens for reasoning, as SEA-HELM adds for reasoning models


@dataclass
class EvalConfig:
    model: str
    tasks: list[str] = field(default_factory=lambda: ["seahelm"])
    out: str = "runs/eval"
    languages: list[str] | None = None
    runs: int = 8
    limit: int | None = None
    data: str = "hub"
    base_model: bool | None = None  # None: decided from the model (no chat template -> base, 5-shot)
    think: bool = False
    think_budget: int = THINK_BUDGET
    batch_size: int = 16
    concurrency: int = 16
    max_tokens: int | None = None  # override every task's max_tokens (benchmarks)
    temperature: float | None = None  # None: the model's generation_config; 0: greedy
    shots: int | None = None  # few-shot examples for base models (None: SEA-HELM's 5)
    seeds: list[int] | None = None
    judge: str | None = None
    metricx: str | None = None
    clip: str | None = None  # a local CLIP checkpoint for xm3600's RefCLIPScore; without it xm3600 is not scored
    seahelm: str | None = None  # a SEA-HELM checkout or seahelm_tasks tree: its tasks, prompts and settings
    n_bootstraps: int = N_BOOTSTRAPS
    bootstrap_seed: int = BOOTSTRAP_SEED
    progress: bool = True
    engine: Any = None  # an already opened sealion.engine.Engine (recipe, tests); not serialised

    def validate(self) -> None:
        if not self.model and self.engine is None:
            raise ConfigError("model: a model reference or endpoint URL is required")
        seeds = self.seeds or list(SEEDS)
        if self.runs < 1:
            raise ConfigError(f"--runs must be >= 1 (got {self.runs})")
        if self.runs > len(seeds):
            raise ConfigError(f"--runs {self.runs}: only {len(seeds)} seeds are defined")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1 (got {self.limit})")
        if self.batch_size < 1 or self.concurrency < 1:
            raise ConfigError("--batch-size and --concurrency must be >= 1")


# --------------------------------------------------------------------------------------------------- helpers


def model_key(ref: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(ref).rstrip("/").split("/")[-1])[:48] or "model"
    return f"{slug}-{hashlib.sha256(str(ref).encode()).hexdigest()[:8]}"


def loggable(messages: list[dict]) -> list[dict]:
    """Messages as cache keys and logs hold them: an image part's data URL replaced by its digest (the same image
    gives the same key; the bytes stay out of the cache and the per-item files)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = [{"type": "image_url", "image_url": {"url": "sha256:" + hashlib.sha256(
                str(p["image_url"]["url"]).encode()).hexdigest()[:24]}} if p.get("type") == "image_url" else p
                for p in content]
        out.append({**m, "content": content})
    return out


def takes_images(ref: Any) -> bool:
    """Whether a model can be sent images: an opened in-process engine has a processor; a local checkpoint ships a
    processor config; endpoints and unknown references are assumed to (the server answers for itself)."""
    loaded = getattr(ref, "loaded", None)
    if loaded is not None:
        return getattr(loaded, "processor", None) is not None
    if type(ref).__name__ == "LlamaCppEngine":  # text only (engine/llamacpp.py refuses media parts)
        return False
    if not isinstance(ref, str) or ref.startswith(("http://", "https://")):
        return True
    try:
        from ..models import resolve

        path = Path(resolve(ref))
    except Exception:
        return True
    if not path.is_dir():
        return True
    return (path / "processor_config.json").is_file() or (path / "preprocessor_config.json").is_file()


def prompt_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]


def has_chat_template(engine: Any) -> bool:
    """In-process engines expose their tokenizer; endpoints are assumed to be chat models."""
    for attr in ("has_chat_template",):
        v = getattr(engine, attr, None)
        if v is not None:
            return bool(v() if callable(v) else v)
    tok = getattr(engine, "tokenizer", None)
    if tok is None:
        loaded = getattr(engine, "loaded", None)
        tok = getattr(loaded, "tokenizer", None)
    if tok is None:
        return True
    return bool(getattr(tok, "chat_template", None))


def chat_template_on_disk(ref: str) -> bool | None:
    """Whether a local model ships a chat template, read from its files (no model load); None when unknown."""
    if str(ref).startswith(("http://", "https://")):
        return True
    try:
        from ..models import resolve

        path = Path(resolve(ref))
    except Exception:
        return None
    if not path.is_dir():
        return None
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    cfg = path / "tokenizer_config.json"
    if cfg.is_file():
        try:
            return bool(json.loads(cfg.read_text(encoding="utf-8")).get("chat_template"))
        except ValueError:
            return None
    return None


def config_record(cfg: EvalConfig) -> dict:
    """The config as JSON-able data; an engine passed in is recorded by its kind (it holds a model and locks, which
    `asdict` would try to deep-copy)."""
    record = asdict(replace(cfg, engine=None))
    record["engine"] = type(cfg.engine).__name__ if cfg.engine is not None else None
    return record


def generation_config_on_disk(ref: str) -> dict | None:
    """A local model's generation_config.json ({} when it has none); None for endpoints and unknown refs."""
    if not ref or str(ref).startswith(("http://", "https://")):
        return None  # the server applies its own defaults
    try:
        from ..models import resolve

        path = Path(resolve(ref)) / "generation_config.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except Exception:
        return None


# transformers' GenerationConfig defaults: vLLM reads only the keys that differ from them (`to_diff_dict`)
_HF_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": 50}


def seahelm_sampling(generation_config: dict | None) -> dict:
    """SEA-HELM's sampling: vLLM with the model's generation_config merged over vLLM's defaults (temperature 1.0,
    top_p 1.0, top_k disabled). vLLM ignores `do_sample`, and takes only values that differ from transformers'
    defaults, so a config without do_sample still samples, and an explicit top_k 50 means no top-k.
    -> SamplingParams fields (temperature 0 -> greedy)."""
    gc = {k: v for k, v in (generation_config or {}).items() if k in _HF_DEFAULTS and v is not None
          and v != _HF_DEFAULTS[k]}
    temperature = float(gc.get("temperature", 1.0))
    top_k = int(gc.get("top_k", 0))
    return {"temperature": temperature, "top_p": float(gc.get("top_p", 1.0)), "top_k": top_k if top_k > 0 else 0,
            "do_sample": temperature > 0}


def render_base_prompt(preamble: str, shots: list[tuple[str, str]], user: str) -> str:
    """Base models: few-shot pairs joined by blank lines (SEA-HELM's base template), preamble before the first
    example, ending with a blank line so the model writes the answer next."""
    parts: list[str] = []
    for u, a in shots:
        parts += [u, a]
    parts.append(user)
    if preamble:
        parts[0] = preamble + "\n\n" + parts[0]
    return "\n\n".join(parts) + "\n\n"


@dataclass
class Unit:
    """One (language, task) with its items, ready to run."""

    lang: str
    spec: TaskSpec
    kind: TaskKind
    items: list[Item]
    fewshot: list[Item]
    n_runs: int


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def bar(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="item", disable=not self.enabled, leave=False, file=sys.stderr,
                    dynamic_ncols=True)


# --------------------------------------------------------------------------------------------------- runner


class Runner:
    def __init__(self, cfg: EvalConfig):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.seeds = list(cfg.seeds or SEEDS)
        self.source = DataSource.parse(cfg.data)
        self.engine = cfg.engine
        self._own_engine = False
        self.base_model: bool | None = cfg.base_model
        self.progress = _Progress(cfg.progress)
        self.model_key = model_key(cfg.model or getattr(cfg.engine, "name", "engine"))
        self.notes: list[str] = []
        self.stats = {"generated": 0, "cached": 0, "errors": 0, "gen_seconds": 0.0}
        self.tree = seahelm_tree.load_tree(str(cfg.seahelm)) if cfg.seahelm else None
        self.sampling = self._sampling()
        # greedy decoding makes every run identical: generate once, share it across runs (key without seed)
        self.greedy = self.sampling.get("temperature") == 0

    def _sampling(self) -> dict:
        """--temperature, else SEA-HELM's rule over the model's generation_config; endpoints keep their defaults."""
        if self.cfg.temperature is not None:
            t = float(self.cfg.temperature)
            return {"temperature": t, "do_sample": t > 0}
        gc = generation_config_on_disk(self.cfg.model) if self.cfg.model else None
        if gc is None:
            return {}
        return seahelm_sampling(gc)

    # ----------------------------------------------------------------------------------------- engine
    def _open_engine(self):
        if self.engine is None:
            from ..engine import open_engine

            kwargs: dict[str, Any] = {}
            if str(self.cfg.model).startswith(("http://", "https://")):
                kwargs["concurrency"] = self.cfg.concurrency
            else:
                kwargs["max_batch_size"] = self.cfg.batch_size
            try:
                self.engine = open_engine(self.cfg.model, **kwargs)
            except TypeError:  # a backend without that knob
                self.engine = open_engine(self.cfg.model)
            self._own_engine = True
        if self.base_model is None:
            self.base_model = not has_chat_template(self.engine)
            if self.base_model:
                self.notes.append("model has no chat template: evaluated as a base model (5-shot completion prompts)")
        return self.engine

    # ----------------------------------------------------------------------------------------- plan
    def _planned(self) -> list[tuple[str, TaskSpec]]:
        """(language, spec) pairs, task by task: SEA-HELM's config order with a tree, else the set's order."""
        if self.tree is not None:
            plan = self.tree.resolve_plan(self.cfg.tasks, self.cfg.languages)
            self.expected = plan
            return [(lang, self.tree.spec(key)) for key in self.tree.tasks for lang in self.tree.tasks[key]["languages"]
                    if key in plan.get(lang, [])]
        plan = resolve_tasks(self.cfg.tasks, self.cfg.languages)
        self.expected = plan
        order = list(dict.fromkeys(t for tasks in plan.values() for t in tasks))
        return [(lang, get_spec(name)) for name in order for lang in plan if name in plan[lang]]

    def plan(self, *, base_model: bool) -> list[Unit]:
        units = []
        chat_only = 0
        for lang, spec in self._planned():
                name = spec.name
                if not spec.kind:
                    self.notes.append(f"{lang}/{name}: skipped, sealion has no task kind for SEA-HELM's "
                                      f"{spec.options.get('seahelm_metric_class')}")
                    continue
                try:
                    kind = get_kind(spec.kind)
                except ConfigError:
                    self.notes.append(f"{lang}/{name}: skipped, task kind {spec.kind!r} is not available")
                    continue
                if base_model and (not spec.base_model or not kind.base_model_ok):
                    self.notes.append(f"{lang}/{name}: skipped for base models")
                    chat_only += 1
                    continue
                if kind.needs_images and not takes_images(self.engine or self.cfg.model):
                    self.notes.append(f"{lang}/{name}: skipped, the model takes no images (no image processor: a "
                                      "text-only model)")
                    continue
                ls = spec.lang(lang)
                try:
                    rows = kind.load_rows(spec, lang, self.source, model=self.engine or self.cfg.model,
                                          limit=self.cfg.limit)  # generated tasks need the tokenizer
                except MissingData as e:
                    self.notes.append(f"{lang}/{name}: skipped, {e}")
                    continue
                if self.cfg.limit:
                    rows = rows[: self.cfg.limit]
                items = kind.make_items(spec, lang, rows)
                if self.tree is not None and ls.labels:  # SEA-HELM's label set: the distinct gold labels
                    ls.labels = seahelm_tree.gold_labels(items) or ls.labels
                fewshot: list[Item] = []
                if base_model:
                    fewshot = kind.make_items(spec, lang, load_fewshot_rows(ls, self.source, task=name))
                n_runs = min(self.cfg.runs, spec.max_runs or self.cfg.runs)
                units.append(Unit(lang, spec, kind, items, fewshot, n_runs))
        if not units and chat_only and self.cfg.base_model is None:
            # Every task asked for needs chat prompts (SEA-HELM skips them for base models). The user named them, so
            # run them through sealion's Gemma chat format rather than refuse; --base-model keeps SEA-HELM's skip.
            self.base_model = False
            self.notes = [n for n in self.notes if not n.endswith("skipped for base models")
                          and not n.startswith("model has no chat template: evaluated as a base model")]
            self.notes.append("model has no chat template, and every task asked for needs chat prompts: evaluated "
                              "zero-shot through sealion's Gemma chat format (pass --base-model to skip them instead)")
            return self.plan(base_model=False)
        if not units:
            raise ConfigError("nothing to evaluate: no (task, language) pair has data"
                              + (" -- " + "; ".join(self.notes[-5:]) if self.notes else ""))
        return units

    # ----------------------------------------------------------------------------------------- requests
    def _max_tokens(self, u: Unit) -> int:
        n = self.cfg.max_tokens or u.kind.max_tokens(u.spec, u.lang)
        return n + (self.cfg.think_budget if self.cfg.think else 0)

    def _shots(self, u: Unit, item: Item) -> list[tuple[str, str]]:
        k = FEWSHOT_K if self.cfg.shots is None else self.cfg.shots
        if self.tree is not None:
            if self.cfg.shots is None:
                k = int(u.spec.options.get("seahelm_fewshot_base", FEWSHOT_K))
            return seahelm_tree.select_examples(u.spec, item, u.fewshot, k)  # type: ignore[return-value]
        if k <= 0:
            return []
        pool_fn = getattr(u.kind, "fewshot_pool", None)
        if pool_fn is not None:
            chosen = pool_fn(u.spec, u.lang, item, u.fewshot, k)
        else:
            chosen = [ex for ex in u.fewshot if ex.prompts != item.prompts][:k]
        return [u.kind.fewshot_pair(u.spec, u.lang, ex) for ex in chosen]

    def _request(self, u: Unit, item: Item, turn: int, history: list[TurnOutput], seed: int):
        """-> (payload for hashing/logging, engine request). Chat for instruct models, completion for base."""
        from ..engine.types import ChatRequest, CompletionRequest, SamplingParams

        to_tag = u.kind.stops_at_answer_tag or self._two_phase(u)
        if to_tag:
            stop = [u.spec.lang(u.lang).prompt.answer_tag or ""]
        elif self.tree is not None and self.base_model:
            stop = self.tree.fewshot_stop()
        else:
            stop = list(u.kind.stop(u.spec, u.lang, bool(self.base_model)))
        params = SamplingParams(max_new_tokens=self._max_tokens(u), seed=seed, stop=[x for x in stop if x],
                                include_stop_str_in_output=to_tag, **self.sampling)
        sampling = {k: v for k, v in self.sampling.items() if k != "temperature"}
        if self.tree is not None:
            return self._tree_request(u, item, turn, history, seed, params, sampling)
        users = u.kind.user_turns(u.spec, u.lang, item)
        if self.base_model:
            pre = u.kind.preamble(u.spec, u.lang, item)
            body = users[0][len(pre):].lstrip("\n") if pre and users[0].startswith(pre) else users[0]
            prompt = render_base_prompt(pre, self._shots(u, item), body)
            payload = {"prompt": prompt, "max_tokens": params.max_new_tokens, "stop": params.stop,
                       "seed": None if self.greedy else seed, "temperature": params.temperature, **sampling}
            return payload, CompletionRequest(prompt=prompt, params=params, id=item.id)
        messages: list[dict[str, Any]] = []
        for t in range(turn + 1):
            messages.append({"role": "user", "content": u.kind.user_content(u.spec, u.lang, item, t, users[t])})
            if t < turn:
                messages.append({"role": "assistant", "content": history[t].answer})
        payload = {"messages": loggable(messages), "max_tokens": params.max_new_tokens, "stop": params.stop,
                   "seed": None if self.greedy else seed, "think": self.cfg.think, "temperature": params.temperature,
                   **sampling}
        return payload, ChatRequest(messages=messages, params=params, enable_thinking=self.cfg.think, id=item.id)

    def _tree_request(self, u: Unit, item: Item, turn: int, history: list[TurnOutput], seed: int, params, sampling):
        """SEA-HELM's assembly from the tree's templates (seahelm_tree.contents), byte for byte."""
        from ..engine.types import ChatRequest, CompletionRequest

        if self.base_model:
            parts = seahelm_tree.contents(u.spec, u.lang, item, 0, self._shots(u, item))
            prompt = seahelm_tree.render_base(self.tree, parts)
            payload = {"prompt": prompt, "max_tokens": params.max_new_tokens, "stop": params.stop,
                       "seed": None if self.greedy else seed, "temperature": params.temperature, **sampling}
            return payload, CompletionRequest(prompt=prompt, params=params, id=item.id)
        messages: list[dict[str, Any]] = []
        for t in range(turn + 1):
            text = seahelm_tree.contents(u.spec, u.lang, item, t)[-1]
            messages.append({"role": "user", "content": u.kind.user_content(u.spec, u.lang, item, t, text)})
            if t < turn:
                messages.append({"role": "assistant", "content": history[t].answer})
        payload = {"messages": loggable(messages), "max_tokens": params.max_new_tokens, "stop": params.stop,
                   "seed": None if self.greedy else seed, "think": self.cfg.think, "temperature": params.temperature,
                   **sampling}
        return payload, ChatRequest(messages=messages, params=params, enable_thinking=self.cfg.think, id=item.id)

    def _two_phase(self, u: Unit) -> bool:
        """SEA-HELM's base-model decoding (its BaseModelInferenceStrategy): with a tree, a base model first
        generates up to the answer tag, then continues from there with the few-shot stops."""
        return (self.tree is not None and bool(self.base_model) and not u.kind.stops_at_answer_tag
                and bool(u.spec.lang(u.lang).prompt.answer_tag))

    # ----------------------------------------------------------------------------------------- generation
    def _cache_path(self, run: int, u: Unit, turn: int) -> Path:
        run_dir = "greedy" if self.greedy else f"run_{run}"
        return self.out / "cache" / self.model_key / run_dir / u.lang / u.spec.name / f"turn{turn + 1}.jsonl"

    def _generate(self, reqs: list, chat: bool, on_done: Callable[[int], None]) -> list:
        engine = self._open_engine()
        t0 = time.perf_counter()
        res = engine.chat(reqs, progress=on_done) if chat else engine.complete(reqs, progress=on_done)
        self.stats["gen_seconds"] += time.perf_counter() - t0
        return res

    def run_unit_turns(self, run: int, u: Unit) -> list[list[TurnOutput]]:
        seed = self.seeds[run]
        n_turns = max(len(it.prompts) for it in u.items) if u.items else 0
        outputs: list[list[TurnOutput]] = [[] for _ in u.items]
        prompts: list[list[Any]] = [[] for _ in u.items]
        for turn in range(n_turns):
            path = self._cache_path(run, u, turn)
            cache = read_cache(path)
            todo = []
            for i, item in enumerate(u.items):
                if turn >= len(item.prompts) or (turn > 0 and len(outputs[i]) < turn):
                    continue
                if self.base_model and turn > 0:
                    continue
                payload, req = self._request(u, item, turn, outputs[i], seed)
                if req.params.include_stop_str_in_output:  # the text differs, so the cached answer must too
                    payload["include_stop_str_in_output"] = True
                key = prompt_hash(payload)
                prompts[i].append(payload.get("prompt", payload.get("messages")))
                if key in cache:
                    outputs[i].append(_turn_from_row(cache[key]))
                    self.stats["cached"] += 1
                else:
                    todo.append((i, key, payload, req))
            if todo:
                self._open_engine()
                chat = not self.base_model
                # longest prompts first: similar lengths share a batch, and the slowest work starts early
                todo.sort(key=lambda x: -len(json.dumps(x[2], ensure_ascii=False)))
                chunk = max(self.cfg.batch_size, self.cfg.concurrency) * 4
                desc = f"run {run + 1}/{u.n_runs} {u.lang}/{u.spec.name}" + (f" t{turn + 1}" if n_turns > 1 else "")
                with self.progress.bar(len(todo), desc) as bar:
                    for c in range(0, len(todo), chunk):
                        part = todo[c:c + chunk]
                        comps = self._generate([p[3] for p in part], chat, lambda n: bar.update(n))
                        if self._two_phase(u):
                            comps = continue_past_answer_tag(self._open_engine(), [p[3] for p in part], comps,
                                                             self.tree.fewshot_stop())
                        rows = []
                        for (i, key, payload, _), comp in zip(part, comps):
                            row = _row_from_completion(key, comp)
                            outputs[i].append(_turn_from_row(row))
                            if comp.finish_reason == "error":  # scored as empty now, retried on the next run
                                self.stats["errors"] += 1
                                continue
                            rows.append(row)
                        sio.append_jsonl(path, rows)  # a kill after this line loses nothing of this chunk
                        self.stats["generated"] += len(part)
        for i in range(len(u.items)):
            u.items[i].extra.setdefault("_prompts", {})[run] = prompts[i]
        return outputs

    # ----------------------------------------------------------------------------------------- scoring
    def score_unit(self, run: int, u: Unit, outputs: list[list[TurnOutput]], ctx: ScoreContext) -> tuple[list[ItemScore], dict]:
        scores = u.kind.score(u.spec, u.lang, u.items, outputs, ctx)
        metrics = _numeric(u.kind.task_metrics(u.spec, u.lang, u.items, scores))
        extras = u.kind.finalize(u.spec, u.lang, u.items, scores, ctx) or {}
        rows = []
        for item, turns, s in zip(u.items, outputs, scores):
            rows.append({
                "id": item.id, "label": item.label, "prompt": item.extra.get("_prompts", {}).get(run),
                "responses": [t.text for t in turns], "reasoning": [t.reasoning for t in turns],
                "answers": [t.answer for t in turns], "extracted": s.extracted, "score": s.score,
                "details": s.details or None, "finish_reasons": [t.finish_reason for t in turns],
                "tokens": [{"prompt": t.prompt_tokens, "completion": t.completion_tokens} for t in turns],
            })
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        sio.write_text(self.out / "runs" / f"run_{run}" / u.lang / f"{u.spec.name}.jsonl", text)
        return scores, {"metrics": metrics, "extras": _jsonable(extras), "budget": budget_counts(outputs)}

    # ----------------------------------------------------------------------------------------- main
    def run(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        if self.base_model is None and self.engine is None and cfg.model:
            has = chat_template_on_disk(cfg.model)  # decide without loading the model (cache-only reruns)
            if has is not None:
                self.base_model = not has
                if self.base_model:
                    self.notes.append("model has no chat template: evaluated as a base model (5-shot completion prompts)")
        if self.base_model is None:
            self._open_engine()
        units = self.plan(base_model=bool(self.base_model))
        if self.greedy and cfg.runs > 1:
            self.notes.append("greedy decoding: every run gives the same output, so runs share one generation")
        sio.write_json(self.out / "config.json", {
            **config_record(cfg), "seeds_used": self.seeds[: cfg.runs],
            "base_model_resolved": self.base_model, "model_key": self.model_key,
            "plan": {f"{u.lang}/{u.spec.name}": len(u.items) for u in units}})
        ctx_options = {"judge": cfg.judge, "metricx": cfg.metricx, "clip": cfg.clip}
        per_task: dict[tuple[str, str], dict] = {}
        engines_for_ctx = lambda ref: self._ctx_engine(ref)  # noqa: E731
        try:
            for run in range(cfg.runs):
                ctx = ScoreContext(run=run, seed=self.seeds[run], cache_dir=self.out / "cache" / "scoring" / f"run_{run}",
                                   engine_factory=engines_for_ctx, options=ctx_options)
                for u in units:
                    if run >= u.n_runs:
                        continue
                    outputs = self.run_unit_turns(run, u)
                    scores, summary = self.score_unit(run, u, outputs, ctx)
                    rec = per_task.setdefault((u.lang, u.spec.name), {"unit": u, "scores": [], "runs": []})
                    rec["scores"].append(scores)
                    rec["runs"].append(summary)
        finally:
            if self._own_engine and self.engine is not None:
                self.engine.close()
        results = self.aggregate(per_task)
        results["timing"] = {"total_seconds": round(time.perf_counter() - t_start, 3),
                             "generation_seconds": round(self.stats["gen_seconds"], 3),
                             "generated": self.stats["generated"], "cached": self.stats["cached"],
                             "errors": self.stats["errors"]}
        if self.stats["errors"]:
            results["notes"].append(f"{self.stats['errors']} requests failed (scored as empty; rerun to retry them)")
        from .report import write_reports

        write_reports(self.out, results)
        return results

    def _ctx_engine(self, ref: str):
        if ref in ("self", self.cfg.model):  # judging with the evaluated model itself
            return self._open_engine()
        from ..engine import open_engine

        return open_engine(ref)

    # ----------------------------------------------------------------------------------------- aggregation
    def aggregate(self, per_task: dict) -> dict:
        """The leaderboard's aggregation (aggregate.py) over the runs, tasks in plan order (SEA-HELM's config order
        with a tree): one bootstrap generator for the whole evaluation."""
        cfg = self.cfg
        task_runs: list[TaskRuns] = []
        no_metricx = []
        not_scored: dict[str, list[str]] = {}
        for (lang, name), rec in per_task.items():
            u: Unit = rec["unit"]
            run_metrics = [r["metrics"] for r in rec["runs"]]
            labels = [it.label for it in u.items]
            if any(lab is None for lab in labels) or getattr(u.kind, "graded_scores", False):
                labels = None  # no gold labels (IFEval, MT-Bench): not a multiple-choice task
            used = _metric_name(u.spec, run_metrics)
            excluded = None
            if u.spec.kind == "translation" and not used.startswith("metricx"):
                excluded = "MetricX-24 not run (--metricx): chrF++ is reported, but the leaderboard's translation " \
                           "score is MetricX-24 only"
                no_metricx.append(f"{lang}/{name}")
            reason = next((m["not_scored"] for m in run_metrics if m.get("not_scored")), None)
            if reason:  # generated but not scored (xm3600 without --clip): reported as such, never as a zero
                excluded = reason
                not_scored.setdefault(reason, []).append(f"{lang}/{name}")
            budgets = [r.get("budget", {}) for r in rec["runs"]]
            extra: dict[str, Any] = {"kind": u.spec.kind, "metrics": _mean_metrics(run_metrics),
                                     "budget": _budget_summary(budgets)}
            if reason:
                extra["not_scored"] = reason
            extras = [r["extras"] for r in rec["runs"] if r["extras"]]
            if extras:
                extra["extras"] = extras[0] if len(extras) == 1 else extras
            scores = [[s.score for s in run] for run in rec["scores"]]
            scores += [None] * (u.n_runs - len(scores))  # a run that did not finish: flagged incomplete
            task_runs.append(TaskRuns(lang=lang, task=name, competency=u.spec.competency, scores=scores,
                                      labels=labels, group=u.spec.group, metric=used,
                                      per_run_code=[_main_value(u.spec, m) for m in run_metrics],
                                      excluded=excluded, extra=extra))
        agg = aggregate(task_runs, n_boot=cfg.n_bootstraps, seed=cfg.bootstrap_seed, sea_languages=SEA_LANGUAGES,
                        expected=getattr(self, "expected", None))
        notes = list(self.notes)
        if no_metricx:
            notes.append(f"translation without MetricX-24 ({', '.join(no_metricx)}): reported with chrF++ but left out "
                         "of the NLG, language and SEA averages (the leaderboard's translation score is MetricX-24 "
                         "only; pass --metricx DIR)")
        for reason, units in not_scored.items():
            notes.append(f"not scored ({', '.join(units)}): {reason}; left out of every average")
        if agg["incomplete_tasks"]:
            notes.append(f"incomplete (a run is missing): {', '.join(agg['incomplete_tasks'])}")
        if self.tree is not None:
            prompts = {"source": "seahelm", "tree": str(self.tree.tasks_dir),
                       "note": "prompts, answer tags, labels, few-shot examples and max_tokens taken from the SEA-HELM "
                               "tree: leaderboard-comparable prompts"}
        else:
            prompts = {"source": "sealion",
                       "note": "prompts are sealion's own task specs, not SEA-HELM's: not leaderboard-comparable "
                               "(pass --seahelm PATH for SEA-HELM's prompts)"}
            notes.insert(0, prompts["note"])
        return {
            "model": cfg.model, "mode": "base (5-shot)" if self.base_model else "instruct (0-shot)",
            "prompts": prompts, "sampling": self.sampling or "the server's defaults",
            "think": cfg.think, "runs": cfg.runs, "seeds": self.seeds[: cfg.runs], "limit": cfg.limit,
            "data": self.source.describe(), "n_bootstraps": cfg.n_bootstraps, "bootstrap_seed": cfg.bootstrap_seed,
            "results": agg["results"], "sea_average": agg["sea_average"],
            "incomplete_tasks": agg["incomplete_tasks"], "excluded_tasks": agg["excluded_tasks"], "notes": notes,
            "aggregation": "leaderboard: question-wise run bootstrap (mean, stderr with n-1; normalised, and raw under "
                           "'raw'); per_run_code: SEA-HELM's per-run metric averaged over runs",
        }


def budget_counts(outputs: list[list[TurnOutput]]) -> dict[str, int]:
    """Items whose answer is empty because generation ran out of tokens: inside the reasoning (thinking budget)
    or in the answer itself (max_tokens). SEA-HELM scores them as empty answers; here they are also counted."""
    in_reasoning = in_answer = 0
    for turns in outputs:
        cut = [t for t in turns if t.finish_reason == "length" and not (t.answer or "").strip()]
        if not cut:
            continue
        if any(t.reasoning for t in cut):
            in_reasoning += 1
        else:
            in_answer += 1
    return {"empty_cut_in_reasoning": in_reasoning, "empty_cut_at_max_tokens": in_answer,
            "hit_length": sum(1 for turns in outputs if any(t.finish_reason == "length" for t in turns))}


def _budget_summary(per_run: list[dict]) -> dict[str, Any]:
    keys = sorted({k for d in per_run for k in d})
    return {k: {"per_run": [d.get(k, 0) for d in per_run],
                "mean": sum(d.get(k, 0) for d in per_run) / len(per_run) if per_run else 0.0} for k in keys}


# --------------------------------------------------------------------------------------------------- small helpers


def read_cache(path: Path) -> dict[str, dict]:
    """Cache rows by key. A line torn by a kill is dropped, and the file rewritten without it, so later appends
    never sit behind a broken line."""
    if not path.exists():
        return {}
    good, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if isinstance(row, dict) and "key" in row:
                good.append(row)
                continue
        except ValueError:
            pass
        bad += 1
    if bad:
        sio.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in good))
    return {r["key"]: r for r in good}


def continue_past_answer_tag(engine, reqs: list, comps: list, stops: list[str]) -> list:
    """SEA-HELM's second base-model phase: every completion that stopped at the answer tag (kept in its text)
    continues from the prompt's ids and its own with the few-shot `stops` and what is left of `max_tokens`; the
    answer is the two texts joined. Completions that ran out of tokens, or that a stop id (EOS) ended, stay as
    they are."""
    import dataclasses

    from ..engine.types import CompletionRequest

    follow, where = [], []
    for k, (req, comp) in enumerate(zip(reqs, comps)):
        left = req.params.max_new_tokens - comp.completion_tokens
        if comp.finish_reason != "stop" or comp.stop_token_id is not None or left <= 0:
            continue
        generated = comp.token_ids if comp.token_ids is not None else engine.encode_text(comp.text)
        ids = (list(req.prompt_ids) if req.prompt_ids else engine.encode(req.prompt)) + list(generated)
        params = dataclasses.replace(req.params, max_new_tokens=left, stop=list(stops),
                                     include_stop_str_in_output=False)
        follow.append(CompletionRequest(prompt="", prompt_ids=ids, params=params, id=req.id))
        where.append(k)
    out = list(comps)
    for k, more in zip(where, engine.complete(follow) if follow else []):
        first = comps[k]
        out[k] = dataclasses.replace(
            first, text=first.text + more.text, finish_reason=more.finish_reason, error=more.error,
            completion_tokens=first.completion_tokens + more.completion_tokens,
            token_ids=(first.token_ids + more.token_ids) if first.token_ids is not None and more.token_ids else None)
    return out


def _row_from_completion(key: str, comp: Any) -> dict:
    text = comp.text or ""
    if comp.content is not None or comp.reasoning is not None:  # the engine parsed it (chat / HTTP)
        answer, reasoning = (comp.content or "").strip(), comp.reasoning
        if comp.finish_reason == "length" and reasoning is not None and not answer:
            answer = ""
        # engines that keep channel markers in content still get cleaned
        if "<|channel>" in answer or "<think>" in answer:
            answer, r2 = split_reasoning(answer)
            reasoning = reasoning or r2
    else:
        answer, reasoning = split_reasoning(text)
    return {"key": key, "text": text, "answer": answer, "reasoning": reasoning, "finish_reason": comp.finish_reason,
            "prompt_tokens": comp.prompt_tokens, "completion_tokens": comp.completion_tokens, "error": comp.error}


def _turn_from_row(row: dict) -> TurnOutput:
    return TurnOutput(text=row.get("text", ""), answer=row.get("answer", ""), reasoning=row.get("reasoning"),
                      finish_reason=row.get("finish_reason", "stop"), prompt_tokens=row.get("prompt_tokens", 0),
                      completion_tokens=row.get("completion_tokens", 0))


def _numeric(d: dict) -> dict:
    return {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in d.items()}


def _main_value(spec: TaskSpec, metrics: dict) -> float | None:
    v = metrics.get("score", metrics.get(spec.metric))
    return float(v) if isinstance(v, (int, float)) and not math.isnan(float(v)) else None


def _metric_name(spec: TaskSpec, run_metrics: list[dict]) -> str:
    used = run_metrics[0].get("metric_used") if run_metrics else None
    return str(used) if used else spec.metric


def _mean_metrics(run_metrics: list[dict]) -> dict:
    keys = {k for m in run_metrics for k, v in m.items() if isinstance(v, (int, float))}
    out: dict[str, Any] = {}
    for k in sorted(keys):
        vals = [m[k] for m in run_metrics if isinstance(m.get(k), (int, float))]
        out[k] = sum(vals) / len(vals)
    for m in run_metrics[:1]:
        for k, v in m.items():
            if not isinstance(v, (int, float)):
                out[k] = v
    return out


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def run_eval(cfg: EvalConfig) -> dict:
    """Evaluate `cfg.model` and return the results dict (also written to `cfg.out`)."""
    return Runner(cfg).run()
