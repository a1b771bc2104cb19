"""`sealion compare`: paired significance between evaluation runs, or a leaderboard of runs with tie groups."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from . import stats


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="is model B really better than A, where, and how sure (paired tests on eval runs)",
        description="Compare evaluation runs (`sealion eval --out DIR` directories, or their results.json) of the "
                    "same tasks: for every task, competency, language and the SEA average, the paired difference "
                    "with a confidence interval and p-value (paired bootstrap over items), Benjamini-Hochberg over "
                    "the table, McNemar's exact test for binary tasks and the minimum detectable effect. Every run "
                    "after the first is compared with the first. --board ranks all runs with tie groups instead.",
        epilog="example: sealion compare runs/greedy runs/sampled --out runs/compare",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="evaluation run directories (the first is the baseline)")
    p.add_argument("--board", action="store_true", help="leaderboard of all runs per language and competency, "
                                                        "with tie groups")
    p.add_argument("--names", default=None, help="comma-separated display names (default: the directory names)")
    p.add_argument("--alpha", type=float, default=stats.ALPHA, help="false discovery rate / test level (default 0.05)")
    p.add_argument("--replicates", type=int, default=stats.N_REPLICATES,
                   help=f"bootstrap replicates (default {stats.N_REPLICATES})")
    p.add_argument("--seed", type=int, default=stats.COMPARE_SEED, help="bootstrap seed")
    p.add_argument("--out", default=None, help="write compare.json and compare.html here")
    p.set_defaults(func=run)


def _names(args) -> list[str]:
    if args.names:
        names = [x.strip() for x in args.names.split(",")]
        if len(names) != len(args.runs):
            raise ConfigError(f"--names: {len(names)} names for {len(args.runs)} runs")
    else:
        names = [Path(r).name if Path(r).name != "results.json" else Path(r).parent.name for r in args.runs]
        if len(set(names)) < len(names):
            names = [str(r) for r in args.runs]
    if len(set(names)) < len(names):
        raise ConfigError("--names: names must be distinct")
    return names


def run(args) -> int:
    from .board import board as make_board
    from .html import compare_html
    from .load import load_run
    from .table import compare, levels
    from .text import board_text, comparison_text

    if len(args.runs) < 2:
        raise ConfigError("compare needs at least two runs (RUN_A RUN_B ...)")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1) (got {args.alpha})")
    if args.replicates < 100:
        raise ConfigError(f"--replicates must be >= 100 (got {args.replicates})")
    runs = [load_run(r, label=n) for r, n in zip(args.runs, _names(args))]
    lv = levels(runs, n_boot=args.replicates, seed=args.seed)
    result = compare(runs, alpha=args.alpha, n_boot=args.replicates, seed=args.seed, lv=lv)
    board = make_board(runs, lv, alpha=args.alpha) if args.board else None
    if board:
        sys.stdout.write(board_text(board))
        result["board"] = board
    else:
        sys.stdout.write(comparison_text(result))
    if args.out:
        from .. import io as sio

        out = Path(args.out)
        sio.write_text(out / "compare.json", json.dumps(result, ensure_ascii=False, indent=1) + "\n")
        sio.write_text(out / "compare.html", compare_html(result, board))
        sys.stdout.write(f"wrote {out / 'compare.json'} and {out / 'compare.html'}\n")
    return 0
