"""The recipe's stages and how each one calls the area that does the work.

data -> student -> capture -> distill -> merge -> export -> evaluate -> report

Each stage reads the previous stages' directories and writes its own; the runner (runner.py) decides what runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SealionError
from ..io import read_jsonl, write_json
from .config import Recipe, classify_ref, dump_yaml, resolve_path
from .fingerprint import path_identity
from .export_stage import gguf_name
from .runner import Stage, StageContext

STAGES = ("data", "student", "capture", "distill", "merge", "export", "evaluate", "report")
MODEL_FILE = "model.json"  # in student/, distill/, merge/: {"path": the model directory}


def model_dir_of(stage_dir: Path) -> Path:
    """The model directory a stage produced (its own `model/`, or one it points to, e.g. a hub snapshot)."""
    info = json.loads((stage_dir / MODEL_FILE).read_text(encoding="utf-8"))
    return Path(info["path"])


def _model_identity(ref: str) -> str:
    kind = classify_ref(ref)
    if kind in ("local", "gguf"):
        return f"{ref}@{path_identity(Path(ref).expanduser() / 'config.json' if kind == 'local' else ref)}"
    return ref


def _publish_model(ctx: StageContext, path: Path, **extra: Any) -> None:
    write_json(ctx.dir / MODEL_FILE, {"path": str(Path(path).resolve()), **extra})


# ------------------------------------------------------------------------------------------------- data
def _run_data(recipe: Recipe, ctx: StageContext) -> dict:
    from .data import run_data_stage

    return run_data_stage(recipe, ctx.dir, ctx.log)


# ---------------------------------------------------------------------------------------------- student
def _run_student(recipe: Recipe, ctx: StageContext) -> dict:
    from ..models import resolve

    spec = recipe.student
    source = recipe.teacher if spec.from_ == "teacher" else spec.from_
    if not spec.cuts_layers:
        path = resolve(source)
        _publish_model(ctx, path, source=source)
        return {"source": source, "path": str(path), "layers": "all"}
    from ..distill.student import init_student

    teacher_dir = resolve(source)
    cfg = json.loads((teacher_dir / "config.json").read_text(encoding="utf-8"))
    n = int((cfg.get("text_config") or cfg)["num_hidden_layers"])
    layers = spec.layers or evenly_spaced(n, spec.num_layers or n)
    if max(layers) >= n:
        raise ConfigError(f"student.layers: index {max(layers)} is out of range; {source} has {n} layers")
    check_exportable_student(recipe, cfg, layers, "recipe")  # before capture and training, not after
    out = ctx.dir / "model"
    if out.exists():  # a half-written student from a killed run: rewrite it (cheap, one pass over the tensors)
        import shutil

        shutil.rmtree(out)
    init_student(str(teacher_dir), layers, out)
    _publish_model(ctx, out, source=source, layers=layers)
    return {"source": source, "layers": layers, "teacher_layers": n}


def evenly_spaced(n: int, k: int) -> list[int]:
    """k layer indices out of n, spread evenly, always keeping the first and the last."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


# ---------------------------------------------------------------------------------------------- capture
def _run_capture(recipe: Recipe, ctx: StageContext) -> dict:
    from ..distill.capture import CaptureConfig, capture

    c = recipe.capture
    if c.mode != "topk":
        raise ConfigError("capture.mode: only 'topk' is implemented by sealion.distill.capture")
    served = c.served_kwargs(recipe.teacher)  # served instances replace teacher and backend
    cfg = CaptureConfig(
        teacher=served.pop("teacher", recipe.teacher), data=[str(ctx.dep("data") / "train.jsonl")],
        out=str(ctx.dir / "topk"), k=c.top_k, max_length=recipe.data.max_seq_len, shard_size=c.rows_per_shard,
        batch_rows=c.batch_size, batch_tokens=c.batch_size * recipe.data.max_seq_len,
        backend=served.pop("backend", "vllm" if c.backend == "vllm" else "transformers"),
        dtype=c.dtype, tensor_parallel=c.tensor_parallel, callback=lambda e: ctx.log(f"capture: {e['message']}")
        if "message" in e else None, **served)
    manifest = capture(cfg)
    return {k: manifest.get(k) for k in ("num_examples", "num_shards", "positions", "bytes", "bytes_per_position",
                                          "k")}


