"""Write a Gemma 3 / Gemma 4 Hugging Face checkpoint as a GGUF file that llama.cpp runs.

Float types (f32, f16, bf16) are written directly with the `gguf` package's writer, streaming one tensor at a
time. Every other type goes through llama.cpp's own quantiser (`llama_model_quantize`, from llama-cpp-python):
first an unquantised GGUF beside the output, then the quantiser's mix for the requested type (q4_k_m keeps some
tensors at q6_k, as llama.cpp does). Gemma 4's per-layer embedding table is kept at >= q8_0 unless overridden.

What llama.cpp expects that a checkpoint does not say directly (learned from llama.cpp's converter):
- Gemma 3 RMSNorm multiplies by (1 + w): the GGUF stores 1 + w. Gemma 4's norms store w itself.
- Gemma 3 scales queries by query_pre_attn_scalar**-0.5, llama.cpp by head_dim**-0.5: the ratio is folded into
  q_norm (exact, since RoPE is linear and comes after the norm).
- Gemma 4's full-attention layers use "proportional" RoPE on a quarter of the head: a `rope_freqs` tensor with
  huge factors switches the other dimensions off.
- The tokenizer is written as llama.cpp's "gemma4" BPE tokenizer (tokens + merges from tokenizer.json); the
  Gemma 4 chat-control tokens are USER_DEFINED so llama.cpp prints them and sealion's parser can read them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..models.tokenizers import GEMMA4_SPECIAL_TOKENS
from .names import ExportError, TextNameMap, block_id, is_tower_tensor, text_name

FLOAT_TYPES = ("f32", "f16", "bf16")
# sealion name -> llama_ftype (llama.h); the ones llama.cpp can make without an importance matrix
LLAMA_FTYPES = {
    "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9,
    "q2_k": 10, "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15,
    "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18,
}
QUANTS = FLOAT_TYPES + tuple(LLAMA_FTYPES)
# per-tensor override types (ggml_type ids) for --ple-quant
GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8,
              "q2_k": 10, "q3_k": 11, "q4_k": 12, "q5_k": 13, "q6_k": 14, "bf16": 30}
# bits per weight of each override type, to hold the per-layer table at >= 8 bits by default
_TYPE_BITS = {"f32": 32, "f16": 16, "bf16": 16, "q8_0": 8.5, "q6_k": 6.6, "q5_0": 5.5, "q5_1": 6, "q5_k": 5.5,
              "q4_0": 4.5, "q4_1": 5, "q4_k": 4.5, "q3_k": 3.4, "q2_k": 2.6}
PLE_TENSOR = "per_layer_token_embd"
# Gemma 4 control tokens llama.cpp must print (its converter marks the same ones)
_VISIBLE = {"<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>",
            '<|"|>'}


@dataclass
class ExportResult:
    path: Path
    quant: str
    arch: str
    n_tensors: int
    skipped: list[str] = field(default_factory=list)  # tower tensors left out of the text GGUF
    mmproj: Path | None = None
    ple_quant: str | None = None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "quant": self.quant, "arch": self.arch, "n_tensors": self.n_tensors,
                "skipped_tower_tensors": len(self.skipped), "mmproj": str(self.mmproj) if self.mmproj else None,
                "ple_quant": self.ple_quant}


# ---- the checkpoint -------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    path: Path
    arch: str  # "gemma3" | "gemma4"
    text: dict  # the text model's config.json fields
    full: dict  # the whole config.json (multimodal keeps towers here)
    files: dict[str, Path]  # tensor name -> safetensors file

    def tensors(self, names) -> Iterator[tuple[str, "object"]]:
        """Yield (name, torch tensor) one at a time, in the order asked."""
        from safetensors import safe_open

        by_file: dict[Path, object] = {}
        try:
            for name in names:
                f = self.files[name]
                if f not in by_file:
                    by_file[f] = safe_open(str(f), framework="pt").__enter__()
                yield name, by_file[f].get_tensor(name)
        finally:
            for h in by_file.values():
                h.__exit__(None, None, None)

    def shape(self, name: str) -> list[int]:
        from safetensors import safe_open

        with safe_open(str(self.files[name]), framework="pt") as f:
            return list(f.get_slice(name).get_shape())


def read_checkpoint(path: Path) -> Checkpoint:
    from safetensors import safe_open

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ExportError(f"{path}: not a Hugging Face model directory (no config.json)")
    try:
        full = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except ValueError as e:
        raise ExportError(f"{path}/config.json: invalid JSON ({e})") from None
    text = _Config(full.get("text_config") or full)
    full = _Config(full)
    model_type = text.get("model_type", "")
    arch = {"gemma3_text": "gemma3", "gemma3": "gemma3", "gemma4_text": "gemma4", "gemma4": "gemma4"}.get(model_type)
    if arch is None:
        raise ExportError(f"{path}/config.json: model_type {model_type!r} cannot be exported "
                          "(sealion exports Gemma 3 and Gemma 4 text models)")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = {name: path / f for name, f in weight_map.items()}
    else:
        shards = sorted(path.glob("*.safetensors"))
        if not shards:
            raise ExportError(f"{path}: no safetensors weights")
        files = {}
        for shard in shards:
            with safe_open(str(shard), framework="pt") as f:
                files.update({k: shard for k in f.keys()})
    return Checkpoint(path=path, arch=arch, text=text, full=full, files=files)


# ---- metadata -------------------------------------------------------------------------------------------------


class _Config(dict):
    """config.json as a dict with attribute access; a missing field reads as None."""

    def __getattr__(self, name):
        return self.get(name)


def _get(cfg, name, default=None):
    v = cfg.get(name)
    return default if v is None else v


def _global_head_dim(t) -> int:
    """Full-attention head size: `global_head_dim`, else a full layer's `per_layer_config` entry, else head_dim."""
    if t.get("global_head_dim"):
        return int(t["global_head_dim"])
    per_layer = t.get("per_layer_config") or {}
    for i, lt in enumerate(t.get("layer_types") or []):
        if lt == "full_attention" and str(i) in per_layer and per_layer[str(i)].get("head_dim"):
            return int(per_layer[str(i)]["head_dim"])
    return int(t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"])


def _rope(cfg, layer_type: str) -> dict:
    params = _get(cfg, "rope_parameters", {}) or {}
    return params.get(layer_type, params) if isinstance(params, dict) else {}


def gemma3_layer_problem(layer_types: list[str]) -> str | None:
    """llama.cpp's gemma3 architecture has no per-layer attention list: it assumes five sliding layers, then one
    full, repeated. A Gemma 3 whose layers follow another order (e.g. a student cut from other layers) cannot run."""
    want = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(len(layer_types))]
    if layer_types == want:
        return None
    return "llama.cpp's gemma3 expects five sliding layers then one full layer, repeated"


