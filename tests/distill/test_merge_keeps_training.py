"""A merge keeps what distillation trained: the student's training record routes the per-layer embedding table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from sealion.distill import TrainConfig, train
from sealion.merge import merge
from sealion.recipe.config import parse_recipe
from sealion.recipe.stages import merge_config, with_training_record

PLE = "embed_tokens_per_layer"


def _tensors(model_dir: Path, contains: str) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(f, "pt") as h:
            out.update({k: h.get_tensor(k).float() for k in h.keys() if contains in k})
    return out


@pytest.fixture(scope="module")
def distilled_gemma4(tmp_path_factory, small_rows_file, tiny_text_dir) -> Path:
    """Tiny Gemma 4 (with a per-layer embedding table) distilled from another seed's tiny Gemma 4, two steps."""
    from sealion.distill.capture import CaptureConfig, capture
    from sealion.models.tiny import make_tiny_gemma4

    root = tmp_path_factory.mktemp("distilled")
    teacher = make_tiny_gemma4(root / "teacher", seed=1)
    capture(CaptureConfig(teacher=str(teacher), data=[str(small_rows_file)], out=str(root / "cap"), k=16,
                          progress=False))
    out = root / "student"
    train(TrainConfig(student=str(tiny_text_dir), capture=str(root / "cap"), out=str(out), batch_size=4,
                      micro_batch_size=4, lr=5e-2, max_steps=2, checkpoint_every=0, progress=False))
    return out


def test_training_record_says_the_per_layer_table_was_trained(distilled_gemma4, tiny_text_dir):
    from sealion.merge.plan import trained_components

    record = json.loads((distilled_gemma4 / "sealion_training.json").read_text())
    assert record["frozen"] == [] and record["tied_head"] is True  # a text model: every parameter got a gradient
    assert trained_components(distilled_gemma4) == {"per_layer_embedding": True, "embedding": True}
    base, trained = _tensors(tiny_text_dir, PLE), _tensors(distilled_gemma4, PLE)
    assert base.keys() == trained.keys() and base
    assert all((trained[k] - base[k]).abs().max() > 1e-3 for k in base)  # it really moved


def test_recipe_merge_keeps_the_trained_per_layer_table(distilled_gemma4, tiny_text_dir, tmp_path):
    recipe = parse_recipe({"name": "t", "teacher": "demo", "merge": {"method": "linear", "weight": 0.75}})
    cfg = with_training_record(merge_config(recipe, distilled_gemma4, Path(tiny_text_dir)), distilled_gemma4)
    assert cfg["trained"]["per_layer_embedding"] is True
    out = tmp_path / "merged"
    merge({**cfg, "dtype": "float32"}, out, progress=False)
    base, trained, merged = (_tensors(p, PLE) for p in (Path(tiny_text_dir), distilled_gemma4, out))
    for k in base:  # linear: 0.75 * distilled + 0.25 * partner, not the base's table
        torch.testing.assert_close(merged[k], 0.75 * trained[k] + 0.25 * base[k], rtol=0, atol=1e-6)
        assert (merged[k] - base[k]).abs().max() > 1e-4


def test_a_record_saying_frozen_copies_the_table_from_the_base(distilled_gemma4, tiny_text_dir, tmp_path):
    recipe = parse_recipe({"name": "t", "teacher": "demo", "merge": {"method": "linear", "weight": 0.75}})
    cfg = merge_config(recipe, distilled_gemma4, Path(tiny_text_dir))
    out = tmp_path / "merged"
    summary = merge({**cfg, "dtype": "float32", "trained": {"per_layer_embedding": False}}, out, progress=False)
    base, merged = _tensors(Path(tiny_text_dir), PLE), _tensors(out, PLE)
    for k in base:
        assert torch.equal(merged[k], base[k])
    assert any("frozen" in r for r in summary.to_dict()["copied_by_reason"])
