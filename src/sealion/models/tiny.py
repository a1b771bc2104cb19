"""Tiny random-initialised models with the real structure, saved as Hugging Face directories, for tests.

Gemma 4 text: per-layer embeddings, sliding and full layers, KV-shared layers (with double-wide MLPs), tied
embeddings, logit soft-capping. Gemma 4 multimodal adds tiny vision and audio towers. Both carry the demo tokenizer
renamed to Gemma 4's special tokens (same ids) and a Gemma 4 chat template, so every feature can be tested in
seconds. The vocabulary is the real 262,144 entries; everything else is tiny.
"""

from __future__ import annotations

import json
from pathlib import Path

from .tokenizers import GEMMA4_SPECIAL_TOKENS, gemma3_tokenizer_dir, write_gemma4_tokenizer

VOCAB = 262144
TURN_END_ID = 106  # <turn|>
TOOL_RESPONSE_ID = 50  # <|tool_response>


def _gemma4_chat_template() -> str | None:
    """The package's own Gemma 4 template, once the chat layer provides it."""
    try:
        from ..chat import gemma4_template  # type: ignore[attr-defined]
    except ImportError:
        return None
    return gemma4_template()


def tiny_gemma4_text_config(**overrides):
    from transformers import Gemma4TextConfig

    kw = dict(
        vocab_size=VOCAB,
        vocab_size_per_layer_input=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=5,
        layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        global_head_dim=32,
        hidden_size_per_layer_input=8,
        num_kv_shared_layers=2,
        use_double_wide_mlp=True,
        sliding_window=16,
        final_logit_softcapping=30.0,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=[1, TURN_END_ID],
    )
    kw.update(overrides)
    return Gemma4TextConfig(**kw)


def _generation_config(path: Path) -> None:
    # Gemma 4 instruct defaults (gemma4.md §6): three EOS ids, sampling on.
    gen = {
        "bos_token_id": 2,
        "pad_token_id": 0,
        "eos_token_id": [1, TURN_END_ID, TOOL_RESPONSE_ID],
        "do_sample": True,
        "temperature": 1.0,
        "top_k": 64,
        "top_p": 0.95,
    }
    (path / "generation_config.json").write_text(json.dumps(gen, indent=2))


def _save_processor(out_dir: Path) -> None:
    """Write processor_config.json for the tiny towers in the nested layout Gemma4Processor saves.

    Gemma4Processor itself cannot be constructed without torchvision (its video processor needs it), which this
    CPU setup lacks; `sealion.models.processor.load_processor` reads this file either way.
    """
    from transformers import Gemma4AudioFeatureExtractor, Gemma4ImageProcessorPil

    image = Gemma4ImageProcessorPil(patch_size=4, pooling_kernel_size=2, max_soft_tokens=70).to_dict()
    # 16 mel bins: the tiny audio tower's subsampling expects them (the real E2B uses 128 with wider convolutions)
    audio = Gemma4AudioFeatureExtractor(feature_size=16).to_dict()
    config = {
        "processor_class": "Gemma4Processor",
        "image_processor": image,
        "feature_extractor": audio,
        "image_seq_length": 70,
        "audio_seq_length": 750,
        "audio_ms_per_token": 40,
    }
    (out_dir / "processor_config.json").write_text(json.dumps(config, indent=2, default=str))


def make_tiny_gemma4(out_dir: str | Path, *, multimodal: bool = False, seed: int = 0, **text_overrides) -> Path:
    """Write a random tiny Gemma 4 checkpoint (text-only `Gemma4ForCausalLM`, or `Gemma4ForConditionalGeneration`)."""
    import torch
    from transformers import (
        Gemma4AudioConfig,
        Gemma4Config,
        Gemma4ForCausalLM,
        Gemma4ForConditionalGeneration,
        Gemma4VisionConfig,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    text_cfg = tiny_gemma4_text_config(**text_overrides)
    if multimodal:
        vision = Gemma4VisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            head_dim=16, patch_size=4, pooling_kernel_size=2, position_embedding_size=256,
        )
        audio = Gemma4AudioConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, subsampling_conv_channels=[16, 8],
            use_clipped_linears=False, output_proj_dims=32,
        )
        cfg = Gemma4Config(text_config=text_cfg, vision_config=vision, audio_config=audio, tie_word_embeddings=True)
        model = Gemma4ForConditionalGeneration(cfg)
    else:
        model = Gemma4ForCausalLM(text_cfg)
    model.eval().save_pretrained(out_dir, safe_serialization=True)
    write_gemma4_tokenizer(out_dir, chat_template=_gemma4_chat_template())
    _generation_config(out_dir)
    if multimodal:
        _save_processor(out_dir)
    return out_dir


def make_tiny_gemma3(out_dir: str | Path, *, seed: int = 0, num_hidden_layers: int = 6) -> Path:
    """A random tiny Gemma 3 text model (the demo model's architecture) with the demo tokenizer."""
    import shutil

    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    layer_types = ["sliding_attention"] * (num_hidden_layers - 1) + ["full_attention"]
    cfg = Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=num_hidden_layers,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=16, layer_types=layer_types,
        max_position_embeddings=4096, tie_word_embeddings=True, pad_token_id=0, bos_token_id=2, eos_token_id=1,
    )
    Gemma3ForCausalLM(cfg).eval().save_pretrained(out_dir, safe_serialization=True)
    src = gemma3_tokenizer_dir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, out_dir / name)
    return out_dir


__all__ = ["make_tiny_gemma4", "make_tiny_gemma3", "tiny_gemma4_text_config", "GEMMA4_SPECIAL_TOKENS"]