def _check_supported(ck: Checkpoint) -> None:
    t = ck.text
    if _get(t, "enable_moe_block", False) or _get(t, "num_experts", 0):
        raise ExportError(f"{ck.path}/config.json: field enable_moe_block/num_experts: mixture-of-experts Gemma 4 "
                          "is not exported by sealion")
    if _get(t, "attention_k_eq_v", False):
        raise ExportError(f"{ck.path}/config.json: field attention_k_eq_v=true is not exported by sealion")
    if ck.arch == "gemma3":
        problem = gemma3_layer_problem(list(_get(t, "layer_types", [])))
        if problem:
            raise ExportError(f"{ck.path}/config.json: field layer_types: {problem}")
        full = _rope(t, "full_attention")
        if full.get("rope_type", "default") not in ("default", "linear"):
            raise ExportError(f"{ck.path}/config.json: field rope_parameters.full_attention.rope_type="
                              f"{full.get('rope_type')!r} has no GGUF equivalent")


def _write_arch_metadata(w, ck: Checkpoint) -> None:
    import gguf

    t = ck.text
    n_layers = int(t.num_hidden_layers)
    w.add_context_length(int(_get(t, "max_position_embeddings", 131072)))
    w.add_embedding_length(int(t.hidden_size))
    w.add_block_count(n_layers)
    w.add_feed_forward_length(int(t.intermediate_size))
    w.add_head_count(int(t.num_attention_heads))
    w.add_head_count_kv(int(_get(t, "num_key_value_heads", t.num_attention_heads)))
    w.add_layer_norm_rms_eps(float(_get(t, "rms_norm_eps", 1e-6)))
    full, sliding = _rope(t, "full_attention"), _rope(t, "sliding_attention")
    w.add_rope_freq_base(float(full.get("rope_theta", 1_000_000.0)))
    w.add_rope_freq_base_swa(float(sliding.get("rope_theta", 10_000.0)))
    if (cap := _get(t, "final_logit_softcapping")):
        w.add_final_logit_softcapping(float(cap))
    w.add_sliding_window(int(t.sliding_window))
    head_dim = int(_get(t, "head_dim", t.hidden_size // t.num_attention_heads))
    if ck.arch == "gemma3":
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        if full.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(full["factor"]))
        return
    # Gemma 4
    shared = int(_get(t, "num_kv_shared_layers", 0))
    w.add_shared_kv_layers(shared)
    w.add_embedding_length_per_layer_input(int(_get(t, "hidden_size_per_layer_input", 0) or 0))
    swa = [lt == "sliding_attention" for lt in t.layer_types]
    w.add_sliding_window_pattern(swa)
    head_full = _global_head_dim(t)
    w.add_key_length(head_full)
    w.add_value_length(head_full)
    w.add_key_length_swa(head_dim)
    w.add_value_length_swa(head_dim)
    if _get(t, "use_double_wide_mlp", False):
        n_ff = int(t.intermediate_size)
        first_shared = n_layers - shared
        w.add_feed_forward_length([n_ff if i < first_shared else 2 * n_ff for i in range(n_layers)])
    kv_full = _get(t, "num_global_key_value_heads")
    if kv_full is not None:
        kv_swa = int(_get(t, "num_key_value_heads", t.num_attention_heads))
        w.add_head_count_kv([kv_swa if s else int(kv_full) for s in swa])
    w.add_rope_dimension_count(head_full)
    w.add_rope_dimension_count_swa(int(head_dim * float(sliding.get("partial_rotary_factor", 1.0))))


def _rope_freqs(ck: Checkpoint):
    """Gemma 4 full layers: rotate the first partial_rotary_factor of the head, leave the rest (factor 1e30)."""
    import numpy as np

    t = ck.text
    full = _rope(t, "full_attention")
    head_full = _global_head_dim(t)
    if full.get("rope_type", "default") not in ("proportional", "default"):
        raise ExportError(f"{ck.path}/config.json: field rope_parameters.full_attention.rope_type="
                          f"{full.get('rope_type')!r} has no GGUF equivalent")
    n_rot = int(head_full * float(full.get("partial_rotary_factor", 1.0)) / 2)
    return np.array([1.0] * n_rot + [1e30] * (head_full // 2 - n_rot), dtype=np.float32)


# generation_config.json field -> GGUF key writer (general.sampling.*, which llama.cpp's samplers read as defaults)
SAMPLING_FIELDS = {"temperature": ("add_sampling_temp", float), "top_k": ("add_sampling_top_k", int),
                   "top_p": ("add_sampling_top_p", float), "min_p": ("add_sampling_min_p", float),
                   "repetition_penalty": ("add_sampling_penalty_repeat", float)}


def _write_sampling_defaults(w, ck: Checkpoint) -> None:
    """The checkpoint's sampling defaults, when generation_config.json samples (do_sample=true)."""
    path = ck.path / "generation_config.json"
    if not path.is_file():
        return
    try:
        gen = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ExportError(f"{path}: invalid JSON ({e})") from None
    if not gen.get("do_sample"):
        return  # greedy by default: llama.cpp's own defaults are as good a guess as any
    for key, (method, cast) in SAMPLING_FIELDS.items():
        if gen.get(key) is not None:
            try:
                getattr(w, method)(cast(gen[key]))
            except (TypeError, ValueError):
                raise ExportError(f"{path}: field {key}={gen[key]!r} is not a number") from None


# ---- tokenizer ------------------------------------------------------------------------------------------------


def _tokenizer_aliases(tokens: list[str]) -> dict[str, str]:
    """Gemma 4 control-token name -> this vocabulary's name at the same id (the demo's Gemma 3 names)."""
    return {g4: tokens[i] for i, g4 in GEMMA4_SPECIAL_TOKENS.items() if i < len(tokens) and tokens[i] != g4}


def _write_tokenizer(w, ck: Checkpoint, n_rows: int) -> None:
    import gguf

    tj_path = ck.path / "tokenizer.json"
    if not tj_path.is_file():
        raise ExportError(f"{ck.path}: no tokenizer.json (sealion writes the tokenizer from it)")
    tj = json.loads(tj_path.read_text(encoding="utf-8"))
    model = tj.get("model", {})
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise ExportError(f"{tj_path}: field model.type={model.get('type')!r}: llama.cpp's Gemma tokenizer needs "
                          "a byte-fallback BPE tokenizer.json")
    size = max([*model["vocab"].values(), *(a["id"] for a in tj.get("added_tokens", []))]) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for tok, i in model["vocab"].items():
        tokens[i] = tok
        types[i] = gguf.TokenType.BYTE if len(tok) == 6 and tok.startswith("<0x") else gguf.TokenType.NORMAL
    for a in tj.get("added_tokens", []):
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
    aliases = _tokenizer_aliases(tokens)
    for i, g4 in GEMMA4_SPECIAL_TOKENS.items():
        if g4 in _VISIBLE and i < size:
            types[i] = gguf.TokenType.USER_DEFINED
    if size != n_rows:
        raise ExportError(f"{tj_path}: {size} tokens but the embedding table has {n_rows} rows")
    w.add_tokenizer_model("gemma4")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * size)
    w.add_token_types(types)
    special = gguf.SpecialVocab(ck.path, load_merges=True, n_vocab=size)
    special.chat_template = None  # written below, in this vocabulary's token names
    special.add_special_token["bos"] = True
    special.add_to_gguf(w, quiet=True)
    w.add_add_space_prefix(False)
    w.add_chat_template(_chat_template(ck.path, aliases))


def _chat_template(path: Path, aliases: dict[str, str]) -> str:
    """The checkpoint's template, else sealion's Gemma 4 template, in this vocabulary's control-token names."""
    from ..chat.render import gemma4_template

    template = None
    if (path / "chat_template.jinja").is_file():
        template = (path / "chat_template.jinja").read_text(encoding="utf-8")
    else:
        cfg = path / "tokenizer_config.json"
        if cfg.is_file():
            template = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
    if not isinstance(template, str) or not template:
        template = gemma4_template()
    for g4, own in aliases.items():
        template = template.replace(g4, own)
    return template


# ---- tensors --------------------------------------------------------------------------------------------------


def _plan(ck: Checkpoint) -> tuple[list[tuple[str, str]], list[str]]:
    """[(hf name, gguf name)] for the text model in checkpoint order, and the tower tensors left out."""
    names = TextNameMap(ck.arch, int(ck.text.num_hidden_layers))
    tied = bool(_get(ck.full, "tie_word_embeddings", _get(ck.text, "tie_word_embeddings", True)))
    plan, towers = [], []
    for hf in sorted(ck.files):
        if is_tower_tensor(hf):
            towers.append(hf)
            continue
        if text_name(hf) == "lm_head.weight" and tied:
            continue  # llama.cpp reuses token_embd
        plan.append((hf, names.gguf_name(hf)))
    return plan, towers


def _transform(ck: Checkpoint, hf: str, tensor):
    """The tensor as llama.cpp wants it (float32 numpy)."""
    import numpy as np

    flat = text_name(hf)
    x = tensor.float()
    if ck.arch == "gemma3" and flat.endswith("norm.weight"):
        x = x + 1.0
        if flat.endswith("self_attn.q_norm.weight"):
            head_dim = int(_get(ck.text, "head_dim", 256))
            scalar = float(_get(ck.text, "query_pre_attn_scalar", head_dim))
            x = x * (head_dim / scalar) ** 0.5
    arr = x.numpy()
    if arr.ndim == 0:
        arr = arr.reshape(1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _encode(arr, ftype: str, gguf_name: str):
    """(data, raw ggml type or None) for one tensor in a float file type; 1-D tensors stay f32."""
    import gguf
    import numpy as np

    if arr.ndim <= 1 or ftype == "f32" or gguf_name == "rope_freqs.weight":
        return arr, None
    if ftype == "f16":
        return arr.astype(np.float16), None
    return gguf.quants.quantize(arr, gguf.GGMLQuantizationType.BF16), gguf.GGMLQuantizationType.BF16


def _write_float_gguf(ck: Checkpoint, out: Path, ftype: str, *, progress=None) -> tuple[int, list[str]]:
    import gguf

    _check_supported(ck)
    plan, towers = _plan(ck)
    embed = next((hf for hf, g in plan if g == "token_embd.weight"), None)
    if embed is None:
        raise ExportError(f"{ck.path}: no token embedding tensor (model.embed_tokens.weight)")
    w = gguf.GGUFWriter(str(out), arch=ck.arch)
    w.add_name(ck.path.name)
    w.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                     "bf16": gguf.LlamaFileType.MOSTLY_BF16}[ftype])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _write_arch_metadata(w, ck)
    _write_sampling_defaults(w, ck)
    _write_tokenizer(w, ck, ck.shape(embed)[0])

    extra = [("rope_freqs.weight", _rope_freqs(ck))] if ck.arch == "gemma4" else []
    # tensor infos first (shapes and byte sizes), then the data in the same order, one tensor in memory at a time
    infos = []
    for hf, name in plan:
        shape = ck.shape(hf) or [1]
        n = 1
        for d in shape:
            n *= d
        if len(shape) <= 1:
            raw, nbytes, dt = None, 4 * n, "f32"
        elif ftype == "f32":
            raw, nbytes, dt = None, 4 * n, "f32"
        elif ftype == "f16":
            raw, nbytes, dt = None, 2 * n, "f16"
        else:
            raw, nbytes, dt = gguf.GGMLQuantizationType.BF16, 2 * n, "bf16"
        infos.append((hf, name, shape, raw, nbytes, dt))
    import numpy as np

    for name, arr in extra:
        w.add_tensor_info(name, arr.shape, arr.dtype, arr.nbytes)
    for hf, name, shape, raw, nbytes, dt in infos:
        np_dtype = {"f32": np.float32, "f16": np.float16, "bf16": np.uint8}[dt]
        info_shape = list(shape) if raw is None else [*shape[:-1], shape[-1] * 2]
        w.add_tensor_info(name, info_shape, np.dtype(np_dtype), nbytes, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _, arr in extra:
        w.write_tensor_data(arr)
    for i, (hf, tensor) in enumerate(ck.tensors([hf for hf, *_ in infos])):
        name = infos[i][1]
        data, _ = _encode(_transform(ck, hf, tensor), ftype, name)
        w.write_tensor_data(data)
        if progress:
            progress(i + 1, len(infos))
    w.close()
    return len(infos) + len(extra), towers


# ---- quantisation through llama.cpp --------------------------------------------------------------------------


def _llama_quantize(src: Path, dst: Path, quant: str, *, ple_quant: str | None, threads: int) -> None:
    import ctypes

    try:
        import llama_cpp
    except ImportError:
        raise ExportError(f"--quant {quant} needs llama-cpp-python (pip install 'llama-cpp-python>=0.3.36')") from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = LLAMA_FTYPES[quant]
    keep = []
    if ple_quant is not None:
        arr = (llama_cpp.llama_model_tensor_override * 2)()
        pattern = ctypes.c_char_p(PLE_TENSOR.encode())
        keep.append(pattern)
        arr[0].pattern = pattern.value
        arr[0].type = GGML_TYPES[ple_quant]
        arr[1].pattern = None
        params.tt_overrides = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
        keep.append(arr)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise ExportError(f"llama.cpp's quantiser failed for --quant {quant} (code {rc}); see its log above")


def _default_ple_quant(quant: str) -> str | None:
    """q8_0 for the per-layer table when the file's own type has fewer than 8 bits (None: leave it alone)."""
    bits = {"q8_0": 8.5, "q6_k": 6.6, "q5_0": 5.5, "q5_1": 6, "q5_k_s": 5.5, "q5_k_m": 5.7, "q4_0": 4.5,
            "q4_1": 5, "q4_k_s": 4.5, "q4_k_m": 4.8, "q3_k_s": 3.4, "q3_k_m": 3.9, "q3_k_l": 4.3, "q2_k": 2.6}
    return "q8_0" if bits.get(quant, 16) < 8 else None


def export_gguf(model: str | os.PathLike, out: str | os.PathLike, *, quant: str = "f16",
                ple_quant: str | None = "auto", mmproj: bool = False, threads: int | None = None,
                overwrite: bool = False, progress=None) -> ExportResult:
    """Export `model` (a reference `sealion.models.resolve` understands) to the GGUF file `out`.

    `ple_quant`: the per-layer embedding table's type for quantised exports ("auto" = q8_0 when the quant has
    fewer than 8 bits; None = the quantiser's choice). `mmproj=True` also writes the vision/audio towers as
    `<out stem>.mmproj.gguf` (refused for now, naming the first tower tensor).
    """
    from ..io import atomic_path
    from ..models import resolve

    quant = quant.lower()
    if quant not in QUANTS:
        raise ExportError(f"--quant {quant}: unknown quant (choose from {', '.join(QUANTS)})")
    if ple_quant == "auto":
        ple_quant = _default_ple_quant(quant)
    elif ple_quant is not None:
        ple_quant = ple_quant.lower()
        if ple_quant not in GGML_TYPES:
            raise ExportError(f"--ple-quant {ple_quant}: unknown type (choose from {', '.join(GGML_TYPES)})")
        if quant in FLOAT_TYPES:
            raise ExportError(f"--ple-quant applies to quantised exports; --quant {quant} writes every tensor "
                              f"as {quant}")
    out = Path(out)
    if out.suffix != ".gguf":
        raise ExportError(f"{out}: the output file must end in .gguf")
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: already exists (pass --overwrite to replace it)")
    ck = read_checkpoint(resolve(model))
    towers = [n for n in ck.files if is_tower_tensor(n)]
    if mmproj and towers:
        raise ExportError(f"tensor {sorted(towers)[0]!r}: sealion cannot map the vision/audio towers to an mmproj "
                          "GGUF yet; export the text model without --mmproj")
    if ck.arch != "gemma4" or not any(block_id(n) is None and "per_layer" in n for n in ck.files):
        ple_quant = None if quant in FLOAT_TYPES else ple_quant
    threads = threads or max(1, os.cpu_count() or 1)
    with atomic_path(out) as tmp:
        if quant in FLOAT_TYPES:
            n, skipped = _write_float_gguf(ck, tmp, quant, progress=progress)
        else:
            base = "bf16" if _source_is_bf16(ck) else "f32"
            base_file = tmp.with_name(tmp.name + f".{base}-base")
            try:
                n, skipped = _write_float_gguf(ck, base_file, base, progress=progress)
                _llama_quantize(base_file, tmp, quant, ple_quant=ple_quant, threads=threads)
            finally:
                base_file.unlink(missing_ok=True)  # never keep the intermediate file
        _make_readable(tmp)
    return ExportResult(path=out, quant=quant, arch=ck.arch, n_tensors=n, skipped=skipped, ple_quant=ple_quant)


def _make_readable(path: Path) -> None:
    """The temporary file is private (0600); an exported model is an ordinary file (0644 under umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _source_is_bf16(ck: Checkpoint) -> bool:
    return str(_get(ck.text, "dtype", _get(ck.full, "torch_dtype", ""))).endswith("bfloat16")
