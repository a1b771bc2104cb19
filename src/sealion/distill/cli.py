"""`sealion distill capture | train | init-student`."""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "distill", help="teacher logit capture, logit distillation, student initialisation",
        description="Logit distillation with a shared tokenizer: capture the teacher's top-k once, then train "
                    "students from the capture (or online, with the teacher in the loop).",
        epilog="example: sealion distill capture --teacher demo --data train.jsonl --k 64 --out runs/cap && "
               "sealion distill init-student --teacher demo --layers 0,3,6,9,12,17 --out runs/student && "
               "sealion distill train --student runs/student --capture runs/cap --out runs/distilled",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="distill_verb", metavar="STEP")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    c = sub.add_parser("capture", help="score data with the teacher; store top-k per assistant position",
                       epilog="example: sealion distill capture --teacher demo --data sea.jsonl --k 64 --out runs/cap\n"
                              "multi-process: accelerate launch --config_file "
                              "src/sealion/distill/configs/ddp.yaml -m sealion distill capture ...")
    c.add_argument("--teacher", required=True, action="append",
                   help="model reference (HF dir, hub id, demo), or the URL of an OpenAI-compatible server with "
                        "vLLM's prompt_logprobs (http://HOST:PORT/v1); several URLs are combined by --teacher-weight")
    c.add_argument("--teacher-weight", type=float, action="append", default=None,
                   help="served teachers: weight of each --teacher, in order (default: equal)")
    c.add_argument("--tokenizer", default=None, help="served teachers: the local tokenizer to render the data with "
                   "(default: the served model's id)")
    c.add_argument("--concurrency", type=int, default=8, help="served teachers: requests in flight (default 8)")
    c.add_argument("--retries", type=int, default=4, help="served teachers: retries per request (default 4)")
    c.add_argument("--data", required=True, action="append", help="JSONL / parquet file or dir, or hub dataset id "
                   "(repeatable)")
    c.add_argument("--out", required=True, help="capture directory (created; resumed when it exists)")
    c.add_argument("--k", type=int, default=64, help="top-k entries kept per position (default 64)")
    c.add_argument("--temperature", type=float, default=1.0, help="teacher temperature at capture (default 1)")
    c.add_argument("--max-length", type=int, default=2048, help="truncate examples to this many tokens")
    c.add_argument("--shard-size", type=int, default=256, help="examples per shard (default 256)")
    c.add_argument("--batch-tokens", type=int, default=4096, help="tokens per packed row in teacher passes")
    c.add_argument("--batch-rows", type=int, default=8, help="packed rows per teacher pass")
    c.add_argument("--step", type=float, default=1 / 64, help="log-prob grid in nats (default 1/64)")
    c.add_argument("--compressor", choices=["lzma", "zlib", "none"], default="lzma")
    c.add_argument("--backend", choices=["transformers", "vllm"], default="transformers",
                   help="(a URL teacher is always served)")
    c.add_argument("--tensor-parallel", type=int, default=1, help="vLLM tensor parallel size")
    c.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: float32 on CPU)")
    c.add_argument("--split", default="train", help="hub dataset split")
    c.add_argument("--data-config", default=None, help="hub dataset config (e.g. a language directory)")
    c.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    c.add_argument("--overwrite", action="store_true", help="discard an existing capture in --out")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=run_capture)

    t = sub.add_parser("train", help="distil a student from a capture (or online from a teacher)",
                       epilog="example: sealion distill train --student runs/student --capture runs/cap "
                              "--out runs/distilled --divergence jsd --beta 0.5 --temperature 2 --holdout 32")
    t.add_argument("--student", required=True, help="student model reference (HF dir)")
    t.add_argument("--out", required=True, help="output directory: HF model + metrics.jsonl + checkpoints/")
    t.add_argument("--capture", action="append", help="capture directory (offline distillation; repeatable, e.g. "
                   "one per language)")
    t.add_argument("--teacher", help="online mode: the teacher in the loop")
    t.add_argument("--data", action="append", default=[], help="online mode: data (repeatable)")
    t.add_argument("--online-k", type=int, default=128,
                   help="online mode: teacher top-k per position; the vocabulary size or more: dense (every id)")
    t.add_argument("--max-length", type=int, default=2048, help="online mode: truncate examples")
    t.add_argument("--divergence", choices=["fkl", "rkl", "jsd", "tvd"], default="fkl")
    t.add_argument("--beta", type=float, default=0.5, help="JSD interpolation (0 = forward KL, 1 = reverse KL)")
    t.add_argument("--temperature", type=float, default=1.0, help="KD temperature (loss scaled by T^2)")
    t.add_argument("--missing", choices=["tail", "zero"], default="tail",
                   help="teacher mass outside the top-k: a (k+1)th bucket, or renormalise the top-k")
    t.add_argument("--kd-weight", type=float, default=0.9)
    t.add_argument("--ce-weight", type=float, default=0.1)
    t.add_argument("--chunk-size", type=int, default=128, help="positions per lm_head chunk")
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--warmup-steps", type=int, default=0)
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=8, help="rows per optimiser step, over all processes")
    t.add_argument("--micro-batch-size", type=int, default=2, help="rows per forward pass per process")
    t.add_argument("--pack", action="store_true", help="pack examples into rows of --max-tokens")
    t.add_argument("--max-tokens", type=int, default=2048, help="packed row length")
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", default=None)
    t.add_argument("--gradient-checkpointing", action="store_true")
    t.add_argument("--holdout", type=int, default=0, help="examples held out for the held-out KL")
    t.add_argument("--eval-every", type=int, default=0, help="steps between held-out evaluations")
    t.add_argument("--log-every", type=int, default=1)
    t.add_argument("--checkpoint-every", type=int, default=50)
    t.add_argument("--keep-checkpoints", type=int, default=2)
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    t.add_argument("--tensorboard", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=run_train)

    s = sub.add_parser("init-student", help="make a student by keeping a subset of the teacher's layers",
                       epilog="example: sealion distill init-student --teacher demo --layers 0,3,6,9,12,17 "
                              "--out runs/student")
    s.add_argument("--teacher", required=True)
    s.add_argument("--layers", required=True, help="comma-separated teacher layer indices to keep, e.g. 0,3,6,9,12,17")
    s.add_argument("--out", required=True)
    s.set_defaults(func=run_init_student)


