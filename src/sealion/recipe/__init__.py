"""One YAML recipe -> data -> student -> capture -> distill -> merge -> export -> evaluate -> report, each stage
resumable.

    from sealion.recipe import load_recipe, run_recipe
    run_recipe("recipes/demo.yaml", "runs/demo")
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import Recipe, check_references, dump_yaml, load_recipe, parse_recipe
from .runner import Runner, StageStatus

__all__ = ["Recipe", "load_recipe", "parse_recipe", "prepare", "run_recipe", "plan_recipe", "Runner", "StageStatus"]


def prepare(recipe_path: str | Path, out: str | Path, *, data_dir: str | None = None, strict: bool = True,
            log: Callable[[str], None] | None = None) -> tuple[Recipe, Runner, list[str]]:
    """Load and check a recipe (structure, values, references) and build its runner. Nothing runs."""
    from .stages import build_stages, check_stage_values

    recipe = load_recipe(recipe_path)
    notes = check_references(recipe, source=str(recipe_path), data_dir=data_dir, strict=strict)
    check_stage_values(recipe, source=str(recipe_path))
    if strict:  # --plan only lists; a run needs llama.cpp before the first stage starts
        from .export_stage import check_llama_cpp

        check_llama_cpp(recipe.export, str(recipe_path))
    runner = Runner(build_stages(recipe, data_dir=data_dir), out, log=log)
    return recipe, runner, notes


def plan_recipe(recipe_path: str | Path, out: str | Path, *, data_dir: str | None = None,
                from_stage: str | None = None, only: str | None = None) -> tuple[Recipe, list[StageStatus], list[str]]:
    recipe, runner, notes = prepare(recipe_path, out, data_dir=data_dir, strict=False)
    sh = recipe.evaluate.seahelm
    if sh.suite and not (data_dir or sh.data):
        notes.append(f"evaluate.seahelm: {sh.suite} will not run: no SEA-HELM data (pass --data DIR)")
    return recipe, runner.plan(from_stage=from_stage, only=only), notes


def run_recipe(recipe_path: str | Path, out: str | Path, *, data_dir: str | None = None,
               from_stage: str | None = None, only: str | None = None,
               log: Callable[[str], None] | None = None) -> list[StageStatus]:
    from ..io import write_text

    recipe, runner, _ = prepare(recipe_path, out, data_dir=data_dir, log=log)
    runner.plan(from_stage=from_stage, only=only)  # flag errors before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "recipe.yaml", dump_yaml(recipe))  # the resolved config (defaults filled in)
    write_text(out / "recipe.source.yaml", Path(recipe_path).read_text(encoding="utf-8"))
    return runner.run(from_stage=from_stage, only=only)
