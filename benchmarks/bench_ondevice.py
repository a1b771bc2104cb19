"""On-device benchmark on the demo model, in one run: sealion's in-process engine at fp32 / bf16 / int8 / int4 beside
llama.cpp (llama-cpp-python) on sealion's own F32 / Q8_0 / Q4_K_M exports, and sealion's llama.cpp backend beside
raw llama-cpp-python on the same Q4_K_M file.

Same prompt (a 21-token Indonesian sentence) and token count for every runtime, greedy. Decode tok/s =
(n - 1) / (t(n) - t(1)) where t(k) is the time to k new tokens; prefill tok/s = 512 / t(1) with a 512-token
prompt. Medians of `--repeats` runs; ratios ours / llama.cpp. llama.cpp's weight repacking is off (llama-cpp-python
0.3.36 crashes decoding quantised files with it on), as in sealion's backend.

    nice .venv/bin/python benchmarks/bench_ondevice.py [--repeats 3] [--new 64] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

PROMPT = "Jakarta adalah ibu kota Indonesia. Kota ini terletak di pesisir barat laut Pulau Jawa dan"
LONG = ("Jakarta adalah ibu kota dan kota terbesar di Indonesia. Kota ini terletak di pesisir barat laut Pulau "
        "Jawa dan merupakan pusat pemerintahan, ekonomi, dan kebudayaan negara. ") * 40


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---- sealion in-process ---------------------------------------------------------------------------------------


def bench_sealion(ref, *, dtype=None, quantize=None, prompt_ids, long_ids, new, repeats):
    from sealion.engine import CompletionRequest, SamplingParams
    from sealion.engine.local import LocalEngine

    engine = LocalEngine(ref, dtype=dtype, quantize=quantize, text_only=True, prefix_cache_mb=0)

    def run(ids, n):
        t = time.perf_counter()
        c = engine.complete([CompletionRequest("", SamplingParams(max_new_tokens=n, temperature=0.0),
                                               prompt_ids=list(ids))])[0]
        return time.perf_counter() - t, c.completion_tokens

    try:
        run(prompt_ids, 4)  # warm-up: kernels chosen, buffers allocated
        decode, prefill = [], []
        for _ in range(repeats):
            t1, _ = run(prompt_ids, 1)
            tn, n = run(prompt_ids, new)
            decode.append((n - 1) / max(tn - t1, 1e-9))
            tp, _ = run(long_ids, 1)
            prefill.append(len(long_ids) / tp)
    finally:
        engine.close()
    return {"decode_tok_s": _median(decode), "prefill_tok_s": _median(prefill), "runs": decode}


# ---- llama.cpp ------------------------------------------------------------------------------------------------


def _raw_llama(path, threads, n_ctx):
    """llama-cpp-python's `Llama`, weight repacking off (it has no flag for it: its default params are patched)."""
    import llama_cpp

    defaults = llama_cpp.llama_cpp.llama_model_default_params

    def no_repack():
        p = defaults()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_cpp.llama_model_default_params = no_repack
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                               n_batch=512, verbose=False)
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = defaults


