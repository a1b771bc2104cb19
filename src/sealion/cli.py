"""`sealion <verb>`: parses flags and hands them to the verb's module. No logic lives here.

Each verb lives in `sealion.<area>.cli` and exposes `register(subparsers)`, which adds its parser and
sets `func` (called with the parsed args, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# verb modules, in the order `sealion --help` lists them
VERB_MODULES = [
    "sealion.engine.cli",  # generate
    "sealion.chat.cli",  # chat (interactive)
    "sealion.serve.cli",  # serve
    "sealion.evaluate.cli",  # eval
    "sealion.compare.cli",  # compare
    "sealion.distill.cli",  # distill capture|train
    "sealion.merge.cli",  # merge
    "sealion.recipe.cli",  # recipe
    "sealion.export.cli",  # export, quantize-report
    "sealion.quant.cli",  # quantize
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sealion",
        description="Run, evaluate and build Gemma-SEA-LION-style models.",
        epilog="example: sealion generate demo --prompt 'Ibu kota Indonesia adalah' --max-new-tokens 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # verb not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import SealionError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SealionError as e:
        if args.debug or os.environ.get("SEALION_DEBUG"):
            raise
        print(f"sealion: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nsealion: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
