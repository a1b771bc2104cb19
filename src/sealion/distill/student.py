"""`sealion distill init-student`: a student made of a subset of the teacher's decoder layers.

Works on the files (config.json + safetensors), one tensor at a time, so it also runs for teachers larger than
memory. What it fixes besides renumbering `layers.N.`:
* `layer_types` (the sliding/full pattern) keeps each kept layer's own attention type; the old
  `sliding_window_pattern` is dropped so nothing recomputes it;
* Gemma 4 `per_layer_config` entries follow their layers; `num_kv_shared_layers` counts the kept layers that
  reuse another layer's KV cache (checked: each reused attention type still has a producer);
* Gemma 4 per-layer embeddings: the `[vocab, L*d]` table and `per_layer_model_projection` keep the kept layers'
  slices;
* tied embeddings stay tied (no lm_head tensor is written when the config ties it);
* vision / audio towers of multimodal checkpoints are copied unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..errors import ConfigError
from .modeling import resolve_path

COPY_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
              "chat_template.jinja", "chat_template.json", "generation_config.json", "processor_config.json",
              "preprocessor_config.json")
TEXT_LAYER_PREFIXES = ("model.layers.", "model.language_model.layers.", "language_model.model.layers.")
SHARD_BYTES = 4 * 1024**3


def _text_config(config: dict) -> dict:
    return config["text_config"] if isinstance(config.get("text_config"), dict) else config


def _kv_shared_count(text: dict, layers: list[int]) -> int:
    n_shared = int(text.get("num_kv_shared_layers") or 0)
    if not n_shared:
        return 0
    first_shared = text["num_hidden_layers"] - n_shared
    types = text["layer_types"]
    kept_shared = [i for i in layers if i >= first_shared]
    kept_producers = {types[i] for i in layers if i < first_shared}
    missing = {types[i] for i in kept_shared} - kept_producers
    if missing:
        raise ConfigError(f"--layers: kept KV-sharing layers reuse {sorted(missing)} caches but no kept layer below "
                          f"{first_shared} produces one; keep at least one such layer before the shared block")
    return len(kept_shared)


def student_config(config: dict, layers: list[int]) -> dict:
    """The student's config.json (pure function, tested without files)."""
    config = json.loads(json.dumps(config))
    text = _text_config(config)
    n = int(text["num_hidden_layers"])
    if not layers:
        raise ConfigError("--layers: keep at least one layer")
    if sorted(set(layers)) != layers:
        raise ConfigError(f"--layers: indices must be strictly increasing, got {layers}")
    if layers[0] < 0 or layers[-1] >= n:
        raise ConfigError(f"--layers: the teacher has layers 0..{n - 1}, got {layers}")
    types = text.get("layer_types")
    if types:
        new_types = [types[i] for i in layers]
        if text.get("model_type", "").startswith("gemma4") and new_types[-1] != "full_attention":
            raise ConfigError(f"--layers: Gemma 4 needs a full-attention last layer; layer {layers[-1]} is "
                              f"{new_types[-1]} (full-attention layers: "
                              f"{[i for i, t in enumerate(types) if t == 'full_attention']})")
        kv_shared = _kv_shared_count(text, layers)
        text["layer_types"] = new_types
        if "num_kv_shared_layers" in text:
            text["num_kv_shared_layers"] = kv_shared
    for key in ("sliding_window_pattern", "_sliding_window_pattern"):
        text.pop(key, None)
    plc = text.get("per_layer_config")
    if isinstance(plc, dict):
        text["per_layer_config"] = {str(new): plc[str(old)] if str(old) in plc else plc.get(old)
                                    for new, old in enumerate(layers) if str(old) in plc or old in plc}
    text["num_hidden_layers"] = len(layers)
    config["sealion_init_student"] = {"teacher_layers": layers, "teacher_num_hidden_layers": n}
    return config


def _tensor_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / f for f in files]
    single = path / "model.safetensors"
    if not single.exists():
        raise ConfigError(f"{path}: no model.safetensors (init-student reads safetensors only)")
    return [single]


def _map_tensor(name: str, tensor, layers: list[int], n: int, per_layer_dim: int | None):
    """The student's (name, tensor) for a teacher tensor, or None to drop it."""
    for prefix in TEXT_LAYER_PREFIXES:
        if name.startswith(prefix):
            m = re.match(r"(\d+)(\..*)", name[len(prefix):])
            if m is None:
                return name, tensor
            old = int(m.group(1))
            if old not in layers:
                return None
            return f"{prefix}{layers.index(old)}{m.group(2)}", tensor
    if per_layer_dim and ("embed_tokens_per_layer" in name or "per_layer_model_projection" in name):
        import torch

        dim = 1 if "embed_tokens_per_layer" in name else 0
        if tensor.shape[dim] == n * per_layer_dim:
            parts = tensor.split(per_layer_dim, dim=dim)
            return name, torch.cat([parts[i] for i in layers], dim=dim).contiguous()
    return name, tensor


def init_student(teacher: str, layers: list[int], out: str | os.PathLike) -> Path:
    """Write a student HF directory keeping `layers` of the teacher. Returns its path."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = resolve_path(teacher)
    config = json.loads((src / "config.json").read_text())
    new_config = student_config(config, list(layers))
    text = _text_config(config)
    n = int(text["num_hidden_layers"])
    per_layer_dim = text.get("hidden_size_per_layer_input") if text.get("vocab_size_per_layer_input") else None
    tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", True)))

    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards, current, size, weight_map = [], {}, 0, {}

    def flush():
        nonlocal current, size
        if current:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(current, str(tmp / name), metadata={"format": "pt"})
            shards.append((name, list(current)))
            current, size = {}, 0

    for f in _tensor_files(src):
        with safe_open(str(f), "pt") as st:
            for name in st.keys():
                if tied and name.endswith("lm_head.weight"):
                    continue
                mapped = _map_tensor(name, st.get_tensor(name), list(layers), n, per_layer_dim)
                if mapped is None:
                    continue
                new_name, tensor = mapped
                current[new_name] = tensor
                size += tensor.numel() * tensor.element_size()
                if size >= SHARD_BYTES:
                    flush()
    flush()
    if len(shards) == 1:
        os.replace(tmp / shards[0][0], tmp / "model.safetensors")
    else:
        total = 0
        for name, keys in shards:
            final = name.replace(".safetensors", f"-of-{len(shards):05d}.safetensors")
            os.replace(tmp / name, tmp / final)
            weight_map.update({k: final for k in keys})
            total += (tmp / final).stat().st_size
        (tmp / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (tmp / "config.json").write_text(json.dumps(new_config, indent=2) + "\n")
    for name in COPY_FILES:
        if (src / name).exists():
            shutil.copy(src / name, tmp / name)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
