"""`sealion quantize MODEL --quantize int4 --out DIR`: a weight-only int8/int4 copy of a model that every verb
(generate, chat, serve, eval, recipe) loads quantised as it was saved, without re-quantising."""

from __future__ import annotations

import argparse


def run(args) -> int:
    from ..models import load
    from . import save_quantized

    loaded = load(args.model, text_only=True, quantize=args.quantize)
    out = save_quantized(loaded.model, loaded.tokenizer, args.out, source=loaded.path)
    spec = loaded.model._sealion_quant
    kinds = sorted(set(spec.layers.values()))
    print(f"wrote {out} ({args.quantize}, {len(spec.layers)} layers: {', '.join(kinds)})")
    return 0


def register(subparsers) -> None:
    from ..engine.cli import QUANTIZE_MODES, one_line_errors

    p = subparsers.add_parser(
        "quantize", help="save a weight-only int8/int4 copy of a model for in-process CPU inference",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: sealion quantize demo --quantize int4 --out runs/demo-int4 && "
               "sealion generate runs/demo-int4 --prompt 'Ibu kota Indonesia adalah'")
    one_line_errors(p)
    p.add_argument("model", help="model reference: demo, a local HF directory, a hub id, a .gguf file")
    p.add_argument("--quantize", required=True, choices=QUANTIZE_MODES, help="weight format")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)
