"""`load(ref)`: a model reference -> model, tokenizer and (when the checkpoint has one) processor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .checks import check_model_dir
from .processor import load_processor
from .refs import resolve

# Gemma 4 multimodal checkpoints keep the text model under this prefix; the text-only class expects "model.".
GEMMA4_TEXT_KEY_MAPPING = {r"^model\.language_model\.": "model."}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    processor: Any
    path: Path
    ref: str

    @property
    def config(self):
        return self.model.config

    @property
    def chat_template(self) -> str | None:
        return getattr(self.tokenizer, "chat_template", None)


DTYPE_ALIASES = {"bf16": "bfloat16", "fp32": "float32", "f32": "float32", "fp16": "float16", "f16": "float16"}


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _resolve_dtype(dtype, device: str):
    import torch

    if dtype is None or dtype == "auto":
        # float32 on CPU (bf16 matmuls are slower on most CPUs); the checkpoint's dtype on GPU
        return torch.float32 if device == "cpu" else "auto"
    if isinstance(dtype, str):
        dtype = DTYPE_ALIASES.get(dtype, dtype)
        if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
            raise ModelLoadError(f"unknown dtype '{dtype}' (use float32, bfloat16 or float16)")
        return getattr(torch, dtype)
    return dtype


def _read_config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot load the tokenizer ({type(e).__name__}: {e})") from None
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _from_pretrained(cls, path: Path, **kw):
    try:
        model, info = cls.from_pretrained(path, output_loading_info=True, **kw)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot load the model ({type(e).__name__}: {e})") from None
    # Guard against silently random weights (e.g. a class whose keys do not match the checkpoint's).
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("lm_head.weight")]
    if missing:
        raise ModelLoadError(
            f"{path}: {len(missing)} weight(s) missing for {cls.__name__} (e.g. {missing[0]}); "
            "refusing to run with random weights"
        )
    return model


def load(
    ref: str | Path,
    *,
    text_only: bool = False,
    dtype=None,
    device: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    with_model: bool = True,
    quantize: str | None = None,
) -> LoadedModel:
    """Load a model reference (local dir, hub id, .gguf file, or alias `demo`).

    Gemma 4 multimodal checkpoints load as `Gemma4ForConditionalGeneration`; `text_only=True` loads just the
    language model (`Gemma4ForCausalLM` with remapped keys), leaving the vision and audio towers out of memory
    with identical logits.

    `quantize="int8"|"int4"` stores the text model's linear layers, embeddings and LM head as weight-only int8/int4
    (`sealion.quant`, CPU); a directory written by `sealion quantize` loads quantised as it was saved.
    """
    from .. import quant
    import transformers

    path = resolve(ref)
    check_model_dir(path, allow_pickle=allow_pickle)
    device = device or default_device()
    torch_dtype = _resolve_dtype(dtype, device)
    tokenizer = load_tokenizer(path)
    processor = None if text_only else load_processor(path, tokenizer)
    if not with_model:
        return LoadedModel(None, tokenizer, processor, path, str(ref))

    if quant.is_quantized_dir(path):
        spec = quant.read_spec(path)
        if quantize is not None and quant.check_mode(quantize) != spec.mode:
            raise ModelLoadError(f"{path}: already quantised as {spec.mode}; --quantize {quantize} cannot change it")
        model = quant.load_quantized(path, device=device)
        return LoadedModel(model, tokenizer, processor, path, str(ref))
    if quantize is not None:
        quantize = quant.check_mode(quantize)
        if device != "cpu":
            raise ModelLoadError(f"--quantize {quantize} runs on the CPU kernels only (device={device})")
        torch_dtype = __import__("torch").float32  # quantised from the fp32 weights
    config = _read_config(path)
    model_type = config.get("model_type")
    kw: dict[str, Any] = dict(dtype=torch_dtype, trust_remote_code=trust_remote_code)
    if allow_pickle:
        kw["use_safetensors"] = None
    else:
        kw["use_safetensors"] = True
    if model_type == "gemma4":
        if text_only:
            text_config = transformers.AutoConfig.from_pretrained(path).text_config
            model = _from_pretrained(
                transformers.Gemma4ForCausalLM, path, config=text_config, key_mapping=GEMMA4_TEXT_KEY_MAPPING, **kw
            )
        else:
            model = _from_pretrained(transformers.Gemma4ForConditionalGeneration, path, **kw)
    else:
        model = _from_pretrained(transformers.AutoModelForCausalLM, path, **kw)
    model.to(device).eval()
    if quantize is not None:
        quant.quantize_model(model, quantize)
    return LoadedModel(model, tokenizer, processor, path, str(ref))