# ---------------------------------------------------------------------------------------------- distill
def _run_distill(recipe: Recipe, ctx: StageContext) -> dict:
    from .integrate import train_student

    student = model_dir_of(ctx.dep("student"))
    out = ctx.dir / "model"
    finished = out / "train_summary.json"  # written last by the trainer, after the final weights
    if finished.is_file():  # killed after training finished (checkpoints perhaps already gone): nothing to redo
        from .integrate import read_json

        summary = {k: v for k, v in read_json(finished).items() if k in TRAIN_SUMMARY_KEYS}
    else:
        summary = train_student(recipe, student=student, capture_dir=ctx.dep("capture") / "topk",
                                work_dir=ctx.dir, out_dir=out, log=ctx.log)
    freed = drop_checkpoints(out)
    if freed:
        ctx.log(f"distill: removed the resume checkpoints ({freed / 2**30:.2f} GiB; the final weights are kept)")
    _publish_model(ctx, out)
    return summary


TRAIN_SUMMARY_KEYS = ("steps", "tokens", "target_tokens", "elapsed_s", "tokens_per_s", "peak_rss_mb")


def drop_checkpoints(model_dir: Path) -> int:
    """Once training has finished, its checkpoints (weights plus optimizer state, twice the model's size each)
    serve nothing: resume needs them only while training runs, and later stages read the final weights. Returns
    the bytes freed."""
    import shutil

    from .fingerprint import dir_size

    ckpts = model_dir / "checkpoints"
    if not ckpts.is_dir():
        return 0
    size = dir_size(ckpts)
    shutil.rmtree(ckpts)
    return size


# ------------------------------------------------------------------------------------------------ merge
def merge_config(recipe: Recipe, distilled: Path, partner: Path) -> dict:
    """A mergekit-style config for sealion.merge: the distilled student with its partner."""
    m = recipe.merge
    params = dict(m.parameters)
    if m.method == "linear":
        return {"merge_method": "linear", "dtype": m.dtype, "models": [
            {"model": str(distilled), "parameters": {"weight": m.weight}},
            {"model": str(partner), "parameters": {"weight": 1.0 - m.weight}}], "parameters": params,
            "tokenizer_source": "base", "base_model": str(partner)}
    if m.method == "slerp":
        return {"merge_method": "slerp", "dtype": m.dtype, "base_model": str(partner),
                "models": [{"model": str(distilled)}, {"model": str(partner)}],
                "parameters": {"t": m.weight, **params}}
    if m.method == "model_stock":
        return {"merge_method": "model_stock", "dtype": m.dtype, "base_model": str(partner),
                "models": [{"model": str(distilled)}, *({"model": x} for x in m.models)], "parameters": params}
    # task-vector methods: the partner is the base, the distilled student the one task vector
    model_params = {"weight": m.weight * 2 if m.method == "task_arithmetic" else 1.0}
    for key in ("density", "epsilon", "gamma"):
        if key in params:
            model_params[key] = params.pop(key)
    return {"merge_method": m.method, "dtype": m.dtype, "base_model": str(partner),
            "models": [{"model": str(distilled), "parameters": model_params}], "parameters": params}


def with_training_record(cfg: dict, distilled: Path) -> dict:
    """The merge config told what distillation trained (its sealion_training.json), so the merge keeps that work."""
    from ..merge.plan import trained_components

    return {**cfg, "trained": trained_components(distilled)}


def _run_merge(recipe: Recipe, ctx: StageContext) -> dict:
    from ..merge.run import merge
    from ..models import resolve

    distilled = model_dir_of(ctx.dep("distill"))
    partner = model_dir_of(ctx.dep("student")) if recipe.merge.with_ == "student-init" else resolve(recipe.merge.with_)
    cfg = with_training_record(merge_config(recipe, distilled, partner), distilled)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    out = ctx.dir / "model"
    if (out / "sealion_merge.json").is_file():  # published before a kill: the merge itself is complete
        d = json.loads((out / "sealion_merge.json").read_text(encoding="utf-8"))
    else:
        d = merge(cfg, out, resume=True, progress=True).to_dict()
    _publish_model(ctx, out, partner=str(partner))
    return {"method": recipe.merge.method, "partner": str(partner), "weight": recipe.merge.weight,
            **{k: d[k] for k in ("shards", "bytes_written", "family") if k in d}}


# ----------------------------------------------------------------------------------------------- export
def final_model_dir(recipe: Recipe, ctx: StageContext) -> Path:
    """What the recipe builds: the merged model, or the distilled student when the merge is off."""
    return model_dir_of(ctx.dep("merge") if recipe.merge.enabled else ctx.dep("distill"))


def _run_export(recipe: Recipe, ctx: StageContext) -> dict:
    from .export_stage import run_export_stage

    return run_export_stage(recipe.export, final_model_dir(recipe, ctx), ctx.dep("data") / "heldout.jsonl", ctx.dir,
                            log=ctx.log)


