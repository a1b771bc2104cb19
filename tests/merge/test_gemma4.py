"""Merging tiny Gemma 4 checkpoints: structure-aware plan, loads and runs, gradients hit the right layers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from sealion.merge import merge

from .merge_testutil import write_yaml


def tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    idx = json.loads((model_dir / "model.safetensors.index.json").read_text()) \
        if (model_dir / "model.safetensors.index.json").exists() else None
    files = sorted(set(idx["weight_map"].values())) if idx else ["model.safetensors"]
    out = {}
    for f in files:
        with safe_open(model_dir / f, "pt") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out


def test_ties_merge_of_multimodal_gemma4_loads_and_runs(tiny_mm_pair, tmp_path):
    a, b = tiny_mm_pair
    cfg = write_yaml(tmp_path / "m.yaml", {
        "merge_method": "ties", "base_model": str(a),
        "models": [{"model": str(a)}, {"model": str(b), "parameters": {"weight": 0.7, "density": 0.5}}],
        "dtype": "float32",
    })
    out = tmp_path / "merged"
    summary = merge(cfg, out, shard_size="2MB", progress=False, chunk_elems=1 << 20)  # embeddings go block-wise
    ta, tb, tm = tensors(a), tensors(b), tensors(out)
    assert set(tm) == set(ta)  # nothing lost, nothing invented
    assert not any(k.endswith("lm_head.weight") for k in tm)  # tied head written once (as the embedding)
    for name, t in tm.items():
        if any(s in name for s in ("vision_tower", "audio_tower", "embed_vision", "embed_audio")):
            assert torch.equal(t, ta[name]), name  # towers, projections: the base's (no training record: default)
    ple = [n for n in tm if "embed_tokens_per_layer" in n]
    assert ple and all(not torch.equal(tm[n], ta[n]) for n in ple)  # the per-layer table is merged by default
    merged_text = [n for n in tm if "language_model" in n and "per_layer" not in n and not torch.equal(tm[n], ta[n])]
    assert len(merged_text) > 50
    assert summary.shards > 1 and (out / "model.safetensors.index.json").exists()
    by_reason = summary.to_dict()["copied_by_reason"]
    assert any("tower" in r for r in by_reason) and not any("per-layer" in r for r in by_reason)
    # KV-shared layers have no k/v projections in the inputs, so none in the output either
    cfgj = json.loads((out / "config.json").read_text())
    n_layers = cfgj["text_config"]["num_hidden_layers"]
    shared = cfgj["text_config"]["num_kv_shared_layers"]
    for layer in range(n_layers - shared, n_layers):
        assert not any(f"layers.{layer}.self_attn.k_proj" in n for n in tm)
    # tokenizer, processor, chat template, generation config come from the base
    for f in a.iterdir():
        if f.suffix != ".safetensors" and f.name not in ("model.safetensors.index.json", "config.json"):
            assert (out / f.name).read_bytes() == f.read_bytes(), f.name
    assert not list(tmp_path.glob(".merged*"))  # the work dir was renamed into place

    from transformers import AutoModelForMultimodalLM

    model = AutoModelForMultimodalLM.from_pretrained(out).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[2, 105, 1000, 2000, 3000]])).logits
    assert torch.isfinite(logits).all()
    ref = AutoModelForMultimodalLM.from_pretrained(a).eval()
    with torch.no_grad():
        assert not torch.equal(logits, ref(input_ids=torch.tensor([[2, 105, 1000, 2000, 3000]])).logits)


def test_layer_gradient_applies_per_layer(tiny_text_pair, tmp_path):
    a, b = tiny_text_pair
    cfg = write_yaml(tmp_path / "g.yaml", {
        "merge_method": "linear",
        "models": [{"model": str(a), "parameters": {"weight": [1.0, 0.0]}},
                   {"model": str(b), "parameters": {"weight": [0.0, 1.0]}}],
        "parameters": {"normalize": True},
    })
    out = tmp_path / "g"
    merge(cfg, out, progress=False)
    ta, tb, tm = tensors(a), tensors(b), tensors(out)
    n = json.loads((a / "config.json").read_text())["num_hidden_layers"]
    for layer in range(n):
        t = layer / (n - 1)
        name = f"model.layers.{layer}.mlp.gate_proj.weight"
        torch.testing.assert_close(tm[name], (1 - t) * ta[name] + t * tb[name], rtol=1e-6, atol=1e-6)
    assert torch.equal(tm["model.embed_tokens.weight"], ta["model.embed_tokens.weight"])  # non-layer: t = 0


def test_filters_and_slices_route_parameters(tiny_text_pair, tmp_path):
    a, b = tiny_text_pair
    cfg = write_yaml(tmp_path / "s.yaml", {
        "merge_method": "slerp", "base_model": str(a),
        "slices": [
            {"sources": [{"model": str(a), "layer_range": [0, 2]}, {"model": str(b), "layer_range": [0, 2]}],
             "parameters": {"t": [{"filter": "self_attn", "value": 1.0}, {"value": 0.0}]}},
            {"sources": [{"model": str(a), "layer_range": [2, 5]}, {"model": str(b), "layer_range": [2, 5]}],
             "parameters": {"t": [0.0, 1.0]}},
        ],
        "parameters": {"t": 0.0},
    })
    out = tmp_path / "s"
    merge(cfg, out, progress=False)
    ta, tb, tm = tensors(a), tensors(b), tensors(out)
    q0 = "model.layers.0.self_attn.q_proj.weight"
    m0 = "model.layers.1.mlp.up_proj.weight"
    assert torch.allclose(tm[q0], tb[q0], atol=1e-6)  # t = 1 by filter in slice 0
    assert torch.equal(tm[m0], ta[m0])  # t = 0 otherwise
    # slice 1 spans layers 2..4: t = 0 at its first layer, 1 at its last (gradient within the slice)
    assert torch.equal(tm["model.layers.2.mlp.up_proj.weight"], ta["model.layers.2.mlp.up_proj.weight"])
    assert torch.allclose(tm["model.layers.4.mlp.up_proj.weight"], tb["model.layers.4.mlp.up_proj.weight"], atol=1e-6)
    mid = tm["model.layers.3.mlp.up_proj.weight"]
    assert not torch.equal(mid, ta["model.layers.3.mlp.up_proj.weight"])


def test_rule_can_merge_the_per_layer_embedding(tiny_text_pair, tmp_path):
    a, b = tiny_text_pair
    cfg = write_yaml(tmp_path / "r.yaml", {
        "merge_method": "linear",
        "models": [{"model": str(a), "parameters": {"weight": 0.5}}, {"model": str(b), "parameters": {"weight": 0.5}}],
        "rules": [{"filter": "embed_tokens_per_layer", "action": "merge"}, {"filter": "re:layers\\.0\\.", "action": f"model:{b}"}],
    })
    out = tmp_path / "r"
    merge(cfg, out, progress=False, dtype="bfloat16")
    ta, tb, tm = tensors(a), tensors(b), tensors(out)
    ple = "model.embed_tokens_per_layer.weight"
    assert tm[ple].dtype == torch.bfloat16
    torch.testing.assert_close(tm[ple].float(), ((ta[ple] + tb[ple]) / 2).bfloat16().float())
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(tm[name], tb[name].bfloat16())
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_gemma3_merge_loads_with_sealion(tiny_gemma3_dir, tmp_path):
    from sealion.models import load

    from .merge_testutil import perturbed_copy

    a = Path(tiny_gemma3_dir)
    b = perturbed_copy(a, tmp_path / "b", seed=3)
    cfg = write_yaml(tmp_path / "t.yaml", {
        "merge_method": "task_arithmetic", "base_model": str(a),
        "models": [{"model": str(b), "parameters": {"weight": 0.5}}], "parameters": {"lambda": 1.0},
    })
    merge(cfg, tmp_path / "m", progress=False)
    lm = load(str(tmp_path / "m"))
    ids = lm.tokenizer("Ibu kota", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(lm.model(input_ids=ids).logits).all()
