"""init-student: layer subsets of tiny Gemma 3 and Gemma 4 (per-layer embeddings, KV sharing, towers)."""

import json

import pytest
import torch

from sealion.distill.modeling import load_model
from sealion.distill.student import init_student, student_config
from sealion.errors import ConfigError

G3 = {"model_type": "gemma3_text", "num_hidden_layers": 6, "_sliding_window_pattern": 6,
      "layer_types": ["sliding_attention"] * 5 + ["full_attention"], "tie_word_embeddings": True}


def test_config_keeps_each_layers_attention_type():
    cfg = student_config(G3, [0, 2, 5])
    assert cfg["num_hidden_layers"] == 3
    assert cfg["layer_types"] == ["sliding_attention", "sliding_attention", "full_attention"]
    assert "_sliding_window_pattern" not in cfg
    assert cfg["sealion_init_student"]["teacher_layers"] == [0, 2, 5]


@pytest.mark.parametrize("layers,msg", [([2, 1], "strictly increasing"), ([0, 6], "0..5"), ([], "at least one")])
def test_config_rejects_bad_layer_lists(layers, msg):
    with pytest.raises(ConfigError, match=msg):
        student_config(G3, layers)


def test_gemma4_kv_sharing_and_last_layer_rules():
    g4 = {"text_config": {"model_type": "gemma4_text", "num_hidden_layers": 5, "num_kv_shared_layers": 2,
                          "layer_types": ["sliding_attention", "sliding_attention", "full_attention",
                                          "sliding_attention", "full_attention"]}}
    cfg = student_config(g4, [0, 2, 3, 4])
    assert cfg["text_config"]["num_kv_shared_layers"] == 2
    with pytest.raises(ConfigError, match="full-attention last layer"):
        student_config(g4, [0, 1, 3])
    with pytest.raises(ConfigError, match="produces one"):
        student_config(g4, [0, 1, 3, 4])  # no full-attention producer below the shared block


def test_gemma4_all_layers_is_identical_and_subset_runs(tmp_path, tiny_text_dir):
    x = torch.tensor([[2, 100, 200, 300, 400, 500, 600]])
    teacher, _, _ = load_model(str(tiny_text_dir))
    same, _, _ = load_model(str(init_student(str(tiny_text_dir), [0, 1, 2, 3, 4], tmp_path / "all")))
    with torch.no_grad():
        assert torch.equal(teacher(x).logits, same(x).logits)
    sub_dir = init_student(str(tiny_text_dir), [0, 2, 3, 4], tmp_path / "sub")
    sub, _, _ = load_model(str(sub_dir))
    cfg = json.loads((sub_dir / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    ple = sub.model.embed_tokens_per_layer.weight
    full_ple = teacher.model.embed_tokens_per_layer.weight
    d = text["hidden_size_per_layer_input"]
    assert ple.shape[1] == 4 * d
    assert torch.equal(ple[:, d : 2 * d], full_ple[:, 2 * d : 3 * d])  # student layer 1 = teacher layer 2
    assert torch.equal(sub.model.layers[1].self_attn.q_proj.weight, teacher.model.layers[2].self_attn.q_proj.weight)
    with torch.no_grad():
        assert sub(x).logits.shape == (1, 7, 262144)
    assert (sub_dir / "tokenizer.json").exists()