def bench_raw_llama(path, *, prompt_ids, long_ids, new, repeats, threads):
    llm = _raw_llama(path, threads, n_ctx=1024)

    def run(ids, n):
        t = time.perf_counter()
        k = 0
        for _ in llm.generate(list(ids), top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            k += 1
            if k == n:
                break
        return time.perf_counter() - t, k

    run(prompt_ids, 4)
    decode, prefill = [], []
    for _ in range(repeats):
        llm.reset()
        t1, _ = run(prompt_ids, 1)
        llm.reset()
        tn, n = run(prompt_ids, new)
        decode.append((n - 1) / max(tn - t1, 1e-9))
        llm.reset()
        tp, _ = run(long_ids, 1)
        prefill.append(len(long_ids) / tp)
    llm.close()
    return {"decode_tok_s": _median(decode), "prefill_tok_s": _median(prefill), "runs": decode}


def bench_backend(path, *, prompt_ids, new, repeats, threads):
    """sealion's llama.cpp backend (the Engine interface) on the same file and prompt."""
    from sealion.engine import CompletionRequest, SamplingParams, open_engine

    engine = open_engine(str(path), backend="llama.cpp", n_threads=threads, n_ctx=1024)

    def run(n):
        t = time.perf_counter()
        c = engine.complete([CompletionRequest("", SamplingParams(max_new_tokens=n, temperature=0.0),
                                               prompt_ids=list(prompt_ids))])[0]
        return time.perf_counter() - t, c.completion_tokens

    try:
        run(4)
        decode = []
        for _ in range(repeats):
            t1, _ = run(1)
            tn, n = run(new)
            decode.append((n - 1) / max(tn - t1, 1e-9))
    finally:
        engine.close()
    return {"decode_tok_s": _median(decode), "runs": decode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", default=None)
    ap.add_argument("--work", default=None, help="where the GGUF exports go (default: a temporary directory)")
    args = ap.parse_args()

    import torch

    from sealion.export import export_gguf
    from sealion.models import demo_path, load_tokenizer

    torch.set_num_threads(args.threads)
    demo = demo_path()
    tok = load_tokenizer(demo)
    prompt_ids = tok(PROMPT).input_ids
    long_ids = tok(LONG).input_ids[:512]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-ondevice-"))
    out: dict = {"prompt_tokens": len(prompt_ids), "new_tokens": args.new, "prefill_tokens": len(long_ids),
                 "threads": args.threads, "repeats": args.repeats}

    t = time.perf_counter()
    ggufs = {}
    for q in ("f32", "q8_0", "q4_k_m"):
        path = work / f"demo.{q}.gguf"
        if not path.exists():
            export_gguf(demo, path, quant=q, threads=args.threads)
        ggufs[q] = path
    out["export_s"] = time.perf_counter() - t

    common = dict(prompt_ids=prompt_ids, long_ids=long_ids, new=args.new, repeats=args.repeats)
    ours = {
        "fp32": bench_sealion(demo, **common),
        "bf16": bench_sealion(demo, dtype="bfloat16", **common),
        "int8": bench_sealion(demo, quantize="int8", **common),
        "int4": bench_sealion(demo, quantize="int4", **common),
    }
    for k, v in ours.items():
        print(f"sealion {k:5s} decode {v['decode_tok_s']:7.1f} tok/s   prefill {v['prefill_tok_s']:7.1f} tok/s",
              flush=True)
    llama = {}
    for q, path in ggufs.items():
        llama[q] = bench_raw_llama(path, threads=args.threads, **common)
        print(f"llama.cpp {q:6s} decode {llama[q]['decode_tok_s']:7.1f} tok/s   prefill "
              f"{llama[q]['prefill_tok_s']:7.1f} tok/s", flush=True)
    backend = bench_backend(ggufs["q4_k_m"], prompt_ids=prompt_ids, new=args.new, repeats=args.repeats,
                            threads=args.threads)
    pairs = {"fp32/F32": ("fp32", "f32"), "int8/Q8_0": ("int8", "q8_0"), "int4/Q4_K_M": ("int4", "q4_k_m")}
    ratios = {name: {"decode": ours[a]["decode_tok_s"] / llama[b]["decode_tok_s"],
                     "prefill": ours[a]["prefill_tok_s"] / llama[b]["prefill_tok_s"]} for name, (a, b) in pairs.items()}
    ratios["bf16/fp32 (ours)"] = {"decode": ours["bf16"]["decode_tok_s"] / ours["fp32"]["decode_tok_s"]}
    ratios["backend/raw Q4_K_M"] = {"decode": backend["decode_tok_s"] / llama["q4_k_m"]["decode_tok_s"]}
    out.update(sealion=ours, llama_cpp=llama, sealion_llamacpp_backend=backend, ratios=ratios)
    print(f"sealion llama.cpp backend (Q4_K_M) decode {backend['decode_tok_s']:7.1f} tok/s")
    for name, r in ratios.items():
        print(f"ratio {name:20s} " + "  ".join(f"{k} {v:.2f}x" for k, v in r.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
