"""The Gemma tokenizer used by the demo model, and its Gemma 4 variant for tiny test models.

Gemma 4's tokenizer is Gemma 3's with special tokens renamed at the same ids, so renaming the demo tokenizer's
tokens gives a faithful Gemma 4 tokenizer (same ids, same splitting) without any download.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .cache import cache_dir

# id -> Gemma 4 name (gemma4.md §1.1)
GEMMA4_SPECIAL_TOKENS: dict[int, str] = {
    46: "<|tool>",
    47: "<tool|>",
    48: "<|tool_call>",
    49: "<tool_call|>",
    50: "<|tool_response>",
    51: "<tool_response|>",
    52: '<|"|>',
    98: "<|think|>",
    100: "<|channel>",
    101: "<channel|>",
    105: "<|turn>",
    106: "<turn|>",
    255999: "<|image>",
    256000: "<|audio>",
    258880: "<|image|>",
    258881: "<|audio|>",
    258882: "<image|>",
    258883: "<audio|>",
    258884: "<|video|>",
}

# attribute names the Gemma 4 tokenizer exposes for its control tokens
GEMMA4_TOKEN_ATTRIBUTES = {
    "sot_token": "<|turn>",
    "eot_token": "<turn|>",
    "soc_token": "<|channel>",
    "eoc_token": "<channel|>",
    "think_token": "<|think|>",
    "escape_token": '<|"|>',
    "stc_token": "<|tool_call>",
    "etc_token": "<tool_call|>",
    "std_token": "<|tool>",
    "etd_token": "<tool|>",
    "str_token": "<|tool_response>",
    "etr_token": "<tool_response|>",
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
}


def gemma3_tokenizer_dir() -> Path:
    """A directory holding the demo (Gemma 3) tokenizer alone, extracted from the GGUF once (~15 s)."""
    target = cache_dir() / "tokenizers" / "gemma3"
    if (target / "tokenizer.json").exists():
        return target
    from .demo import demo_gguf_path

    demo_model = cache_dir() / "models" / "gemma-3-270m"
    tmp = Path(tempfile.mkdtemp(prefix=".gemma3.", dir=target.parent if target.parent.exists() else None))
    try:
        if (demo_model / "tokenizer.json").exists():
            for name in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(demo_model / name, tmp / name)
        else:
            from transformers import AutoTokenizer

            gguf = demo_gguf_path()
            AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_gemma4_tokenizer(out_dir: Path, chat_template: str | None = None) -> None:
    """Write the demo tokenizer into `out_dir` with Gemma 4's special-token names at their real ids."""
    src = gemma3_tokenizer_dir()
    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    renamed = {}
    for entry in data.get("added_tokens", []):
        new = GEMMA4_SPECIAL_TOKENS.get(entry["id"])
        if new:
            renamed[entry["content"]] = new
            entry["content"] = new
            entry["special"] = True
    vocab = data["model"]["vocab"]
    if isinstance(vocab, dict):
        for old, new in renamed.items():
            if old in vocab:
                vocab[new] = vocab.pop(old)
    else:  # list of [token, score] (unigram)
        for item in vocab:
            if item[0] in renamed:
                item[0] = renamed[item[0]]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.update(GEMMA4_TOKEN_ATTRIBUTES)
    config.update({"padding_side": "left", "add_bos_token": False, "eos_token": "<eos>", "pad_token": "<pad>"})
    config["model_specific_special_tokens"] = dict(GEMMA4_TOKEN_ATTRIBUTES)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    if chat_template is not None:
        (out_dir / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
