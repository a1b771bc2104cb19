"""`sealion recipe RECIPE.yaml --out runs/NAME [--from S] [--only S] [--plan] [--data DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .stages import STAGES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "recipe",
        help="run a build recipe: data -> capture -> distill -> merge -> evaluate -> report",
        description=(
            "Run a YAML recipe end to end. Stages: " + " -> ".join(STAGES) + ". Each stage writes RUN/<stage>/ "
            "with a DONE.json marker; a finished stage whose config and inputs are unchanged is skipped, a changed "
            "one reruns with everything after it, an interrupted one resumes. See docs/recipe.md."),
        epilog=("examples:\n"
                "  sealion recipe recipes/demo.yaml --out runs/demo\n"
                "  sealion recipe recipes/demo.yaml --out runs/demo --from merge\n"
                "  sealion recipe recipes/gemma-sea-lion-v4.5-e2b.yaml --plan"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="the recipe YAML")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--from", dest="from_stage", choices=STAGES, metavar="STAGE",
                   help=f"rerun this stage and every stage after it ({', '.join(STAGES)})")
    g.add_argument("--only", choices=STAGES, metavar="STAGE",
                   help="run just this stage (the stages before it must be done)")
    p.add_argument("--plan", action="store_true",
                   help="validate the recipe and print what would run and where; runs nothing (no network)")
    p.add_argument("--data", metavar="DIR", help="SEA-HELM data directory: adds the recipe's seahelm suite to evaluate")
    p.set_defaults(func=run)


def _out(args, name: str) -> Path:
    return Path(args.out) if args.out else Path("runs") / name


def run(args) -> int:
    from . import plan_recipe, run_recipe
    from .config import load_recipe

    name = load_recipe(args.recipe).name
    out = _out(args, name)
    if args.plan:
        recipe, plan, notes = plan_recipe(args.recipe, out, data_dir=args.data, from_stage=args.from_stage,
                                          only=args.only)
        from .stages import build_stages

        describe = {s.name: s.describe for s in build_stages(recipe, data_dir=args.data)}
        print(f"recipe {recipe.name}: valid ({args.recipe})")
        print(f"teacher: {recipe.teacher}")
        print(f"student: {recipe.student.from_}" + (f" (layers {recipe.student.layers})" if recipe.student.layers
                                                    else f" ({recipe.student.num_layers} layers)"
                                                    if recipe.student.num_layers else ""))
        print(f"run directory: {out}")
        width = max(len(s.name) for s in plan)
        dir_width = max(len(f"{out / s.name}/") for s in plan)
        for s in plan:
            print(f"  {s.name:<{width}}  {s.action:<8} {str(out / s.name) + '/':<{dir_width}}  "
                  f"{describe.get(s.name, '')}  [{s.reason}]")
        if recipe.distill.launcher == "accelerate":
            from .integrate import train_command

            student = out / "student" / "model" if recipe.student.cuts_layers else Path(
                recipe.teacher if recipe.student.from_ == "teacher" else recipe.student.from_)
            cmd = train_command(recipe, student=student, capture_dir=out / "capture" / "topk",
                                out_dir=out / "distill" / "model")
            print("distill runs: " + " ".join(cmd))
        if recipe.hardware:
            print("hardware: " + "; ".join(f"{k}: {v}" for k, v in recipe.hardware.items()))
        for n in notes:
            print(f"note: {n}")
        return 0
    import signal

    def _stop(signum, frame):  # a plain `kill` stops as cleanly as Ctrl-C: partial files kept for a resume
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        statuses = run_recipe(args.recipe, out, data_dir=args.data, from_stage=args.from_stage, only=args.only)
    finally:
        signal.signal(signal.SIGTERM, previous)
    ran = [s.name for s in statuses if s.action in ("run", "resume")]
    print(f"recipe {name}: {'ran ' + ', '.join(ran) if ran else 'nothing to do (all stages current)'}",
          file=sys.stderr)
    from .summary import summary_lines

    for line in summary_lines(out):
        print(line)
    report = out / "report.html"
    if report.is_file():
        print(f"report: {report}")
    return 0
