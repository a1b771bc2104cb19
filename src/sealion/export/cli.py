"""`sealion export MODEL --to gguf --quant Q`: a GGUF file llama.cpp runs; `sealion quantize-report`: how far a
quantised GGUF drifts from the original model, per language."""

from __future__ import annotations

import argparse
import json
import sys

from .gguf_export import GGML_TYPES, QUANTS


def run_export(args) -> int:
    from . import export_gguf

    out = args.out or f"{str(args.model).rstrip('/').split('/')[-1]}.{args.quant.lower()}.gguf"
    ple = None if args.ple_quant == "none" else args.ple_quant
    result = export_gguf(args.model, out, quant=args.quant, ple_quant=ple, mmproj=args.mmproj,
                         threads=args.threads, overwrite=args.overwrite)
    info = result.to_dict()
    if args.report:
        from .fidelity import fidelity_report

        info["fidelity"] = fidelity_report(args.model, result.path, threads=args.threads)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
    else:
        print(f"wrote {result.path} ({result.arch}, {result.quant}, {result.n_tensors} tensors"
              + (f", per-layer embeddings {result.ple_quant}" if result.ple_quant else "") + ")")
        if result.skipped:
            print(f"left out {len(result.skipped)} vision/audio tower tensors (text GGUF only)")
        if args.report:
            from .fidelity import format_report

            print(format_report(info["fidelity"]))
    return 0


def run_report(args) -> int:
    from .fidelity import fidelity_report, format_report

    report = fidelity_report(args.model, args.gguf, threads=args.threads, max_tokens=args.max_tokens)
    if args.out:
        from ..io import write_json

        write_json(args.out, report)
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a model to a GGUF file that llama.cpp (and Ollama) run",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: sealion export runs/recipe/merge --to gguf --quant q4_k_m --out model.q4_k_m.gguf")
    p.add_argument("model", help="model reference: demo, a local HF directory (merge/distill outputs), a hub id")
    p.add_argument("--to", choices=["gguf"], default="gguf", help="output format (gguf)")
    p.add_argument("--quant", default="f16", metavar="Q",
                   help=f"tensor type: {', '.join(QUANTS)} (default f16; k-quants via llama.cpp's quantiser)")
    p.add_argument("--ple-quant", default="auto", metavar="TYPE",
                   help="Gemma 4 per-layer embedding table type for quantised exports: auto (q8_0 when --quant has "
                        f"fewer than 8 bits), none (the quantiser's choice), or one of {', '.join(GGML_TYPES)}")
    p.add_argument("--mmproj", action="store_true", help="also write the vision/audio towers as an mmproj GGUF")
    p.add_argument("--out", default=None, help="output .gguf file (default MODEL.QUANT.gguf here)")
    p.add_argument("--threads", type=int, default=None, help="quantiser/llama.cpp threads (default: all cores)")
    p.add_argument("--report", action="store_true", help="also measure fidelity per language (quantize-report)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_export)

    r = subparsers.add_parser(
        "quantize-report", help="KL, top-1 agreement and perplexity ratio of a GGUF vs the original, per language",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: sealion quantize-report demo model.q4_k_m.gguf")
    r.add_argument("model", help="the original model reference (HF directory, demo, hub id)")
    r.add_argument("gguf", help="the quantised .gguf file")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--max-tokens", type=int, default=256, help="held-out tokens per language (default 256)")
    r.add_argument("--out", default=None, help="also write the report as JSON here")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.set_defaults(func=run_report)


