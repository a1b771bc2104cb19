"""The recipe file: one YAML that describes teacher, student, data, capture, distillation, merge and evaluation.

Loaded into pydantic models (unknown keys refused), then checked against the world (model references, data
paths) before any stage runs. Every error names the file and the field, e.g.
`recipes/demo.yaml: distill.lr: must be > 0 (got -1)`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from ..io import read_yaml

LANGUAGES = ("en", "id", "vi", "th", "ta", "tl", "ms", "my")
MERGE_METHODS = ("linear", "slerp", "task_arithmetic", "ties", "dare_linear", "dare_ties", "model_stock")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
ALIASES = ("demo",)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StudentSpec(_Section):
    """Where the student starts: a model (`from`), optionally cut down to a subset of its decoder layers."""

    from_: str = Field("teacher", alias="from", description="model reference, or 'teacher'")
    layers: list[int] | None = Field(None, description="decoder layer indices to keep (in order)")
    num_layers: int | None = Field(None, gt=0, description="keep this many layers, evenly spaced")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_layer_rule(self) -> "StudentSpec":
        if self.layers is not None and self.num_layers is not None:
            raise ValueError("give either layers or num_layers, not both")
        if self.layers is not None:
            if not self.layers:
                raise ValueError("layers: must not be empty")
            if any(i < 0 for i in self.layers):
                raise ValueError(f"layers: indices must be >= 0 (got {self.layers})")
            if len(set(self.layers)) != len(self.layers) or sorted(self.layers) != self.layers:
                raise ValueError(f"layers: must be strictly increasing (got {self.layers})")
        return self

    @property
    def cuts_layers(self) -> bool:
        return self.layers is not None or self.num_layers is not None


class GenerateSpec(_Section):
    """How the teacher writes the responses (the data stage)."""

    max_new_tokens: int = Field(32, gt=0, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int = 0
    batch_size: int = Field(16, gt=0)


class DataSpec(_Section):
    source: str = Field("builtin", description="'builtin' (the project's prompts), a JSONL file, or a directory")
    format: Literal["prompts", "chat-jsonl", "sea-instruct"] = "prompts"
    languages: list[str] = Field(default_factory=lambda: list(LANGUAGES))
    per_language: int | None = Field(None, gt=0, description="rows per language (None: all)")
    heldout_per_language: int = Field(4, ge=0)
    responses: Literal["teacher", "dataset"] = "teacher"
    generate: GenerateSpec = Field(default_factory=GenerateSpec)
    max_seq_len: int = Field(256, gt=8)
    seed: int = 0

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in LANGUAGES]
        if bad:
            raise ValueError(f"unknown language {bad[0]!r}; allowed: {', '.join(LANGUAGES)}")
        if not v:
            raise ValueError("must name at least one language")
        if len(set(v)) != len(v):
            raise ValueError("languages repeat")
        return v


class CaptureSpec(_Section):
    backend: Literal["local", "vllm"] = "local"
    top_k: int = Field(64, gt=0, le=4096)
    mode: Literal["topk", "sampled"] = "topk"
    batch_size: int = Field(8, gt=0)
    rows_per_shard: int = Field(256, gt=0)
    tensor_parallel: int = Field(1, gt=0)
    dtype: str | None = None
    served: list[str] = Field(default_factory=list, description="URLs (http://HOST:PORT/v1) of served instances of "
                              "the teacher (vLLM, sealion serve); the capture is spread over them")
    served_weights: list[float] | None = Field(None, description="mixture weights of the served teachers")

    @field_validator("served")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for i, u in enumerate(v):
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"[{i}] {u!r} is not an http(s) URL of an OpenAI-compatible API (.../v1)")
        return v

    @model_validator(mode="after")
    def _weights(self) -> "CaptureSpec":
        if self.served_weights is not None:
            if len(self.served_weights) != len(self.served):
                raise ValueError(f"served_weights: {len(self.served_weights)} weight(s) for {len(self.served)} "
                                 "served teacher(s)")
            if any(not w > 0 for w in self.served_weights):
                raise ValueError("served_weights: must all be > 0")
        return self

    def served_kwargs(self, teacher: str) -> dict:
        """CaptureConfig fields for the served instances (none: the teacher runs in-process or under vLLM)."""
        if not self.served:
            return {}
        return {"teacher": self.served[0], "extra_teachers": self.served[1:], "teacher_weights": self.served_weights,
                "tokenizer": teacher, "backend": "served"}


class DistillSpec(_Section):
    launcher: Literal["python", "accelerate"] = "python"
    accelerate_config: str | None = Field(None, description="accelerate config YAML (e.g. FSDP) for launcher: accelerate")
    num_processes: int = Field(1, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(8, gt=0, description="rows per optimiser step, over all processes")
    micro_batch_size: int = Field(2, gt=0, description="rows per forward pass, per process")
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    temperature: float = Field(1.0, gt=0)
    kd_weight: float = Field(1.0, ge=0)
    ce_weight: float = Field(0.0, ge=0)
    divergence: Literal["fkl", "rkl", "jsd", "tvd"] = "fkl"
    missing_mass: Literal["zero", "tail"] = "tail"
    gradient_checkpointing: bool = False
    save_every: int = Field(50, ge=0, description="checkpoint every N steps (0: only at the end / on Ctrl-C)")
    dtype: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _weights(self) -> "DistillSpec":
        if self.kd_weight == 0 and self.ce_weight == 0:
            raise ValueError("kd_weight and ce_weight are both 0: nothing to train on")
        if self.launcher == "accelerate" and not self.accelerate_config:
            raise ValueError("launcher: accelerate needs accelerate_config")
        if self.micro_batch_size * self.num_processes > self.batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be at least micro_batch_size x num_processes "
                             f"({self.micro_batch_size} x {self.num_processes})")
        return self


class MergeSpec(_Section):
    enabled: bool = True
    method: str = "linear"
    with_: str = Field("student-init", alias="with", description="'student-init' or a model reference")
    weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of the distilled student")
    parameters: dict[str, Any] = Field(default_factory=dict, description="extra method parameters (density, t, ...)")
    models: list[str] = Field(default_factory=list, description="model_stock: further fine-tuned models (references) "
                              "merged with the distilled student")
    dtype: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v not in MERGE_METHODS:
            raise ValueError(f"unknown merge method {v!r}; allowed: {', '.join(MERGE_METHODS)}")
        return v


class ExportSpec(_Section):
    enabled: bool = True
    quants: list[str] = Field(default_factory=lambda: ["q8_0", "q4_k_m"],
                              description="GGUF types written for the final model (merged, else distilled)")
    fidelity: bool = True  # KL / top-1 / perplexity ratio per language of each export against the final model
    answer_with: str | None = Field("q4_k_m", description="the export that answers one held-out prompt per "
                                    "language through the llama.cpp backend (null: none)")
    max_new_tokens: int = Field(48, gt=0)
    threads: int | None = Field(None, gt=0)

    @field_validator("quants")
    @classmethod
    def _quants(cls, v: list[str]) -> list[str]:
        from ..export.gguf_export import QUANTS

        v = [q.lower() for q in v]
        for q in v:
            if q not in QUANTS:
                raise ValueError(f"unknown GGUF type {q!r}; allowed: {', '.join(QUANTS)}")
        if len(set(v)) != len(v):
            raise ValueError("a GGUF type is listed twice")
        return v

    @field_validator("answer_with")
    @classmethod
    def _lower(cls, v: str | None) -> str | None:
        return v.lower() if v else v

    @model_validator(mode="after")
    def _answer_is_exported(self) -> "ExportSpec":
        if self.answer_with is not None:
            if self.answer_with not in self.quants:
                raise ValueError(f"answer_with: {self.answer_with} is not among quants ({', '.join(self.quants)})")
        return self


class HeldoutSpec(_Section):
    enabled: bool = True
    bootstrap: int = Field(1000, ge=0)
    batch_size: int = Field(8, gt=0)
    seed: int = 0


class SeahelmSpec(_Section):
    suite: str | None = Field(None, description="'seahelm-mini', 'seahelm', or null (skip)")
    data: str | None = Field(None, description="SEA-HELM data directory (the --data flag overrides)")
    runs: int = Field(1, gt=0)
    backend: Literal["local", "vllm"] = "local"
    limit: int | None = Field(None, gt=0, description="items per task (None: all)")
    languages: list[str] | None = Field(None, description="subset of languages (None: the suite's)")
    judge: str | None = None
    models: list[Literal["teacher", "student-init", "student", "merged"]] = Field(
        default_factory=lambda: ["student-init", "student", "merged"]
    )


class TurnEndSpec(_Section):
    """Whether each model ends its reply with the turn-end id, as the engine waits for (not by spelling it)."""
    enabled: bool = True
    prompts: int = Field(16, gt=0, description="held-out prompts, the first of each language first")
    max_new_tokens: int | None = Field(None, gt=0, description="None: data.generate.max_new_tokens + 32")
    batch_size: int = Field(8, gt=0)


class EvaluateSpec(_Section):
    heldout: HeldoutSpec = Field(default_factory=HeldoutSpec)
    turn_end: TurnEndSpec = Field(default_factory=TurnEndSpec)
    seahelm: SeahelmSpec = Field(default_factory=SeahelmSpec)


class Recipe(_Section):
    name: str = Field(..., min_length=1)
    description: str = ""
    teacher: str = Field(..., description="model reference: local dir, hub id, .gguf, or alias")
    student: StudentSpec = Field(default_factory=StudentSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    capture: CaptureSpec = Field(default_factory=CaptureSpec)
    distill: DistillSpec = Field(default_factory=DistillSpec)
    merge: MergeSpec = Field(default_factory=MergeSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    hardware: dict[str, Any] = Field(default_factory=dict, description="free-form notes on the hardware it needs")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"must be letters, digits, '.', '_' or '-' (got {v!r})")
        return v

    # where the recipe file lives: relative paths in it are resolved against this
    _base_dir: Path = Path(".")

    def resolved_dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _format_validation(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if p not in ("function-after[_one_layer_rule()]",))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/recipe.md)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{source}: {_field_path(loc)}: {msg}")
    return "; ".join(lines)


def check_merge(m: MergeSpec, source: str) -> None:
    """The merge stage's model count and parameters against the method (sealion.merge.methods), before any work.

    The stage merges the distilled student with merge.with: slerp and the task-vector methods take the partner as
    base and the student as the one fine-tuned model; linear averages the two; model_stock needs >= 2 fine-tuned
    models besides the base, so the student plus merge.models."""
    from ..merge.methods import METHODS

    if not m.enabled:
        return
    spec = METHODS[m.method]
    if m.models and m.method != "model_stock":
        raise ConfigError(f"{source}: merge.models: only model_stock takes further fine-tuned models "
                          f"(merge.method is {m.method})")
    n = 1 + len(m.models) if spec.needs_base else 2
    if n < spec.min_models:
        raise ConfigError(f"{source}: merge.method: {m.method} needs at least {spec.min_models} fine-tuned models "
                          f"besides the base (merge.with), and this recipe gives {n} (the distilled student"
                          f"{' + merge.models' if m.models else ''}); list more in merge.models or choose another method")
    if spec.max_models is not None and n > spec.max_models:
        raise ConfigError(f"{source}: merge.models: {m.method} takes {spec.max_models} model besides the base, got {n}")
    known = set(spec.options) | set(spec.model_params)
    for key in m.parameters:
        if key not in known:
            raise ConfigError(f"{source}: merge.parameters.{key}: not a parameter of {m.method} "
                              f"(known: {', '.join(sorted(known)) or 'none'})")


def parse_recipe(data: Any, *, source: str = "<recipe>", base_dir: Path | None = None) -> Recipe:
    """Validate a recipe mapping (structure and values only; see `check_references` for the world)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the recipe must be a YAML mapping (got {type(data).__name__})")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(source, e)) from None
    check_merge(recipe.merge, source)
    recipe._base_dir = (base_dir or Path(".")).resolve()
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    data = read_yaml(path)
    return parse_recipe(data, source=str(path), base_dir=path.parent)


