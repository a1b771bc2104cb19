"""In-process weight-only quantisation (`--quantize int8|int4`), applied by the one loader (`sealion.models.load`).

`quantize_model(model, "int4")` swaps, in place, the text model's linear layers and its token embedding (the LM
head too with `quantize_head=True`; by default it stays fp32, see below) for the layers in `quant.modules`
(PyTorch's own int8/int4 CPU kernels). Gemma 4's per-layer embedding table
stays at 8 bits unless `ple_bits=4` (4-bit per-layer tables roughly double the KL to the original). Layers the
int4 kernel cannot take (rows not a multiple of 16, inputs not whole groups) are stored at int8; layers whose
inputs are not a multiple of 16 (only in tiny test models) stay float.

`save_quantized(model, tokenizer, out)` writes a directory the loader reads back without re-quantising:
the model's config and tokenizer files, `model.safetensors` with the codes and scales, and `sealion_quant.json`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ModelLoadError

MODES = ("int8", "int4")
QUANT_FILE = "sealion_quant.json"
FORMAT = 1
DEFAULT_GROUP_SIZE = 32


@dataclass
class QuantSpec:
    mode: str  # "int8" | "int4"
    group_size: int = DEFAULT_GROUP_SIZE
    ple_bits: int = 8
    model_class: str = ""
    layers: dict[str, str] = field(default_factory=dict)  # module name -> "int8" | "int4" | "emb8" | "emb4"
    tied: dict[str, str] = field(default_factory=dict)  # module -> module whose codes it shares


def check_mode(mode: str) -> str:
    mode = str(mode).lower()
    if mode not in MODES:
        raise ModelLoadError(f"--quantize {mode}: unknown mode (choose from {', '.join(MODES)})")
    return mode


def _text_root(model):
    """The language model's module name prefix: multimodal checkpoints keep towers outside of it."""
    names = dict(model.named_modules())
    for prefix in ("model.language_model", "language_model", "model"):
        if prefix in names:
            return prefix
    return ""


