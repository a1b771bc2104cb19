"""The merge config: a mergekit-style YAML (merge_method, base_model, models or slices, parameters, dtype,
tokenizer_source) plus sealion's explicit tensor `rules`. Parameter values resolve per tensor the way mergekit's do:
a scalar; a list of numbers = a gradient across the layers of a slice; a list of {filter, value} = the first entry
whose filter is a substring of the tensor name (no filter or "*" matches all)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import read_yaml
from .methods import METHODS, MethodSpec

TOP_LEVEL_KEYS = {
    "merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype", "tokenizer_source",
    "tokenizer", "chat_template", "rules", "random_seed", "seed", "allow_architecture_mismatch", "name", "trained",
}
TRAINED_COMPONENTS = ("per_layer_embedding", "towers", "embedding")  # see plan.COMPONENTS
RULE_ACTIONS = ("merge", "base", "drop")  # or "model:<ref>"


@dataclass
class Source:
    model: str  # the reference as written
    path: Path  # resolved local directory
    parameters: dict = field(default_factory=dict)


@dataclass
class Slice:
    """A run of decoder layers [start, end) of every model, merged with its own parameters."""

    start: int | None  # None: all layers (the `models:` form)
    end: int | None
    sources: list[Source]
    parameters: dict = field(default_factory=dict)


@dataclass
class Rule:
    pattern: str  # substring of the tensor name, or a regex when it starts with "re:"
    action: str  # merge | base | drop | model:<index>
    where: str  # where it was written, for messages

    def matches(self, name: str) -> bool:
        if self.pattern.startswith("re:"):
            import re

            return re.search(self.pattern[3:], name) is not None
        return self.pattern in ("*", "") or self.pattern in name


@dataclass
class MergeConfig:
    method: MethodSpec
    base: Source | None
    slices: list[Slice]
    parameters: dict
    dtype: str | None
    tokenizer_source: Path | None
    rules: list[Rule]
    seed: int
    allow_architecture_mismatch: bool
    raw: dict
    origin: str  # the file, for messages
    trained: dict[str, bool] | None = None  # what the fine-tuning trained: {component: bool} (plan.COMPONENTS)

    @property
    def models(self) -> list[Source]:
        """Distinct models (by path) across slices, in first-seen order."""
        seen: dict[Path, Source] = {}
        for s in self.slices:
            for src in s.sources:
                seen.setdefault(src.path, src)
        return list(seen.values())


def evaluate(value: Any, tensor_name: str, t: float) -> Any:
    """One parameter value for one tensor at layer position t in [0, 1]."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            scaled = t * (len(value) - 1)
            i0 = int(scaled)
            i1 = min(len(value) - 1, i0 + 1)
            frac = scaled - i0
            return (1 - frac) * value[i0] + frac * value[i1]
        if all(isinstance(v, (bool, int, float, str)) for v in value):
            return value[int(t * (len(value) - 1))]
        for cond in value:
            if not isinstance(cond, dict) or "value" not in cond:
                raise ConfigError(f"parameter entry {cond!r}: expected {{filter: ..., value: ...}}")
            filt = cond.get("filter")
            if filt in (None, "*") or (tensor_name and str(filt) in tensor_name):
                return evaluate(cond["value"], tensor_name, t)
        return None
    if isinstance(value, dict) and "value" in value:
        return evaluate(value["value"], tensor_name, t)
    raise ConfigError(f"unexpected parameter value {value!r}")


def _resolve_model(ref: str, base_dir: Path, where: str) -> Path:
    p = Path(os.path.expanduser(str(ref)))
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, base_dir / p]):
        if cand.is_dir():
            return cand.resolve()
    try:  # aliases and hub ids go through the models layer
        from ..models import resolve  # type: ignore

        return Path(resolve(str(ref))).resolve()
    except ImportError:
        pass
    except Exception as e:  # noqa: BLE001 - any failure to resolve is the user's reference
        raise ConfigError(f"{where}: cannot resolve model {ref!r}: {e}") from None
    raise ConfigError(f"{where}: model {ref!r} is not a directory")


def _check_mapping(obj: Any, where: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(obj).__name__}")
    return obj