# --------------------------------------------------------------------------------------------- evaluate
def _eval_models(recipe: Recipe, ctx: StageContext) -> dict[str, Path]:
    models = {"student-init": model_dir_of(ctx.dep("student")), "student": model_dir_of(ctx.dep("distill"))}
    if recipe.merge.enabled:
        models["merged"] = model_dir_of(ctx.dep("merge"))
    return models


def _run_evaluate(recipe: Recipe, ctx: StageContext, data_dir: str | None) -> dict:
    from .heldout import run_heldout

    out: dict[str, Any] = {}
    models = _eval_models(recipe, ctx)
    h = recipe.evaluate.heldout
    if h.enabled:
        summary = run_heldout(recipe.teacher, models, ctx.dep("data") / "heldout.jsonl", ctx.dir,
                              batch_size=h.batch_size, n_boot=h.bootstrap, seed=h.seed,
                              max_len=recipe.data.max_seq_len,
                              log=ctx.log)
        out["heldout_kl"] = {m: round(v["all"]["kl"]["value"], 5) for m, v in summary.items()}
    te = recipe.evaluate.turn_end
    if te.enabled:
        from .turn_end import run_turn_end

        checked = run_turn_end(models, ctx.dep("data") / "heldout.jsonl", ctx.dir, prompts=te.prompts,
                               max_new_tokens=te.max_new_tokens or recipe.data.generate.max_new_tokens + 32,
                               batch_size=te.batch_size, log=ctx.log)
        out["turn_end"] = {m: f"{r['ended']}/{r['n']}" for m, r in checked["models"].items()}
    sh = recipe.evaluate.seahelm
    seahelm_data = data_dir or sh.data
    if sh.suite and seahelm_data:
        from .integrate import run_seahelm

        refs = {"teacher": recipe.teacher, **{k: str(v) for k, v in models.items()}}
        out["seahelm"] = run_seahelm(recipe, {m: refs[m] for m in sh.models}, resolve_path(recipe, seahelm_data),
                                     ctx.dir, log=ctx.log)
    elif sh.suite:
        note = f"{sh.suite} not run: no SEA-HELM data (pass --data DIR, e.g. --data ../shared/data/seahelm-v1)"
        ctx.log(f"evaluate: {note}")
        out["skipped"] = [note]  # the report and the terminal summary say it too
    return out


# ----------------------------------------------------------------------------------------------- report
def _run_report(recipe: Recipe, ctx: StageContext) -> dict:
    from .report import build_report

    data = build_report(ctx.run_dir, list(STAGES[:-1]), dump_yaml(recipe), title=f"sealion recipe: {recipe.name}",
                        description=recipe.description)
    return {"verdict": data.get("verdict", {})}


