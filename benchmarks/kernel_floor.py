"""The kernel floor of one decode step: the time of the demo model's weight matmuls alone at batch 1, per dtype.

Loads the demo model through sealion's loader at fp32, bf16, int8 and int4 (the same modules the engine runs),
and times one pass over every linear layer in model order, each fed one random activation row of its input width
(best of N passes; a pass streams every weight from memory, as a decode step does), plus the LM head as greedy
decoding runs it (the engine's screen where it chooses one, e.g. the int8 screen at batch 1). That is what one
decoded token costs in matrix kernels with every other operation (attention, norms, rotary, sampling, Python) at
zero, so `1 / floor` is an upper bound on the engine's decode tok/s with these kernels. Compare it with llama.cpp's measured whole-step rate (bench_ondevice.py): where the
floor is already slower, no scheduling or graph capture on top of these kernels can reach llama.cpp.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/kernel_floor.py [--repeats 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def best_time(fn, repeats: int) -> float:
    fn()
    fn()  # warm: kernels chosen, weights packed
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def in_width(module: torch.nn.Module) -> int:
    if hasattr(module, "in_features"):  # nn.Linear and sealion's quantised linears
        return int(module.in_features)
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[1])
    raise ValueError(f"cannot tell the input width of {type(module).__name__}")


def floor_ms(model: torch.nn.Module, repeats: int, act_dtype: torch.dtype) -> dict:
    """Best time (ms) of one pass over every linear-like module in model order at batch 1, as a decode step reads
    them: each pass streams all weights from memory (timing one module again and again would keep its weights in
    cache and flatter the kernel), and the greedy head as the engine runs it."""
    head_module = model.get_output_embeddings()
    gen = torch.Generator().manual_seed(0)
    layers = []
    for _, module in model.named_modules():
        is_linear = isinstance(module, torch.nn.Linear) or type(module).__name__.endswith("Linear")
        if is_linear and module is not head_module and not any(True for _ in module.children()):
            layers.append((module, torch.randn(1, in_width(module), dtype=act_dtype, generator=gen)))

    def one_pass():
        for module, x in layers:
            module(x)

    from sealion.engine.greedy_head import choose_screen

    x_head = torch.randn(1, in_width(head_module), generator=gen)
    # greedy decoding does not run the head module: it asks the screen the engine would choose
    screen = choose_screen(head_module, "auto") if isinstance(head_module, torch.nn.Linear) else None
    with torch.inference_mode():
        layers_ms = best_time(one_pass, repeats) * 1e3
        head_ms = best_time(lambda: head_module(x_head.to(act_dtype)), repeats) * 1e3
    greedy_ms = head_ms
    if screen is not None:
        with torch.no_grad():  # the screen keeps buffers it makes on first use
            greedy_ms = best_time(lambda: screen.argmax(x_head), repeats) * 1e3
    total = layers_ms + greedy_ms
    return {"layers_ms": layers_ms, "head_ms": head_ms, "greedy_head_ms": greedy_ms, "total_ms": total,
            "linear_modules": len(layers), "ceiling_tok_s": 1e3 / total}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from sealion.models import load

    results = {}
    for label, kwargs, act in (("fp32", {}, torch.float32), ("bf16", {"dtype": "bf16"}, torch.bfloat16),
                               ("int8", {"quantize": "int8"}, torch.float32),
                               ("int4", {"quantize": "int4"}, torch.float32)):
        loaded = load(args.model, text_only=True, **kwargs)
        r = results[label] = floor_ms(loaded.model, args.repeats, act)
        print(f"{label:5s} layers {r['layers_ms']:6.2f} ms ({r['linear_modules']} modules)  head {r['head_ms']:6.2f} ms"
              f" (greedy path {r['greedy_head_ms']:6.2f} ms)  floor {r['total_ms']:6.2f} ms"
              f"  -> at most {r['ceiling_tok_s']:6.1f} tok/s", flush=True)
        del loaded
    if args.json:
        args.json.write_text(json.dumps({"threads": torch.get_num_threads(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
