"""Quantised GGUF exports (llama.cpp's own quantiser) load in llama.cpp with weight repacking off and generate;
the file carries the checkpoint's sampling defaults and is an ordinary readable file; the fidelity report's KL,
top-1 agreement and perplexity ratio match a dense computation done here with llama-cpp-python's high-level API."""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sealion.export import export_gguf
from sealion.export.names import ExportError

llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

PROMPT_IDS_TEXT = "Ibu kota Indonesia adalah"
NEW = 8


# GGUF value types (the spec's numbering) -> struct format; 8 is a string, 9 an array
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


@functools.lru_cache(maxsize=None)
def _header(path) -> tuple[dict, dict[str, str]]:
    """(scalar and string metadata, tensor name -> ggml type name), read from the file by the GGUF spec. Not
    sealion's writer, and not gguf.GGUFReader either: that one builds a view per array element, ~20 s for the
    262k-token vocabulary of every tiny model, which made this file the slowest in the suite."""
    data = Path(path).read_bytes()
    assert data[:4] == b"GGUF", path
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    assert version == 3, version
    off = 24

    def string():
        nonlocal off
        (n,) = struct.unpack_from("<Q", data, off)
        off += 8 + n
        return data[off - n:off].decode("utf-8", errors="replace")

    def value(kind):
        nonlocal off
        if kind == 8:
            return string()
        if kind == 9:
            (item, count) = struct.unpack_from("<IQ", data, off)
            off += 12
            if item == 8:
                for _ in range(count):
                    (n,) = struct.unpack_from("<Q", data, off)
                    off += 8 + n
            else:
                off += count * struct.calcsize("<" + _SCALAR[item])
            return None  # arrays are skipped
        fmt = "<" + _SCALAR[kind]
        (v,) = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return v

    fields = {}
    for _ in range(n_kv):
        key = string()
        (kind,) = struct.unpack_from("<I", data, off)
        off += 4
        fields[key] = value(kind)
    types = {}
    for _ in range(n_tensors):
        name = string()
        (n_dims,) = struct.unpack_from("<I", data, off)
        off += 4 + 8 * n_dims
        (ggml_type,) = struct.unpack_from("<I", data, off)
        off += 4 + 8  # the type, then the data offset
        types[name] = gguf.GGMLQuantizationType(ggml_type).name
    return fields, types


def _types(path) -> dict[str, str]:
    """GGUF tensor name -> ggml type name."""
    return _header(str(path))[1]


def _field(path, key):
    return _header(str(path))[0].get(key)


def _llama(path, **kw):
    """llama-cpp-python's high-level `Llama` with weight repacking off (0.3.36 crashes decoding quantised files
    with it on); `Llama` has no flag for it, so the default model params it starts from are patched."""
    defaults = llama_cpp.llama_model_default_params

    def no_repack():
        p = defaults()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_cpp.llama_model_default_params = no_repack
    llama_cpp.llama_model_default_params = no_repack
    try:
        return llama_cpp.Llama(model_path=str(path), n_threads=2, verbose=False, **kw)
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = defaults
        llama_cpp.llama_model_default_params = defaults


def _generate(path, text: str) -> list[int]:
    """Greedy tokens from llama.cpp itself."""
    llm = _llama(path, n_ctx=128)
    ids = llm.tokenize(text.encode(), add_bos=True, special=True)
    out = []
    for t in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(t)
        if len(out) == NEW:
            break
    llm.close()
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_gemma3_dir, tiny_text_dir):
    out = tmp_path_factory.mktemp("q")
    files = {}
    for name, src in (("gemma3", tiny_gemma3_dir), ("gemma4", tiny_text_dir)):
        for quant in ("f32", "q8_0", "q4_k_m") if name == "gemma4" else ("q8_0", "q4_k_m"):
            files[name, quant] = export_gguf(src, out / f"{name}.{quant}.gguf", quant=quant, threads=2)
    return files


