"""Loading each kind of model reference, and the clear errors for bad ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sealion.errors import ModelLoadError
from sealion.models import load, resolve
from sealion.models.checks import check_safetensors_file


def test_tiny_gemma4_text_only_matches_full_multimodal(tiny_mm_dir):
    full = load(tiny_mm_dir)
    text = load(tiny_mm_dir, text_only=True)
    assert type(full.model).__name__ == "Gemma4ForConditionalGeneration"
    assert type(text.model).__name__ == "Gemma4ForCausalLM"
    # the towers are not in memory
    assert not any("vision" in n or "audio" in n for n, _ in text.model.named_parameters())
    assert any("vision" in n for n, _ in full.model.named_parameters())
    ids = torch.tensor([[2, 105, 2364, 107, 10979, 106, 107, 105]])
    with torch.no_grad():
        assert torch.equal(full.model(input_ids=ids).logits, text.model(input_ids=ids).logits)
    assert full.processor is not None and full.processor.image_processor is not None


def test_tiny_gemma4_structure(tiny_text_dir):
    cfg = json.loads((tiny_text_dir / "config.json").read_text())
    assert cfg["num_kv_shared_layers"] == 2
    assert set(cfg["layer_types"]) == {"sliding_attention", "full_attention"}
    assert cfg["hidden_size_per_layer_input"] > 0 and cfg["tie_word_embeddings"]
    lm = load(tiny_text_dir)
    names = [n for n, _ in lm.model.named_parameters()]
    assert any("embed_tokens_per_layer" in n for n in names)
    # KV-shared layers have no k/v projections of their own
    assert not any("layers.4.self_attn.k_proj" in n for n in names)
    assert any("layers.0.self_attn.k_proj" in n for n in names)
    tok = lm.tokenizer
    assert tok.convert_ids_to_tokens([105, 106, 48, 52, 98, 100]) == [
        "<|turn>", "<turn|>", "<|tool_call>", '<|"|>', "<|think|>", "<|channel>"]
    assert tok("<|turn>user", add_special_tokens=False).input_ids[0] == 105


def test_gemma4_causal_lm_on_multimodal_checkpoint_is_refused(tiny_mm_dir):
    """Loading Gemma4ForCausalLM directly from a multimodal checkpoint gives random weights in transformers;
    our guard refuses instead of running silently on them."""
    import transformers

    from sealion.models.load import _from_pretrained

    with pytest.raises(ModelLoadError, match="missing"):
        _from_pretrained(transformers.Gemma4ForCausalLM, tiny_mm_dir, use_safetensors=True)


def test_local_dir_and_gemma3(tiny_gemma3_dir):
    lm = load(tiny_gemma3_dir)
    assert type(lm.model).__name__ == "Gemma3ForCausalLM"
    assert lm.tokenizer.padding_side == "left"
    assert resolve(str(tiny_gemma3_dir)) == tiny_gemma3_dir


@pytest.mark.parametrize(
    "ref, message",
    [
        ("/definitely/not/here", "no such file or directory"),
        ("./nope", "no such file or directory"),
        ("not-an-alias", "unknown model 'not-an-alias'"),
        ("some-org/some-model-not-cached", "not in the local Hugging Face cache"),
    ],
)
def test_bad_references(ref, message):
    with pytest.raises(ModelLoadError, match=message):
        load(ref)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_config_without_weights(tiny_gemma3_dir, tmp_path):
    d = _copy(tiny_gemma3_dir, tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights"):
        load(d)


def test_truncated_safetensors(tiny_gemma3_dir, tmp_path):
    d = _copy(tiny_gemma3_dir, tmp_path / "m")
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        load(d)


def test_corrupt_safetensors_header(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes((50).to_bytes(8, "little") + b"{not json" + b" " * 41)
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        check_safetensors_file(f)


def test_missing_tokenizer(tiny_gemma3_dir, tmp_path):
    d = _copy(tiny_gemma3_dir, tmp_path / "m")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (d / name).unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load(d)


def test_pickle_weights_refused_by_default(tiny_gemma3_dir, tmp_path):
    d = _copy(tiny_gemma3_dir, tmp_path / "m")
    from safetensors.torch import load_file

    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="refusing to load them"):
        load(d)
    lm = load(d, allow_pickle=True)  # explicit opt-in works
    assert lm.model is not None


def test_invalid_config_json(tiny_gemma3_dir, tmp_path):
    d = _copy(tiny_gemma3_dir, tmp_path / "m")
    (d / "config.json").write_text("{\n  \"model_type\": \n")
    with pytest.raises(ModelLoadError, match=r"config.json: invalid JSON \(line 3"):
        load(d)


def test_gguf_file_reference(tmp_path, tiny_gemma3_dir):
    """A .gguf reference converts once into a cached safetensors directory (the real demo GGUF is used by the
    demo tests; here a missing or broken file gives a clear error)."""
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="cannot read GGUF"):
        resolve(str(bad))
    with pytest.raises(ModelLoadError, match="no such file"):
        resolve(str(tmp_path / "missing.gguf"))


@pytest.mark.demo
def test_demo_alias_and_gguf(demo_dir):
    from sealion.models.demo import demo_gguf_path
    from sealion.models.refs import gguf_cache_dir

    lm = load("demo")
    assert type(lm.model).__name__ == "Gemma3ForCausalLM"
    assert lm.model.config.num_hidden_layers == 18
    gguf = demo_gguf_path()
    assert gguf.suffix == ".gguf"
    # the .gguf path reference resolves to a converted directory with the same weights as the demo alias
    target = gguf_cache_dir(gguf)
    if not target.exists():  # share the demo conversion rather than converting twice in the test run
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(demo_dir, target)
        conv = json.loads((target / "sealion_conversion.json").read_text())
        from sealion.models.convert import _file_key

        conv["source_key"] = _file_key(gguf)
        (target / "sealion_conversion.json").write_text(json.dumps(conv))
    assert resolve(str(gguf)) == target
