"""Engine benchmark on the demo model, ours and plain `model.generate` side by side in one run.

Measures: prefill tokens/s (512-token prompt, 1 new token), single-stream decode tokens/s (32-token prompt,
64 new tokens, decode rate = 63 / (t(64) - t(1))), batched throughput at batch 1, 4 and 16 (distinct 32-token
prompts, 64 new tokens each), and the memory-bandwidth ceiling for decode (weight bytes read per token vs a measured
copy bandwidth). Prints each figure and the ratio ours / generate.

    .venv/bin/python benchmarks/bench_engine.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from sealion.engine import CompletionRequest, SamplingParams
from sealion.engine.local import LocalEngine
from sealion.models import load

TEXT = (
    "Jakarta adalah ibu kota dan kota terbesar di Indonesia. Kota ini terletak di pesisir barat laut Pulau Jawa "
    "dan merupakan pusat pemerintahan, ekonomi, dan kebudayaan negara. Penduduknya berasal dari berbagai suku "
    "bangsa, dan bahasa Indonesia digunakan sebagai bahasa sehari-hari di seluruh kota. "
)


def token_prompt(tokenizer, n: int, offset: int = 0) -> list[int]:
    ids = tokenizer(TEXT * 40, add_special_tokens=False).input_ids
    return [tokenizer.bos_token_id] + ids[offset : offset + n - 1]


def best_median(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def bandwidth_gbs(threads: int, repeats: int = 5) -> float:
    src = np.ones(256 * 1024 * 1024, dtype=np.float32)  # 1 GiB
    dst = np.empty_like(src)
    torch.set_num_threads(threads)
    a, b = torch.from_numpy(src), torch.from_numpy(dst)
    best = min(best_median(lambda: b.copy_(a), repeats))
    return 2 * src.nbytes / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="demo")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    lm = load(args.model)
    engine = LocalEngine(lm, max_batch_size=16)
    tok, model = lm.tokenizer, lm.model
    results: dict[str, float] = {}

    def ours(prompts: list[list[int]], new: int):
        params = SamplingParams(max_new_tokens=new, temperature=0)
        engine.eos_ids = set()  # fixed lengths, like min_new_tokens for generate
        return engine.complete([CompletionRequest("", params, prompt_ids=p) for p in prompts])

    def plain(prompts: list[list[int]], new: int):
        ids = torch.tensor(prompts)
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                              min_new_tokens=new, do_sample=False)

    eos = set(engine.eos_ids)
    for name, fn in (("ours", ours), ("generate", plain)):
        p512 = [token_prompt(tok, 512)]
        fn(p512, 1)  # warm-up
        best, med = best_median(lambda: fn(p512, 1), args.repeats)
        results[f"{name}_prefill_tok_s"] = 512 / best
        p32 = [token_prompt(tok, 32)]
        t1 = best_median(lambda: fn(p32, 1), args.repeats)[0]
        t64 = best_median(lambda: fn(p32, 64), args.repeats)[0]
        results[f"{name}_decode_tok_s"] = 63 / (t64 - t1)
        for bs in (1, 4, 16):
            prompts = [token_prompt(tok, 32, offset=7 * i) for i in range(bs)]
            best, _ = best_median(lambda: fn(prompts, 64), max(1, args.repeats - 1))
            results[f"{name}_batch{bs}_tok_s"] = bs * 64 / best
        engine.eos_ids = eos

    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    threads = torch.get_num_threads()
    bw = bandwidth_gbs(threads)
    torch.set_num_threads(threads)
    results["weights_GB"] = weight_bytes / 1e9
    results["copy_bandwidth_GB_s"] = bw
    results["decode_ceiling_tok_s"] = bw * 1e9 / weight_bytes

    for k, v in results.items():
        print(f"{k:28s} {v:10.2f}")
    print("--- ratios (ours / generate)")
    for k in ("prefill_tok_s", "decode_tok_s", "batch1_tok_s", "batch4_tok_s", "batch16_tok_s"):
        print(f"{k:28s} {results['ours_' + k] / results['generate_' + k]:10.2f}x")
    print(f"{'batch16 / batch1 (ours)':28s} {results['ours_batch16_tok_s'] / results['ours_batch1_tok_s']:10.2f}x")
    print(f"{'decode / ceiling (ours)':28s} {results['ours_decode_tok_s'] / results['decode_ceiling_tok_s']:10.2%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