def parse_config(raw: dict, *, origin: str = "<config>", base_dir: Path | None = None) -> MergeConfig:
    base_dir = base_dir or Path.cwd()
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a YAML mapping at the top level")
    unknown = set(raw) - TOP_LEVEL_KEYS
    if "modules" in raw:
        raise ConfigError(f"{origin}: `modules:` is not supported; use `rules:` to route tensors (see docs/merge.md)")
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {sorted(unknown)}; known: {sorted(TOP_LEVEL_KEYS)}")
    name = raw.get("merge_method")
    if not name:
        raise ConfigError(f"{origin}: merge_method is required (one of {', '.join(METHODS)})")
    if name not in METHODS:
        raise ConfigError(f"{origin}: merge_method {name!r} is not supported (one of {', '.join(METHODS)})")
    spec = METHODS[name]

    cache: dict[str, Path] = {}

    def source(ref: Any, params: Any, where: str) -> Source:
        if not isinstance(ref, str) or not ref:
            raise ConfigError(f"{where}.model: expected a model path or reference")
        if ref not in cache:
            cache[ref] = _resolve_model(ref, base_dir, where)
        return Source(ref, cache[ref], dict(_check_mapping(params, f"{where}.parameters")))

    base = None
    if raw.get("base_model"):
        base = source(raw["base_model"], None, f"{origin}: base_model")
    elif spec.needs_base:
        raise ConfigError(f"{origin}: merge_method {name} needs base_model")

    slices: list[Slice] = []
    if raw.get("models") and raw.get("slices"):
        raise ConfigError(f"{origin}: give either models: or slices:, not both")
    if raw.get("models"):
        if not isinstance(raw["models"], list):
            raise ConfigError(f"{origin}: models: expected a list")
        srcs = []
        for i, m in enumerate(raw["models"]):
            m = _check_mapping(m, f"{origin}: models[{i}]")
            srcs.append(source(m.get("model"), m.get("parameters"), f"{origin}: models[{i}]"))
        slices.append(Slice(None, None, srcs))
    elif raw.get("slices"):
        for j, s in enumerate(raw["slices"]):
            s = _check_mapping(s, f"{origin}: slices[{j}]")
            srcs, ranges = [], set()
            for i, m in enumerate(s.get("sources") or []):
                where = f"{origin}: slices[{j}].sources[{i}]"
                m = _check_mapping(m, where)
                lr = m.get("layer_range")
                if not (isinstance(lr, list) and len(lr) == 2 and all(isinstance(x, int) for x in lr) and lr[0] < lr[1]):
                    raise ConfigError(f"{where}.layer_range: expected [start, end] with start < end")
                ranges.add(tuple(lr))
                srcs.append(source(m.get("model"), m.get("parameters"), where))
            if not srcs:
                raise ConfigError(f"{origin}: slices[{j}] has no sources")
            if len(ranges) != 1:
                raise ConfigError(
                    f"{origin}: slices[{j}]: sources use different layer_range {sorted(ranges)}; "
                    "sealion merges matching layers only (no layer stacking)"
                )
            (start, end), = ranges
            slices.append(Slice(start, end, srcs, dict(_check_mapping(s.get("parameters"), f"{origin}: slices[{j}].parameters"))))
        expect = 0
        for j, s in enumerate(slices):
            if s.start != expect:
                raise ConfigError(
                    f"{origin}: slices[{j}] starts at layer {s.start}, expected {expect}: slices must cover the layers "
                    "in order without gaps or repeats (layer stacking is not supported)"
                )
            expect = s.end
    else:
        raise ConfigError(f"{origin}: models: (or slices:) is required")

    tok = raw.get("tokenizer_source")
    if isinstance(raw.get("tokenizer"), dict):
        tok = raw["tokenizer"].get("source", tok)
    tokenizer_source = None
    if tok in (None, "base"):
        tokenizer_source = base.path if base else slices[0].sources[0].path
    elif tok == "union":
        raise ConfigError(f"{origin}: tokenizer source 'union' is not supported; merge models that share a tokenizer "
                          "and use tokenizer_source: base")
    else:
        tokenizer_source = source(str(tok), None, f"{origin}: tokenizer_source").path

    rules = []
    for i, r in enumerate(raw.get("rules") or []):
        where = f"{origin}: rules[{i}]"
        r = _check_mapping(r, where)
        action = str(r.get("action", ""))
        if action.startswith("model:"):
            ref = action[len("model:"):]
            action = f"model:{source(ref, None, where).path}"
        elif action not in RULE_ACTIONS:
            raise ConfigError(f"{where}.action: expected one of {RULE_ACTIONS} or model:<path>, got {action!r}")
        if "filter" not in r:
            raise ConfigError(f"{where}: filter is required (a substring of tensor names, or re:<regex>)")
        rules.append(Rule(str(r["filter"]), action, where))

    dtype = raw.get("out_dtype") or raw.get("dtype")
    seed = raw.get("random_seed", raw.get("seed", 0))
    if not isinstance(seed, int):
        raise ConfigError(f"{origin}: random_seed: expected an integer")
    trained = raw.get("trained")
    if trained is not None:
        if not isinstance(trained, dict) or not all(isinstance(v, bool) for v in trained.values()):
            raise ConfigError(f"{origin}: trained: expected a mapping of component to true/false "
                              f"({', '.join(TRAINED_COMPONENTS)})")
        bad = sorted(set(trained) - set(TRAINED_COMPONENTS))
        if bad:
            raise ConfigError(f"{origin}: trained.{bad[0]}: unknown component (one of {', '.join(TRAINED_COMPONENTS)})")
    cfg = MergeConfig(
        method=spec,
        base=base,
        slices=slices,
        parameters=dict(_check_mapping(raw.get("parameters"), f"{origin}: parameters")),
        dtype=str(dtype) if dtype else None,
        tokenizer_source=tokenizer_source,
        rules=rules,
        seed=seed,
        allow_architecture_mismatch=bool(raw.get("allow_architecture_mismatch", False)),
        raw=raw,
        origin=origin,
        trained=dict(trained) if trained is not None else None,
    )
    validate_static(cfg)
    return cfg


