"""`python -m sealion.merge CONFIG --out DIR ...`: the merge verb without loading the other verbs."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import SealionError
from .cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sealion")
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["merge", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except SealionError as e:
        if os.environ.get("SEALION_DEBUG"):
            raise
        print(f"sealion: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