def resolve_path(recipe: Recipe, value: str) -> Path:
    """A path in the recipe, relative to the recipe file's directory (or the repository root for `recipes/...`)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    # recipes are written relative to the repository root (`recipes/data/x`), or to their own directory
    for base in (Path.cwd(), recipe._base_dir, recipe._base_dir.parent):
        if (base / p).exists():
            return (base / p).resolve()
    return (Path.cwd() / p).resolve()


def classify_ref(ref: str) -> str:
    """'alias' | 'local' | 'gguf' | 'hub' | 'missing' for a model reference (no network, no loading)."""
    if ref in ALIASES:
        return "alias"
    p = Path(ref).expanduser()
    if p.suffix == ".gguf":
        return "gguf" if p.is_file() else "missing"
    if p.is_dir():
        return "local" if (p / "config.json").is_file() else "missing"
    if ref.startswith((".", "/", "~")) or p.exists():
        return "missing"
    if HUB_ID.match(ref):
        return "hub"
    return "missing"


def check_references(recipe: Recipe, *, source: str, data_dir: str | None = None, strict: bool = True) -> list[str]:
    """Check what the recipe names against this machine. Returns notes for things only a run can check
    (hub ids, paths that must exist at run time). With strict, anything missing raises ConfigError."""
    notes: list[str] = []
    problems: list[str] = []

    def ref(field: str, value: str) -> None:
        kind = classify_ref(value)
        if kind == "missing":
            problems.append(f"{source}: {field}: model {value!r} does not exist (not a model directory, .gguf file, "
                            f"alias ({', '.join(ALIASES)}) or hub id)")
        elif kind == "hub":
            notes.append(f"{field}: {value} is a hub id; it is downloaded at run time (not checked offline)")

    ref("teacher", recipe.teacher)
    if recipe.student.from_ != "teacher":
        ref("student.from", recipe.student.from_)
    if recipe.merge.enabled and recipe.merge.with_ != "student-init":
        ref("merge.with", recipe.merge.with_)
    for i, other in enumerate(recipe.merge.models if recipe.merge.enabled else []):
        ref(f"merge.models[{i}]", other)

    def path(field: str, value: str, *, kind: str) -> None:
        p = resolve_path(recipe, value)
        ok = p.is_file() if kind == "file" else p.is_dir() if kind == "dir" else p.exists()
        if not ok:
            msg = f"{source}: {field}: {kind if kind != 'any' else 'path'} {value!r} does not exist"
            if strict:
                problems.append(msg)
            else:
                notes.append(f"{field}: {value} must exist at run time (absent here)")

    if recipe.data.source != "builtin":
        path("data.source", recipe.data.source, kind="any")
    elif recipe.data.format != "prompts":
        problems.append(f"{source}: data.format: the builtin data is 'prompts' (got {recipe.data.format!r})")
    if recipe.data.source == "builtin" and recipe.data.responses == "dataset":
        problems.append(f"{source}: data.responses: the builtin prompts have no responses; use 'teacher'")
    if recipe.distill.accelerate_config:
        path("distill.accelerate_config", recipe.distill.accelerate_config, kind="file")
    sh = recipe.evaluate.seahelm
    seahelm_data = data_dir or sh.data
    if sh.suite and seahelm_data:
        path("evaluate.seahelm.data" if not data_dir else "--data", seahelm_data, kind="dir")
    if problems:
        raise ConfigError("; ".join(problems))
    return notes


def dump_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.resolved_dump(), sort_keys=False, allow_unicode=True)
