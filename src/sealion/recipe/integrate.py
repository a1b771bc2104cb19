"""Calls into the areas whose APIs are larger than a line: distillation training and SEA-HELM evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..io import write_json
from .config import Recipe


def train_student(recipe: Recipe, *, student: Path, capture_dir: Path, work_dir: Path, out_dir: Path,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """Distil the student from the captured teacher logits (sealion.distill.train); resumes from its checkpoints."""
    from ..distill.train import TrainConfig, train

    d = recipe.distill
    cfg = TrainConfig(student=str(student), capture=str(capture_dir), out=str(out_dir))
    summary = train(cfg)
    return summary if isinstance(summary, dict) else {}


def run_seahelm(recipe: Recipe, models: dict[str, str], data_dir: Path, out_dir: Path, *,
                log: Callable[[str], None]) -> dict[str, Any]:
    """Run the recipe's SEA-HELM suite for each model (sealion.evaluate.run_eval), each into its own directory
    (cached and resumable by the evaluate area), and flatten the headline numbers into seahelm.json."""
    from ..evaluate import EvalConfig, run_eval

    sh = recipe.evaluate.seahelm
    flat: dict[str, Any] = {}
    for name, ref in models.items():
        log(f"evaluate: {sh.suite} on {name} ({ref})")
        cfg = EvalConfig(model=ref, tasks=[sh.suite], out=str(out_dir / "seahelm" / name), runs=sh.runs,
                         limit=sh.limit, data=str(data_dir), judge=sh.judge)
        res = run_eval(cfg)
        flat[name] = flatten_results(res)
    write_json(out_dir / "seahelm.json", flat)
    return {m: v.get("score") for m, v in flat.items()}


def flatten_results(res: dict[str, Any]) -> dict[str, Any]:
    """SEA-HELM results (language -> competency -> task) -> {score, stderr, languages: {lang: mean}}."""
    sea = res.get("sea_average") or {}
    langs = {lang: v.get("total", {}).get("mean") for lang, v in (res.get("results") or {}).items()}
    return {"score": sea.get("mean"), "stderr": sea.get("stderr"), "languages": langs,
            "mode": res.get("mode"), "runs": res.get("runs")}


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
