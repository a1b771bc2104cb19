"""Small model helpers shared by capture and training: loading, hidden states, the output projection."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ModelLoadError


def resolve_dtype(name: str | None) -> torch.dtype | None:
    if name in (None, "auto"):
        return None
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise ModelLoadError(f"dtype must be one of {sorted(table)}, got {name!r}")
    return table[name]


def resolve_path(ref: str) -> Path:
    """A local directory for a model reference (through sealion.models when available)."""
    try:
        from sealion.models import resolve  # type: ignore[attr-defined]

        return Path(resolve(ref))
    except ImportError:
        pass
    if ref == "demo":
        from sealion.models.demo import demo_path

        return demo_path()
    p = Path(ref)
    if p.is_dir():
        return p
    raise ModelLoadError(f"{ref}: not a model directory (and sealion.models is not available to resolve it)")


_TOKENIZERS: dict[str, object] = {}


def cached_tokenizer(path: Path):
    """AutoTokenizer for a model directory, loaded once per process (the 262k Gemma tokenizer takes seconds)."""
    from transformers import AutoTokenizer

    import hashlib

    path = Path(path)
    h = hashlib.sha1()
    for f in sorted(path.glob("tokenizer*")) + sorted(path.glob("chat_template*")):
        h.update(f.name.encode() + f.read_bytes())
    key = h.hexdigest()  # by content: the same tokenizer in many directories loads once
    if key not in _TOKENIZERS:
        try:
            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{path}: cannot load tokenizer ({e})") from None
    return _TOKENIZERS[key]


def load_tokenizer(ref: str):
    path = resolve_path(ref)
    return cached_tokenizer(path), path


def load_model(ref: str, *, dtype: str | None = None):
    """(model, tokenizer, path) for the text part of a checkpoint (Gemma 4 multimodal -> Gemma4ForCausalLM)."""
    import json

    import transformers

    path = resolve_path(ref)
    tokenizer = cached_tokenizer(path)
    torch_dtype = resolve_dtype(dtype) or torch.float32
    config = json.loads((path / "config.json").read_text())
    kw = dict(dtype=torch_dtype, use_safetensors=True, output_loading_info=True)
    try:
        if config.get("model_type") == "gemma4":
            from sealion.models.load import GEMMA4_TEXT_KEY_MAPPING

            text_config = transformers.AutoConfig.from_pretrained(path).text_config
            model, info = transformers.Gemma4ForCausalLM.from_pretrained(
                path, config=text_config, key_mapping=GEMMA4_TEXT_KEY_MAPPING, **kw)
        else:
            model, info = transformers.AutoModelForCausalLM.from_pretrained(path, **kw)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{ref}: cannot load ({e})") from None
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("lm_head.weight")]
    if missing:
        raise ModelLoadError(f"{path}: {len(missing)} weight(s) missing (e.g. {missing[0]}); refusing random weights")
    return model, tokenizer, path


def softcap_of(model) -> float | None:
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(cfg, "final_logit_softcapping", None) or None


def hidden_states(model, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden states [B, L, H] without the lm_head; attention stays within packed examples."""
    out = model.base_model(input_ids=input_ids, position_ids=position_ids, attention_mask=None, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def output_projection(model) -> tuple[torch.Tensor, torch.Tensor | None]:
    head = model.get_output_embeddings()
    return head.weight, getattr(head, "bias", None)


def dist_env() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment (torchrun / accelerate launch)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed() -> tuple[int, int]:
    rank, world = dist_env()
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
