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


