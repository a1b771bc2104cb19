"""What happens to each output tensor: merged, copied from one model, or left out, and why.

The architecture decides the defaults, and what the fine-tuning trained decides the components. Gemma 4: decoder
layers, embeddings, norms and the per-layer-embedding table of the language model are merged; the vision and audio
towers and their projections into the text space are copied from the base (text-only fine-tuning gives them no
gradient); the tied LM head is written once as the embedding; KV-shared layers carry no k/v projections. Gemma 3:
the vision tower and projector are copied. Any other model (Llama-like) is merged tensor by tensor by name.

A training record (the config's `trained:` mapping, else `sealion_training.json` in a fine-tuned model's directory,
written by `sealion distill train`) overrides the component defaults: a component it says was trained is merged,
one it says was frozen is copied from the base. A config's `rules` come first and can override any of this.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from .config import MergeConfig, Rule, Slice, Source
from .tensor_io import CheckpointReader, TensorInfo


@dataclass(frozen=True)
class Family:
    name: str
    layer_pattern: re.Pattern
    copy_rules: tuple[tuple[str, str], ...]  # (regex, reason): copied from the base by default


GEMMA4 = Family(
    "gemma4",
    re.compile(r"(?:^|\.)(?:language_model\.)?layers\.(\d+)\."),
    (
        (r"(?:^|\.)(?:vision_tower|audio_tower)\.", "multimodal tower"),
        (r"(?:^|\.)(?:embed_vision|embed_audio)\.", "multimodal projection"),
    ),
)
GEMMA3 = Family(
    "gemma3",
    re.compile(r"(?:^|\.)(?:language_model\.)?layers\.(\d+)\."),
    (
        (r"(?:^|\.)vision_tower\.", "vision tower"),
        (r"(?:^|\.)multi_modal_projector\.", "multimodal projection"),
    ),
)
GENERIC = Family("generic", re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\."), ())
TOWER_HINT = re.compile(r"vision|audio|visual|multi_modal|mm_projector")

# the parts whose treatment follows what the fine-tuning trained (with a tied head, "embedding" is the head too);
# without a record the family's copy rules apply (towers copied, the rest merged)
COMPONENTS = {
    "per_layer_embedding": re.compile(r"(?:^|\.)embed_tokens_per_layer\."),
    "towers": re.compile(r"(?:^|\.)(?:vision_tower|audio_tower|embed_vision|embed_audio|multi_modal_projector)\."),
    "embedding": re.compile(r"(?:^|\.)embed_tokens\.|(?:^|\.)lm_head\."),
}
TRAINING_RECORD = "sealion_training.json"


def component_of(name: str) -> str | None:
    """Which recorded component a tensor (or parameter) name belongs to, if any."""
    for comp, pattern in COMPONENTS.items():
        if pattern.search(name):
            return comp
    return None


def trained_components(model_dir: Path) -> dict[str, bool] | None:
    """{component: trained} for a fine-tuned model from its sealion_training.json (the parameters that got no
    gradient, written by `sealion distill train`), or None when it has none. A component is trained when any of
    its tensors is not frozen."""
    p = Path(model_dir) / TRAINING_RECORD
    if not p.is_file():
        return None
    try:
        frozen = set(json.loads(p.read_text(encoding="utf-8"))["frozen"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{p}: malformed training record (expected {{\"frozen\": [parameter names]}})") from None
    out: dict[str, bool] = {}
    for name in CheckpointReader(model_dir).names():
        comp = component_of(name)
        if comp is not None:
            out[comp] = out.get(comp, False) or name not in frozen
    return out


def read_config(model_dir: Path) -> dict:
    p = model_dir / "config.json"
    if not p.exists():
        raise ConfigError(f"{model_dir}: no config.json")
    return json.loads(p.read_text())


def text_config(cfg: dict) -> dict:
    return cfg.get("text_config") or cfg


def family_of(cfg: dict) -> Family:
    mt = str(cfg.get("model_type", ""))
    if mt.startswith("gemma4") or mt.startswith("gemma3n"):
        return GEMMA4
    if mt.startswith("gemma3"):
        return GEMMA3
    return GENERIC


def tied_embeddings(cfg: dict) -> bool:
    for c in (cfg, text_config(cfg)):
        if "tie_word_embeddings" in c:
            return bool(c["tie_word_embeddings"])
    return False


def kv_shared_layers(cfg: dict) -> list[int]:
    tc = text_config(cfg)
    n, shared = tc.get("num_hidden_layers"), tc.get("num_kv_shared_layers") or 0
    return list(range(n - shared, n)) if n and shared else []


@dataclass
class TensorPlan:
    name: str
    action: str  # merge | copy
    source: Path | None  # copy source (a model directory)
    reason: str
    layer: int | None
    slice_index: int
    t: float  # position for gradients
    dtype: torch.dtype  # output dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * torch.empty((), dtype=self.dtype).element_size()


@dataclass
class Plan:
    tensors: list[TensorPlan]
    family: str
    num_layers: int
    tied: bool
    kv_shared: list[int]
    dropped: list[tuple[str, str]]  # (name, reason)
    ignored: list[tuple[str, str]]  # tensors present only in non-base models


def _out_dtype(name: str | None, stored: torch.dtype) -> torch.dtype:
    if not stored.is_floating_point:
        return stored
    if not name:
        return stored
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64}
    if name not in table:
        raise ConfigError(f"dtype {name!r} is not supported (one of {', '.join(table)})")
    return table[name]


def build_plan(cfg: MergeConfig, readers: dict[Path, CheckpointReader], dtype: str | None = None) -> Plan:
    spec = cfg.method
    anchor = cfg.base or cfg.slices[0].sources[0]
    configs = {p: read_config(p) for p in readers}
    acfg = configs[anchor.path]
    fam = family_of(acfg)
    tied = tied_embeddings(acfg)

    for p, c in configs.items():
        if p == anchor.path:
            continue
        a = (acfg.get("model_type"), tuple(acfg.get("architectures") or ()))
        b = (c.get("model_type"), tuple(c.get("architectures") or ()))
        if a != b and not cfg.allow_architecture_mismatch:
            raise ConfigError(
                f"{cfg.origin}: {p} is {b[0]} {list(b[1])} but {anchor.path} is {a[0]} {list(a[1])}; different "
                "architectures are refused (set allow_architecture_mismatch: true and route tensors with rules)"
            )
        va, vb = text_config(acfg).get("vocab_size"), text_config(c).get("vocab_size")
        if va and vb and va != vb:
            vocab_rules = [r for r in cfg.rules if r.action != "merge"]
            if not vocab_rules:
                raise ConfigError(
                    f"{cfg.origin}: vocab sizes differ ({anchor.path}: {va}, {p}: {vb}); embedding rows would not "
                    "line up. Merge models that share a tokenizer, or add rules that copy the vocab-shaped tensors"
                )

    trained = _trained_components(cfg, anchor)
    areader = readers[anchor.path]
    names = sorted(areader.names())
    tc = text_config(acfg)
    num_layers = int(tc.get("num_hidden_layers") or 0)
    if not num_layers:
        idx = [int(m.group(1)) for n in names if (m := fam.layer_pattern.search(n)) and not TOWER_HINT.search(n)]
        num_layers = max(idx) + 1 if idx else 0
    covered = cfg.slices[-1].end
    if covered is not None and covered != num_layers:
        raise ConfigError(f"{cfg.origin}: slices cover layers [0, {covered}) but the model has {num_layers} layers")

    out, dropped = [], []
    for name in names:
        info = areader.tensors[name]
        m = fam.layer_pattern.search(name)
        layer = int(m.group(1)) if m and not TOWER_HINT.search(name) else None
        si, t = 0, 0.0
        if layer is not None:
            for j, sl in enumerate(cfg.slices):
                lo, hi = (sl.start, sl.end) if sl.start is not None else (0, num_layers)
                if lo <= layer < hi:
                    si = j
                    span = hi - lo
                    t = (layer - lo) / (span - 1) if span > 1 else 1.0
                    break
        action, source, reason = _decide(cfg, fam, name, tied, anchor, trained)
        if action == "drop":
            dropped.append((name, reason))
            continue
        if action == "merge" and not info.dtype.is_floating_point:
            action, source, reason = "copy", anchor.path, "non-float tensor"
        if action == "merge":
            _check_inputs(cfg, cfg.slices[si], name, info, readers, configs)
        elif source not in readers or name not in readers[source]:
            raise ConfigError(f"{cfg.origin}: rule copies {name} from {source}, which has no such tensor")
        src_info = readers[source].tensors[name] if action == "copy" else info
        out.append(TensorPlan(name, action, source, reason, layer, si, t,
                              _out_dtype(dtype or cfg.dtype, src_info.dtype), src_info.shape))
    base_names = set(names)
    ignored = sorted({(n, str(p)) for p, r in readers.items() if p != anchor.path for n in r.names() if n not in base_names})
    return Plan(out, fam.name, num_layers, tied, kv_shared_layers(acfg), dropped,
                [(n, f"only in {p}") for n, p in ignored])


def _trained_components(cfg: MergeConfig, anchor: Source) -> dict[str, bool]:
    """The config's `trained:`, else the union of the fine-tuned models' records (trained if any model trained it)."""
    if cfg.trained is not None:
        return dict(cfg.trained)
    out: dict[str, bool] = {}
    for src in cfg.models:
        if src.path == anchor.path:
            continue
        for comp, was in (trained_components(src.path) or {}).items():
            out[comp] = out.get(comp, False) or was
    return out


def _decide(cfg: MergeConfig, fam: Family, name: str, tied: bool, anchor: Source,
            trained: dict[str, bool] | None = None) -> tuple[str, Path | None, str]:
    for rule in cfg.rules:
        if rule.matches(name):
            if rule.action == "merge":
                return "merge", None, f"rule {rule.where}"
            if rule.action == "base":
                return "copy", anchor.path, f"rule {rule.where}"
            if rule.action == "drop":
                return "drop", None, f"rule {rule.where}"
            return "copy", Path(rule.action[len("model:"):]), f"rule {rule.where}"
    if tied and re.search(r"(?:^|\.)lm_head\.weight$", name):
        return "drop", None, "tied to the input embedding (written once)"
    comp = component_of(name)
    if comp is not None and trained and comp in trained:
        if trained[comp]:
            return "merge", None, f"{comp.replace('_', ' ')}: trained by the fine-tuning, merged"
        return "copy", anchor.path, f"{comp.replace('_', ' ')}: frozen in the fine-tuning, copied from the base"
    for pattern, why in fam.copy_rules:
        if re.search(pattern, name):
            return "copy", anchor.path, f"{why}: copied from the base"
    return "merge", None, "merged"


def _check_inputs(cfg, sl: Slice, name: str, info: TensorInfo, readers, configs) -> None:
    for src in sl.sources:
        r = readers[src.path]
        if name not in r:
            kv = re.search(r"\.(k_proj|v_proj|k_norm)\.", name)
            hint = " (its KV sharing differs: num_kv_shared_layers)" if kv else ""
            raise ConfigError(
                f"{cfg.origin}: tensor {name} is missing from {src.path}{hint}; the models do not have the same "
                "structure. Add a rule (e.g. {filter: '" + name + "', action: base}) to copy it from the base"
            )
        other = r.tensors[name]
        if other.shape != info.shape:
            tc = text_config(configs[src.path])
            vocab = " (vocab sizes differ)" if tc.get("vocab_size") in other.shape else ""
            raise ConfigError(
                f"{cfg.origin}: tensor {name} has shape {list(other.shape)} in {src.path} but {list(info.shape)} in the "
                f"base{vocab}; add a rule to copy it from one model"
            )