def load_config(path_or_dict: str | os.PathLike | dict) -> MergeConfig:
    if isinstance(path_or_dict, dict):
        return parse_config(path_or_dict)
    path = Path(path_or_dict)
    if not path.exists():
        raise ConfigError(f"{path}: no such merge config")
    raw = read_yaml(path)
    return parse_config(raw, origin=str(path), base_dir=path.parent)


# ---------------------------------------------------------------- per-tensor parameter resolution


def _lookup(chain: list[dict], key: str, tensor: str, t: float) -> Any:
    for params in chain:
        if key in params:
            v = evaluate(params[key], tensor, t)
            if v is not None:
                return v
    return None


def tensor_params(cfg: MergeConfig, sl: Slice, tensor: str, t: float, sources: list[Source]) -> tuple[list[dict], dict]:
    """(per-model parameters, method options) for one tensor; raises ConfigError for a missing required one."""
    spec = cfg.method
    global_chain = [sl.parameters, cfg.parameters]
    options = {}
    for key, default in spec.options.items():
        v = _lookup(global_chain, key, tensor, t)
        if v is None:
            if default is None:
                raise ConfigError(f"{cfg.origin}: merge_method {spec.name} needs parameter {key!r} (for tensor {tensor})")
            v = default
        options[key] = v
    per_model = []
    for src in sources:
        chain = [src.parameters]  # source (slices) or model (models:) parameters come first
        chain += global_chain
        p = {}
        for key, default in spec.model_params.items():
            v = _lookup(chain, key, tensor, t)
            if v is None:
                if default is None:
                    raise ConfigError(
                        f"{cfg.origin}: model {src.model}: merge_method {spec.name} needs parameter {key!r} "
                        f"(for tensor {tensor})"
                    )
                v = default
            p[key] = v
        per_model.append(p)
    check_values(cfg, tensor, per_model, options)
    return per_model, options


def check_values(cfg: MergeConfig, tensor: str, per_model: list[dict], options: dict) -> None:
    spec = cfg.method
    for p in per_model:
        d = p.get("density")
        if d is not None and not (0 < float(d) <= 1):
            raise ConfigError(f"{cfg.origin}: density must be in (0, 1], got {d} (tensor {tensor})")
    if spec.name == "slerp" and not (0 <= float(options["t"]) <= 1):
        raise ConfigError(f"{cfg.origin}: slerp t must be in [0, 1], got {options['t']} (tensor {tensor})")
    if spec.name == "linear" and not options.get("normalize", True):
        total = sum(float(p["weight"]) for p in per_model)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"{cfg.origin}: linear weights sum to {total:g}, not 1, for tensor {tensor}; "
                "fix the weights or set normalize: true"
            )
    if spec.name == "linear" and options.get("normalize", True):
        if abs(sum(float(p["weight"]) for p in per_model)) < 1e-12:
            raise ConfigError(f"{cfg.origin}: linear weights sum to 0 for tensor {tensor}; cannot normalize")


def validate_static(cfg: MergeConfig) -> None:
    """Checks that need no tensor: model counts per method."""
    spec = cfg.method
    for j, sl in enumerate(cfg.slices):
        others = [s for s in sl.sources if not (spec.needs_base and cfg.base and s.path == cfg.base.path)]
        n = len(others) if spec.needs_base else len(sl.sources)
        where = f"{cfg.origin}: " + ("models" if sl.start is None else f"slices[{j}]")
        if n < spec.min_models:
            raise ConfigError(f"{where}: merge_method {spec.name} needs at least {spec.min_models} model(s) "
                              f"{'besides the base' if spec.needs_base else ''}, got {n}".rstrip())
        if spec.max_models is not None and n > spec.max_models:
            raise ConfigError(f"{where}: merge_method {spec.name} takes exactly {spec.max_models} model besides the base, got {n}")
