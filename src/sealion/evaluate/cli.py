"""`sealion eval`: evaluate a model on SEA-HELM's tasks."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a model the way SEA-HELM does",
        description="Evaluate a local model or an OpenAI-compatible endpoint on SEA-HELM's tasks for id, vi, th, ta, "
                    "tl, ms, my. Prints the leaderboard table and writes results.json, results.md and report.html. "
                    "An interrupted run resumes from its cache.",
        epilog="example: sealion eval --model demo --tasks seahelm-mini --languages id,th "
               "--data /path/to/seahelm_tasks --limit 20 --runs 2 --out runs/smoke",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model reference (local dir, hub id, .gguf, demo) or http(s):// endpoint")
    p.add_argument("--tasks", type=_csv, default=["seahelm"], help="task sets or task names, comma-separated (default seahelm)")
    p.add_argument("--languages", type=_csv, default=None, help="comma-separated languages (default: all in the tasks)")
    p.add_argument("--runs", type=int, default=8, help="runs with SEA-HELM's fixed seeds (default 8)")
    p.add_argument("--limit", type=int, default=None, help="first N items per task and language (testing)")
    p.add_argument("--data", default="hub", help="'hub' (datasets) or a local directory in SEA-HELM's layout "
                                                  "(several: comma-separated)")
    p.add_argument("--base-model", action="store_true", default=None,
                   help="treat the model as a base model: 5-shot completion prompts (default: when it has no chat template)")
    p.add_argument("--instruct", dest="base_model", action="store_false", help="force zero-shot chat prompts")
    p.add_argument("--think", action="store_true", help="enable thinking (adds --think-budget tokens)")
    p.add_argument("--think-budget", type=int, default=20000, help="extra tokens for reasoning with --think")
    p.add_argument("--batch-size", type=int, default=16, help="in-process batch size (default 16)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent requests to an endpoint (default 16)")
    p.add_argument("--max-tokens", type=int, default=None, help="override every task's max_tokens")
    p.add_argument("--temperature", type=float, default=None,
                   help="override the model's sampling temperature (0 = greedy; default: generation_config)")
    p.add_argument("--shots", type=int, default=None, help="few-shot examples for base models (default 5)")
    p.add_argument("--judge", default=None, help="judge model or endpoint for judged tasks")
    p.add_argument("--metricx", default=None, help="local MetricX-24 model directory (translation); else chrF++")
    p.add_argument("--clip", default=None, metavar="DIR",
                   help="local CLIP checkpoint (multilingual; transformers format) for xm3600's RefCLIPScore; "
                        "without it xm3600 is reported as not scored")
    p.add_argument("--seahelm", default=None, metavar="PATH",
                   help="a SEA-HELM checkout or its seahelm_tasks tree: tasks, languages, prompts, labels, few-shot "
                        "examples and max_tokens taken from it (prompts byte-equal to SEA-HELM's)")
    p.add_argument("--out", default="runs/eval", help="output directory (default runs/eval)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    from ..engine.cli import add_backend_arg

    add_backend_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .report import markdown_table
    from .runner import EvalConfig, run_eval

    if args.runs is not None and args.runs < 1:
        raise ConfigError("--runs must be >= 1")
    cfg = EvalConfig(model=args.model, tasks=args.tasks, out=args.out, languages=args.languages, runs=args.runs,
                     limit=args.limit, data=args.data, base_model=args.base_model, think=args.think,
                     think_budget=args.think_budget, batch_size=args.batch_size, concurrency=args.concurrency,
                     max_tokens=args.max_tokens, temperature=args.temperature, shots=args.shots, judge=args.judge, metricx=args.metricx,
                     clip=args.clip, seahelm=args.seahelm,
                     progress=not args.no_progress)
    if args.backend == "llama.cpp":  # a .gguf run by llama.cpp: open it here, never dequantised
        from ..engine import open_engine

        cfg.engine = open_engine(args.model, backend="llama.cpp")
    results = run_eval(cfg)
    sys.stdout.write(markdown_table(results))
    from .summary import closing_lines

    sys.stdout.write("\n" + "\n".join(closing_lines(results, args.out)) + "\n")
    return 0