# ------------------------------------------------------------------------------------------------ graph
def build_stages(recipe: Recipe, *, data_dir: str | None = None) -> list[Stage]:
    """The stage graph for a recipe; each stage's config is what its output depends on."""
    teacher_id = _model_identity(recipe.teacher)
    dump = recipe.resolved_dump()
    data_inputs = {}
    if recipe.data.source != "builtin":
        data_inputs["data.source"] = str(resolve_path(recipe, recipe.data.source))
    else:
        from importlib import resources

        data_inputs["builtin prompts"] = str(resources.files("sealion.recipe").joinpath("data/prompts.yaml"))
    student_from = recipe.teacher if recipe.student.from_ == "teacher" else recipe.student.from_
    merge_partner = None if recipe.merge.with_ == "student-init" else _model_identity(recipe.merge.with_)
    seahelm_data = data_dir or recipe.evaluate.seahelm.data
    eval_inputs = {}
    if recipe.evaluate.seahelm.suite and seahelm_data:
        eval_inputs["seahelm data"] = str(resolve_path(recipe, seahelm_data))
    eval_cfg = {"evaluate": dump["evaluate"], "teacher": teacher_id, "max_seq_len": recipe.data.max_seq_len,
                "merge": recipe.merge.enabled,
                "seahelm_active": bool(recipe.evaluate.seahelm.suite and seahelm_data)}
    return [
        Stage("data", lambda ctx: _run_data(recipe, ctx), (), {"data": dump["data"], "teacher": teacher_id},
              data_inputs, describe="teacher responses for the prompts; train/held-out split",
              outputs=("train.jsonl", "heldout.jsonl")),
        Stage("student", lambda ctx: _run_student(recipe, ctx), (),
              {"student": dump["student"], "from": _model_identity(student_from)},
              describe="initialise the student" + (" (a subset of the teacher's layers)"
                                                   if recipe.student.cuts_layers else ""),
              outputs=(MODEL_FILE,)),
        Stage("capture", lambda ctx: _run_capture(recipe, ctx), ("data",),
              {"capture": dump["capture"], "teacher": teacher_id, "max_seq_len": recipe.data.max_seq_len},
              describe=f"teacher top-{recipe.capture.top_k} logits over the train set ({recipe.capture.backend})",
              outputs=("topk/manifest.json",)),
        Stage("distill", lambda ctx: _run_distill(recipe, ctx), ("student", "capture"),
              {"distill": dump["distill"], "max_seq_len": recipe.data.max_seq_len},
              describe=f"logit distillation ({recipe.distill.launcher})", outputs=(MODEL_FILE,)),
        Stage("merge", lambda ctx: _run_merge(recipe, ctx), ("student", "distill"),
              {"merge": dump["merge"], "partner": merge_partner}, enabled=recipe.merge.enabled,
              describe=f"{recipe.merge.method} merge with {recipe.merge.with_}", outputs=(MODEL_FILE,)),
        Stage("export", lambda ctx: _run_export(recipe, ctx), ("data", "distill", "merge"),
              {"export": dump["export"], "merge": recipe.merge.enabled}, enabled=recipe.export.enabled,
              describe=f"GGUF {', '.join(recipe.export.quants)} of the final model"
              + ("; fidelity per language" if recipe.export.fidelity else "")
              + (f"; {recipe.export.answer_with} answers through llama.cpp" if recipe.export.answer_with else ""),
              outputs=tuple(gguf_name(q) for q in recipe.export.quants)),
        Stage("evaluate", lambda ctx: _run_evaluate(recipe, ctx, data_dir), ("data", "student", "distill", "merge"),
              eval_cfg, eval_inputs, describe="held-out KL / top-1 / perplexity per language"
              + (f"; {recipe.evaluate.seahelm.suite}" if eval_cfg["seahelm_active"] else "")),
        Stage("report", lambda ctx: _run_report(recipe, ctx), ("data", "student", "capture", "distill", "merge",
                                                                "export", "evaluate"),
              {"name": recipe.name, "recipe": dump}, describe="report.html", outputs=("report.json",)),
    ]


def check_stage_values(recipe: Recipe, *, source: str) -> None:
    """Checks that need a model's config (cheap: config.json only, never weights); skipped for hub ids."""
    from .config import classify_ref as kind_of

    spec = recipe.student
    src = recipe.teacher if spec.from_ == "teacher" else spec.from_
    if not spec.cuts_layers or kind_of(src) not in ("local", "alias"):
        return
    cfg_path = None
    if kind_of(src) == "local":
        cfg_path = Path(src).expanduser() / "config.json"
    else:
        from ..models.cache import cache_dir

        guess = cache_dir() / "models" / "gemma-3-270m" / "config.json"
        cfg_path = guess if guess.is_file() else None  # not converted yet: the student stage checks
    if cfg_path is None:
        return
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    text = cfg.get("text_config") or cfg
    n = text.get("num_hidden_layers")
    if spec.layers is not None and n is not None and max(spec.layers) >= n:
        raise ConfigError(f"{source}: student.layers: index {max(spec.layers)} is out of range; "
                          f"{src} has {n} layers (0..{n - 1})")
    if n is not None:
        check_exportable_student(recipe, cfg, spec.layers or evenly_spaced(n, spec.num_layers or n), source)


def check_exportable_student(recipe: Recipe, cfg: dict, layers: list[int], source: str) -> None:
    """A Gemma 3 student cut from the teacher's layers must keep llama.cpp's layer order when it will be exported."""
    text = cfg.get("text_config") or cfg
    types = text.get("layer_types")
    if not (recipe.export.enabled and str(cfg.get("model_type", "")).startswith("gemma3") and types):
        return
    from ..export.gguf_export import gemma3_layer_problem

    problem = gemma3_layer_problem([types[i] for i in layers])
    if problem:
        full = [i for i, t in enumerate(types) if t == "full_attention"]
        field = "student.layers" if recipe.student.layers is not None else "student.num_layers"
        raise ConfigError(f"{source}: {field}: the export stage cannot write this student, layers {layers} "
                          f"({problem}; the full layers are {full}); choose layers in that order or set "
                          "export.enabled: false")


def read_rows(path: Path) -> list[dict]:
    rows = read_jsonl(path)
    if not rows:
        raise SealionError(f"{path}: empty")
    return rows