def _set(model, name: str, module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def quantize_model(model, mode: str, *, group_size: int = DEFAULT_GROUP_SIZE, ple_bits: int = 8,
                   quantize_head: bool = False) -> QuantSpec:
    """Quantise `model` in place; returns what was done (saved beside the weights by `save_quantized`).

    The LM head stays fp32 unless `quantize_head`: Gemma's final hidden states have outlier features (|h| ~ 1e3
    on the demo model) that turn the per-row int8 kernel's rounding into a KL of ~0.8 on Tamil text; kept float,
    greedy decoding still gets the engine's exact bf16 screen for it."""
    import torch
    from torch import nn

    from .modules import Int4Linear, Int8Linear, QuantEmbedding, int4_fits, int8_fits

    mode = check_mode(mode)
    if ple_bits not in (4, 8):
        raise ModelLoadError(f"ple_bits={ple_bits}: the per-layer embedding table is kept at 8 or 4 bits")
    if getattr(model, "_sealion_quant", None) is not None:
        raise ModelLoadError("the model is already quantised")
    spec = QuantSpec(mode=mode, group_size=group_size, ple_bits=ple_bits, model_class=type(model).__name__)
    root = _text_root(model)
    head = model.get_output_embeddings()
    head_name = next((n for n, m in model.named_modules() if m is head), None)
    emb = model.get_input_embeddings()
    tied = head is not None and emb is not None and head.weight is emb.weight
    bits = 8 if mode == "int8" else 4
    with torch.no_grad():
        for name, module in list(model.named_modules()):
            in_text = name == head_name or not root or name.startswith(root + ".")
            if not in_text or (name == head_name and not quantize_head):
                continue
            if isinstance(module, nn.Embedding):
                per_layer = "per_layer" in name
                b = ple_bits if per_layer and bits == 4 else bits
                if b == 4 and not int4_fits(16, module.embedding_dim, group_size):
                    b = 8
                _set(model, name, QuantEmbedding.from_embedding(module, b, group_size))
                spec.layers[name] = f"emb{b}"
            elif isinstance(module, nn.Linear):
                if bits == 4 and int4_fits(module.out_features, module.in_features, group_size):
                    new, kind = Int4Linear.from_linear(module, group_size), "int4"
                elif int8_fits(module.in_features):
                    new, kind = Int8Linear.from_linear(module), "int8"
                else:
                    continue  # too narrow for either kernel (tiny test models only): stays float
                _set(model, name, new)
                spec.layers[name] = kind
        if tied and head_name and quantize_head:
            emb_name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
            _share_tied(model.get_submodule(emb_name), model.get_submodule(head_name))
            spec.tied[head_name] = emb_name
    model._sealion_quant = spec
    if hasattr(model, "config"):
        # transformers must not re-tie lm_head to an embedding that has no float weight any more
        model.config.tie_word_embeddings = False
        getattr(model.config, "get_text_config", lambda: model.config)().tie_word_embeddings = False
    return spec


def _share_tied(emb, head) -> None:
    """A tied head and embedding hold the same codes once (the int4 head keeps its packed copy besides)."""
    from .modules import Int4Linear, Int8Linear

    if isinstance(head, Int8Linear) and emb.bits == 8:
        head.qweight, head.scales = emb.qweight, emb.scales
    elif isinstance(head, Int4Linear) and emb.bits == 4 and emb.group_size == head.group_size:
        head.qweight, head.scales_and_zeros = emb.qweight, emb.scales


def quant_spec(model) -> QuantSpec | None:
    return getattr(model, "_sealion_quant", None)


# ---- save / load ----------------------------------------------------------------------------------------------

_COPY = (".json", ".jinja", ".model", ".txt")


def save_quantized(model, tokenizer, out: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
    """Write the quantised model as a directory `sealion.models.load` reads back as is."""
    from safetensors.torch import save_file

    spec = quant_spec(model)
    if spec is None:
        raise ModelLoadError("save_quantized: the model is not quantised (quantize_model first)")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if source is not None:
            for f in Path(source).iterdir():
                if f.is_file() and f.suffix in _COPY and f.name not in ("config.json", QUANT_FILE) \
                        and not f.name.endswith(".index.json"):
                    shutil.copy(f, tmp / f.name)
        tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        state, seen = {}, set()
        for name, t in model.state_dict().items():
            key = (t.data_ptr(), tuple(t.shape), t.dtype)
            if key in seen:
                continue  # a tied head's codes: written once (with the embedding), shared again on load
            seen.add(key)
            state[name] = t.contiguous()
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "sealion_quant": spec.mode})
        (tmp / QUANT_FILE).write_text(json.dumps({"format": FORMAT, **asdict(spec)}, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def is_quantized_dir(path: Path) -> bool:
    return (Path(path) / QUANT_FILE).is_file()


def read_spec(path: Path) -> QuantSpec:
    f = Path(path) / QUANT_FILE
    try:
        raw = json.loads(f.read_text())
    except ValueError as e:
        raise ModelLoadError(f"{f}: invalid JSON ({e})") from None
    if raw.pop("format", None) != FORMAT:
        raise ModelLoadError(f"{f}: field format: this sealion reads format {FORMAT}")
    try:
        return QuantSpec(**raw)
    except TypeError as e:
        raise ModelLoadError(f"{f}: {e}") from None


def load_quantized(path: Path, *, device: str = "cpu"):
    """The model saved by `save_quantized`, its quantised layers rebuilt from their codes (no re-quantising)."""
    import torch
    import transformers
    from safetensors.torch import load_file

    from .modules import Int4Linear, Int8Linear, QuantEmbedding

    spec = read_spec(path)
    if device != "cpu":
        raise ModelLoadError(f"{path}: quantised models run on the CPU kernels only (device={device})")
    cls = getattr(transformers, spec.model_class, None)
    if cls is None:
        raise ModelLoadError(f"{path}/{QUANT_FILE}: field model_class={spec.model_class!r} is not a transformers "
                             "class")
    config = transformers.AutoConfig.from_pretrained(path)
    # fresh (aligned) copies: torch 2.13's int8 kernel crashes on a tensor at an odd offset of the file's buffer
    state = {k: v.clone() for k, v in load_file(str(path / "model.safetensors")).items()}
    from accelerate import init_empty_weights

    # parameters on the meta device (no memory, no random init); buffers (rotary tables, embedding scales) real
    with init_empty_weights(include_buffers=False):
        model = cls(config)
    # float parameters and buffers come from the file; quantised layers are rebuilt from their codes
    for name, kind in spec.layers.items():
        old = model.get_submodule(name)
        p = name + "."
        if name in spec.tied and p + "qweight" not in state:
            continue  # a tied head: built below from its embedding's codes
        bias = state.get(p + "bias")
        if kind == "int8":
            new = Int8Linear(state[p + "qweight"], state[p + "scales"], bias)
        elif kind == "int4":
            new = Int4Linear(state[p + "qweight"], state[p + "scales_and_zeros"], spec.group_size, bias)
        else:
            new = QuantEmbedding(int(kind[3:]), state[p + "qweight"], state[p + "scales"],
                                 group_size=spec.group_size, embed_scale=float(getattr(old, "scalar_embed_scale", 1)),
                                 padding_idx=getattr(old, "padding_idx", None))
        _set(model, name, new)
    for head, emb in spec.tied.items():
        if head + ".qweight" not in state:
            e = model.get_submodule(emb)
            if spec.layers[head] == "int8":
                _set(model, head, Int8Linear(e.qweight, e.scales))
            else:
                _set(model, head, Int4Linear(e.qweight, e.scales, spec.group_size))
    quantised = {n + "." for n in spec.layers}
    rest = {k: v for k, v in state.items() if not any(k.startswith(q) for q in quantised)}
    missing, unexpected = model.load_state_dict(rest, strict=False, assign=True)
    missing = [k for k in missing if not any(k.startswith(q) for q in quantised)]
    if missing or unexpected:
        raise ModelLoadError(f"{path}/model.safetensors: {len(missing)} missing / {len(unexpected)} unexpected "
                             f"tensors (e.g. {(missing or unexpected)[0]})")
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise ModelLoadError(f"{path}/model.safetensors: tensor {meta[0]!r} is missing")
    model._sealion_quant = spec
    model.eval()
    try:
        model.generation_config = transformers.GenerationConfig.from_pretrained(path)
    except OSError:
        pass
    return model


__all__ = ["MODES", "QuantSpec", "quantize_model", "save_quantized", "load_quantized", "is_quantized_dir",
           "quant_spec", "check_mode"]
