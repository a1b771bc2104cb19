"""`sealion merge merge.yaml --out DIR`: merge models from a mergekit-style YAML."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    from .methods import METHODS

    p = subparsers.add_parser(
        "merge",
        help="merge models (linear, slerp, task arithmetic, TIES, DARE, DELLA, breadcrumbs, model_stock)",
        description=(
            "Merge checkpoints described by a mergekit-style YAML (merge_method, base_model, models or slices, "
            "parameters, dtype, tokenizer_source, plus sealion `rules`). Tensors stream one at a time; the output "
            "directory appears only when complete. Methods: " + ", ".join(METHODS) + "."
        ),
        epilog="example: sealion merge merge.yaml --out runs/merged --dtype bfloat16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="merge config (YAML)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="output dtype (default: the config's, "
                   "else each tensor's stored dtype)")
    p.add_argument("--resume", action="store_true", help="reuse finished shards of an interrupted merge")
    p.add_argument("--device", default="cpu", help="device for the arithmetic (cpu, cuda, cuda:1)")
    p.add_argument("--shard-size", default="5GB", help="maximum output shard size (default 5GB)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from .run import merge

    summary = merge(
        args.config, args.out, dtype=args.dtype, resume=args.resume, device=args.device,
        shard_size=args.shard_size, overwrite=args.overwrite, progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.text(), file=sys.stdout)
    return 0