@pytest.mark.parametrize("which", ["gemma3", "gemma4"])
@pytest.mark.parametrize("quant", ["q8_0", "q4_k_m"])
def test_quantised_export_loads_and_generates(exports, which, quant):
    result = exports[which, quant]
    types = _types(result.path)
    # the attention and MLP matrices (rows of 64, a whole number of 32-blocks); llama.cpp keeps tensors whose
    # rows are not (the tiny per-layer tables, 40 wide) at f16
    weights = {n: t for n, t in types.items() if n.startswith("blk.") and (".attn_" in n or ".ffn_" in n)
               and "norm" not in n}
    assert len(weights) >= 5 * 4 and all(t not in ("F32", "F16", "BF16") for t in weights.values()), weights
    if quant == "q8_0":
        assert set(weights.values()) == {"Q8_0"}
    toks = _generate(result.path, PROMPT_IDS_TEXT)
    assert len(toks) == NEW and all(0 <= t < 262144 for t in toks)


def test_gemma4_per_layer_table_kept_at_8_bits(tmp_path):
    """q4_k_m keeps the per-layer embedding table at q8_0 by default; --ple-quant overrides it. (A tiny Gemma 4
    whose per-layer table rows are 5 x 32 wide, so llama.cpp can block-quantise them at all.)"""
    from sealion.models.tiny import make_tiny_gemma4

    src = make_tiny_gemma4(tmp_path / "ple", hidden_size_per_layer_input=32)
    default = export_gguf(src, tmp_path / "default.gguf", quant="q4_k_m", threads=2)
    assert default.ple_quant == "q8_0"
    assert _types(default.path)["per_layer_token_embd.weight"] == "Q8_0"
    low = export_gguf(src, tmp_path / "low.gguf", quant="q4_k_m", ple_quant="q4_0", threads=2)
    assert _types(low.path)["per_layer_token_embd.weight"] == "Q4_0"
    assert _generate(low.path, PROMPT_IDS_TEXT)


def test_sampling_defaults_and_file_mode(exports, tiny_text_dir, tiny_gemma3_dir):
    gen = json.loads((tiny_text_dir / "generation_config.json").read_text())
    for quant in ("f32", "q4_k_m"):
        path = exports["gemma4", quant].path
        assert _field(path, "general.sampling.top_k") == gen["top_k"]
        assert _field(path, "general.sampling.top_p") == pytest.approx(gen["top_p"])
        assert _field(path, "general.sampling.temp") == pytest.approx(gen["temperature"])
    # the tiny Gemma 3 has no generation_config.json: no sampling keys
    assert _field(exports["gemma3", "q8_0"].path, "general.sampling.temp") is None
    umask = os.umask(0)
    os.umask(umask)
    for result in exports.values():
        assert os.stat(result.path).st_mode & 0o777 == 0o666 & ~umask


