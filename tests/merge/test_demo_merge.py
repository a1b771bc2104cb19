"""The real demo model (gemma-3-270m) merged with a perturbed copy by TIES, then generated from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from .merge_testutil import write_yaml
from sealion.merge import merge
from sealion.merge.tensor_io import CheckpointReader, ShardWriter


def _perturbed(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and not p.name.endswith(".safetensors"):
            shutil.copy2(p, dst / p.name)
    r = CheckpointReader(src)
    infos = [r.tensors[n] for n in sorted(r.names())]
    w = ShardWriter(dst / "model.safetensors", [(i.name, i.dtype, i.shape) for i in infos], durable=False)
    g = torch.Generator().manual_seed(0)
    for i in infos:
        x = r.read(i.name)
        w.write(i.name, (x.float() + 0.01 * torch.randn(x.shape, generator=g)).to(x.dtype) if x.is_floating_point() else x)
    w.finish()
    return dst


@pytest.mark.demo
def test_ties_merge_of_demo_generates(demo_dir, tmp_path):
    other = _perturbed(Path(demo_dir), tmp_path / "perturbed")
    cfg = write_yaml(tmp_path / "ties.yaml", {
        "merge_method": "ties", "base_model": str(demo_dir),
        "models": [{"model": str(demo_dir), "parameters": {"weight": 0.5, "density": 0.5}},
                   {"model": str(other), "parameters": {"weight": 0.5, "density": 0.5}}],
        "dtype": "float32"})
    out = tmp_path / "merged"
    summary = merge(cfg, out, progress=False)
    shutil.rmtree(other)
    assert summary.family == "gemma3" and len(summary.merged) == 236
    from sealion.engine import open_engine
    from sealion.engine.types import CompletionRequest, SamplingParams

    engine = open_engine(str(out))
    [c] = engine.complete([CompletionRequest(prompt="Ibu kota Indonesia adalah",
                                             params=SamplingParams(max_new_tokens=6, temperature=0.0))])
    assert c.text.strip()
