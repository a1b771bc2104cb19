"""Helpers for the merge tests: perturbed checkpoint copies, YAML configs."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file


def perturbed_copy(src: Path, dst: Path, *, scale: float = 0.01, seed: int = 0) -> Path:
    """The model at `src` with every float tensor + scale * randn (seeded), other files copied."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file() and not p.name.endswith(".safetensors") and p.name != "model.safetensors.index.json":
            shutil.copy2(p, dst / p.name)
    g = torch.Generator().manual_seed(seed)
    for shard in sorted(src.glob("*.safetensors")):
        sd = load_file(shard)
        out = {k: (v + scale * torch.randn(v.shape, generator=g, dtype=torch.float32).to(v.dtype)) if v.is_floating_point() else v
               for k, v in sd.items()}
        save_file(out, dst / shard.name, metadata={"format": "pt"})
    idx = src / "model.safetensors.index.json"
    if idx.exists():
        shutil.copy2(idx, dst / idx.name)
    return dst


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path




def llama_like(dst: Path, *, layers: int = 2, vocab: int = 32, hidden: int = 8, inter: int = 16, seed: int = 0,
               model_type: str = "llama", drop: tuple[str, ...] = ()) -> Path:
    """A small Llama-named checkpoint written directly (no transformers model): fast structure for plan tests."""
    import json

    g = torch.Generator().manual_seed(seed)
    dst.mkdir(parents=True, exist_ok=True)
    sd = {"model.embed_tokens.weight": torch.randn(vocab, hidden, generator=g), "model.norm.weight": torch.ones(hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        sd[p + "self_attn.q_proj.weight"] = torch.randn(hidden, hidden, generator=g)
        sd[p + "mlp.up_proj.weight"] = torch.randn(inter, hidden, generator=g)
        sd[p + "input_layernorm.weight"] = torch.randn(hidden, generator=g)
    for name in drop:
        sd.pop(name)
    save_file(sd, dst / "model.safetensors", metadata={"format": "pt"})
    (dst / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM" if model_type == "llama" else "MistralForCausalLM"],
        "model_type": model_type, "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
        "tie_word_embeddings": True}))
    (dst / "tokenizer_config.json").write_text("{}")
    return dst