def _dense_report(src, path, texts):
    """KL(p||q), top-1 agreement, ppl ratio per text with transformers logits and llama.cpp's logits_all."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    llm = _llama(path, n_ctx=48, logits_all=True, flash_attn=True)  # as sealion's context (llama.cpp's "auto")
    out = {}
    for lang, text in texts.items():
        ids = llm.tokenize(text.encode(), add_bos=True, special=True)[:32]
        llm.reset()
        llm.eval(ids)
        q = np.array(llm.scores[:len(ids)], dtype=np.float64)[:-1]
        with torch.no_grad():
            p = model(torch.tensor([ids])).logits[0, :-1].double().numpy()
        lp = p - np.logaddexp.reduce(p, axis=1, keepdims=True)
        lq = q - np.logaddexp.reduce(q, axis=1, keepdims=True)
        kl = float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))
        top1 = float(np.mean(p.argmax(1) == q.argmax(1)))
        nxt = np.array(ids[1:])
        rows = np.arange(len(nxt))
        ratio = math.exp(float(np.mean(lp[rows, nxt] - lq[rows, nxt])))
        out[lang] = {"kl": kl, "top1": top1, "ppl_ratio": ratio, "tokens": len(ids) - 1}
    llm.close()
    return out


def test_fidelity_report_matches_dense_computation(exports, tiny_text_dir):
    from sealion.export.fidelity import fidelity_report
    from sealion.export.heldout import HELDOUT

    texts = {k: HELDOUT[k] for k in ("th", "my")}
    path = exports["gemma4", "q4_k_m"].path
    report = fidelity_report(tiny_text_dir, path, texts=texts, max_tokens=32, threads=2)
    dense = _dense_report(tiny_text_dir, path, texts)
    assert set(report["languages"]) == set(texts)
    for lang, want in dense.items():
        got = report["languages"][lang]
        assert got["tokens"] == want["tokens"]
        # two llama.cpp contexts (batching, attention kernels) give logits equal to float noise, not bit for bit:
        # on a random tiny model whose distributions are near-uniform that is ~1% of a small KL
        assert got["kl"] == pytest.approx(want["kl"], rel=3e-2)
        assert got["top1"] == pytest.approx(want["top1"], abs=1.01 / want["tokens"])
        assert got["ppl_ratio"] == pytest.approx(want["ppl_ratio"], rel=5e-3)
        assert want["kl"] > 0  # a 4-bit model is not the original
    # the f32 export is (numerically) the original
    f32 = fidelity_report(tiny_text_dir, exports["gemma4", "f32"].path, texts=texts, max_tokens=32, threads=2)
    assert f32["mean"]["kl"] < 1e-4 and f32["mean"]["top1"] == 1.0
    assert f32["mean"]["kl"] < report["mean"]["kl"]


def test_unmappable_tensor_is_named(tiny_gemma3_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    src = tmp_path / "odd"
    shutil.copytree(tiny_gemma3_dir, src)
    weights = load_file(str(src / "model.safetensors"))
    weights["model.layers.0.mystery_gate.weight"] = torch.zeros(4, 4)
    save_file(weights, str(src / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ExportError, match="model.layers.0.mystery_gate.weight"):
        export_gguf(src, tmp_path / "odd.gguf", quant="q8_0")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".odd.gguf*"))


def test_tower_for_mmproj_is_named(tiny_mm_dir, tmp_path):
    with pytest.raises(ExportError, match=r"tensor 'model\.(audio|vision)_tower\."):
        export_gguf(tiny_mm_dir, tmp_path / "mm.gguf", quant="f16", mmproj=True)


@pytest.mark.parametrize("argv, needle", [
    (["--quant", "q3_banana"], "q3_banana"),
    (["--quant", "q4_k_m", "--ple-quant", "q1_x"], "q1_x"),
])
def test_cli_bad_request_is_one_line(tiny_gemma3_dir, tmp_path, argv, needle):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    r = subprocess.run([sys.executable, "-m", "sealion", "export", str(tiny_gemma3_dir), "--out",
                        str(tmp_path / "x.gguf"), *argv], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "x.gguf").exists()


@pytest.mark.demo
@pytest.mark.parametrize("quant", ["q8_0", "q4_k_m"])
def test_demo_quantised_export_generates(demo_dir, tmp_path, quant):
    from sealion.engine.llamacpp import LlamaCppModel

    result = export_gguf(demo_dir, tmp_path / f"demo.{quant}.gguf", quant=quant, threads=2)
    size = result.path.stat().st_size
    # the f32 file is 1.09 GB; measured: q8_0 301 MB, q4_k_m 262 MB (640-wide rows: k-quants fall back to q5_0)
    assert size < (330e6 if quant == "q8_0" else 280e6)
    toks = _generate(result.path, "The capital of France is")
    model = LlamaCppModel(result.path, n_ctx=64, n_threads=2)
    try:
        text = model.detokenize(toks)
    finally:
        model.close()
    # the reference is the source model itself (transformers, fp32, greedy): a base model continues the sentence its
    # own way (" the capital of the country of France."), so the quantised file must start the same way
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_dir)
    ref = AutoModelForCausalLM.from_pretrained(demo_dir, dtype=torch.float32)
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = ref.generate(**enc, max_new_tokens=len(toks), do_sample=False)
    want = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.split()[:3] == want.split()[:3], (text, want)
