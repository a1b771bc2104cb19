"""Calls into the areas whose APIs are larger than a line: distillation training and SEA-HELM evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..io import write_json
from .config import Recipe


def train_config(recipe: Recipe, *, student: Path, capture_dir: Path, out_dir: Path, progress: bool = True):
    from ..distill.train import TrainConfig

    d = recipe.distill
    return TrainConfig(
        student=str(student), out=str(out_dir), capture=str(capture_dir), divergence=d.divergence,
        temperature=d.temperature, missing=d.missing_mass, kd_weight=d.kd_weight, ce_weight=d.ce_weight,
        lr=d.lr, weight_decay=d.weight_decay, warmup_steps=d.warmup_steps, epochs=d.epochs, max_steps=d.max_steps,
        batch_size=d.batch_size, micro_batch_size=d.micro_batch_size, seed=d.seed, dtype=d.dtype,
        gradient_checkpointing=d.gradient_checkpointing, checkpoint_every=d.save_every, resume=True,
        progress=progress)


def train_command(recipe: Recipe, *, student: Path, capture_dir: Path, out_dir: Path) -> list[str]:
    """`accelerate launch ... -m sealion distill train ...` for multi-process (FSDP/DDP) training."""
    from .config import resolve_path

    d = recipe.distill
    cfg = train_config(recipe, student=student, capture_dir=capture_dir, out_dir=out_dir)
    args = ["accelerate", "launch", "--config_file", str(resolve_path(recipe, d.accelerate_config)),
            "--num_processes", str(d.num_processes), "-m", "sealion", "distill", "train"]
    flags = {"student": cfg.student, "capture": cfg.capture, "out": cfg.out, "divergence": cfg.divergence,
             "temperature": cfg.temperature, "missing": cfg.missing, "kd-weight": cfg.kd_weight,
             "ce-weight": cfg.ce_weight, "lr": cfg.lr, "weight-decay": cfg.weight_decay,
             "warmup-steps": cfg.warmup_steps, "epochs": cfg.epochs, "max-steps": cfg.max_steps,
             "batch-size": cfg.batch_size, "micro-batch-size": cfg.micro_batch_size, "seed": cfg.seed,
             "dtype": cfg.dtype, "checkpoint-every": cfg.checkpoint_every}
    for k, v in flags.items():
        if v is not None:
            args += [f"--{k}", str(v)]
    if cfg.gradient_checkpointing:
        args.append("--gradient-checkpointing")
    args.append("--resume")
    return args


def train_student(recipe: Recipe, *, student: Path, capture_dir: Path, work_dir: Path, out_dir: Path,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """Distil the student from the captured teacher logits (sealion.distill.train). Always `resume`: after a
    kill it continues from the newest checkpoint (the trainer saves one on Ctrl-C too)."""
    if recipe.distill.launcher == "accelerate":
        import subprocess

        cmd = train_command(recipe, student=student, capture_dir=capture_dir, out_dir=out_dir)
        log("distill: " + " ".join(cmd))
        rc = subprocess.call(cmd)
        if rc != 0:
            from ..errors import SealionError

            raise SealionError(f"distill: accelerate launch exited with {rc}")
        return read_json(out_dir / "train_summary.json")
    from ..distill.train import train

    cfg = train_config(recipe, student=student, capture_dir=capture_dir, out_dir=out_dir)
    cfg.callback = lambda e: log(f"distill: {e['message']}") if "message" in e else None
    summary = train(cfg)
    from .stages import TRAIN_SUMMARY_KEYS

    return {k: summary[k] for k in TRAIN_SUMMARY_KEYS if k in summary}


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
                         limit=sh.limit, data=str(data_dir), judge=sh.judge, languages=sh.languages,
                         progress=True)
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