def _layers(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--layers: expected comma-separated integers, got {text!r}") from None


def run_capture(args) -> int:
    from .capture import CaptureConfig, capture

    if len(args.teacher) > 1 and not all(t.startswith(("http://", "https://")) for t in args.teacher):
        raise ConfigError("--teacher: several teachers must all be served (http(s) URLs)")
    manifest = capture(CaptureConfig(
        teacher=args.teacher[0], extra_teachers=args.teacher[1:], teacher_weights=args.teacher_weight,
        tokenizer=args.tokenizer, concurrency=args.concurrency, retries=args.retries, data=args.data, out=args.out, k=args.k, temperature=args.temperature,
        max_length=args.max_length, shard_size=args.shard_size, batch_tokens=args.batch_tokens,
        batch_rows=args.batch_rows, step=args.step, compressor=args.compressor, backend=args.backend,
        tensor_parallel=args.tensor_parallel, dtype=args.dtype, split=args.split, data_config=args.data_config,
        limit=args.limit, overwrite=args.overwrite, progress=not args.quiet))
    rep = manifest.get("data_report", {})
    print(json.dumps({"out": args.out, "examples": manifest.get("num_examples"), "positions": manifest.get("positions"),
                      "bytes_per_position": manifest.get("bytes_per_position"), "skipped_rows": rep.get("skipped"),
                      "per_language": rep.get("per_language")}, ensure_ascii=False))
    return 0


def run_train(args) -> int:
    from .train import TrainConfig, train

    summary = train(TrainConfig(
        student=args.student, out=args.out, capture=args.capture, teacher=args.teacher, data=args.data,
        online_k=args.online_k, max_length=args.max_length, divergence=args.divergence, beta=args.beta,
        temperature=args.temperature, missing=args.missing, kd_weight=args.kd_weight, ce_weight=args.ce_weight,
        chunk_size=args.chunk_size, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size, pack=args.pack, max_tokens=args.max_tokens, grad_clip=args.grad_clip,
        seed=args.seed, dtype=args.dtype, gradient_checkpointing=args.gradient_checkpointing, holdout=args.holdout,
        eval_every=args.eval_every, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints, resume=args.resume, tensorboard=args.tensorboard,
        progress=not args.quiet))
    before, after = summary.get("eval_before"), summary.get("eval_after")
    print(json.dumps({"out": args.out, "steps": summary["steps"], "tokens_per_s": round(summary["tokens_per_s"], 2),
                      "heldout_kl_before": before and round(before["kd"], 5),
                      "heldout_kl_after": after and round(after["kd"], 5)}))
    return 0


def run_init_student(args) -> int:
    from .student import init_student

    path = init_student(args.teacher, _layers(args.layers), args.out)
    print(path)
    return 0
