"""`sealion generate`: answer one prompt, or a file of prompts as a batch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import SealionError

DTYPES = ("float32", "bfloat16", "float16", "bf16")  # bf16: fast where the CPU has native bf16
QUANTIZE_MODES = ("int8", "int4")
# the CLI flag for each field the sampling rule (engine/params.py) names
SAMPLING_FLAGS = {"temperature": "--temperature", "top_p": "--top-p", "top_k": "--top-k",
                  "max_tokens": "--max-new-tokens", "seed": "--seed", "stop": "--stop"}


def one_line_errors(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A bad flag is one line on stderr (exit 2), not argparse's usage block."""
    def error(message: str):
        p.exit(2, f"{p.prog}: error: {message} (see {p.prog} --help)\n")

    p.error = error  # type: ignore[method-assign]
    return p


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Flags every verb that opens an engine shares."""
    p.add_argument("model", help="model reference: demo, a local HF directory, a hub id, a .gguf file, or an "
                                 "OpenAI-compatible base URL (http://host:port/v1)")
    p.add_argument("--dtype", default=None, choices=DTYPES, help="weights dtype (default: float32 on CPU)")
    p.add_argument("--api-key", default=None, help="API key for an HTTP endpoint (or OPENAI_API_KEY)")
    p.add_argument("--served-model", default=None, help="model name to request from an HTTP endpoint")
    add_quantize_arg(p)
    add_backend_arg(p)


def add_quantize_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantize", default=None, choices=QUANTIZE_MODES,
                   help="weight-only int8/int4 linear layers, embeddings and LM head on PyTorch's CPU kernels "
                        "(sealion.quant); a directory saved by 'sealion quantize' is already quantised")


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "transformers", "llama.cpp"], default="auto",
                   help="llama.cpp: run a .gguf file through llama.cpp in-process instead of dequantising it")


def add_sampling_args(p: argparse.ArgumentParser, max_new_tokens: int = 128) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy; default: the model's own")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None, help="seed for sampling (same seed, same text)")
    p.add_argument("--stop", action="append", default=[],
                   help="stop string (repeatable); \\n and \\t are read as newline and tab, e.g. --stop '\\n\\n'")


def engine_from_args(args, **kw):
    from . import open_engine

    if str(args.model).startswith(("http://", "https://")):
        return open_engine(args.model, model=args.served_model, api_key=args.api_key, **kw)
    if getattr(args, "backend", "auto") == "llama.cpp":
        return open_engine(args.model, backend="llama.cpp")
    if getattr(args, "quantize", None):
        kw["quantize"] = args.quantize
    return open_engine(args.model, dtype=args.dtype, **kw)


def check_sampling_flags(params, flags: dict[str, str] | None = None):
    """`params.check()` (THE sampling rule), with a refusal shown as argparse shows a bad flag: one line on stderr
    naming the flag, exit status 2, before any model loads. `flags` renames fields for this verb."""
    from .params import SamplingParamError

    try:
        return params.check()
    except SamplingParamError as e:
        flag = {**SAMPLING_FLAGS, **(flags or {})}.get(e.field, e.field)
        reason = str(e).split(": ", 1)[-1]
        print(f"sealion: error: {flag}: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


def sampling_from_args(args):
    from .types import SamplingParams

    return check_sampling_flags(SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        seed=args.seed, stop=[unescape_stop(x) for x in args.stop],
    ))


def base_model_warning(tokenizer, ref: str) -> str | None:
    """One line for a model with no chat template of its own (a base model such as `demo`): its chat replies are
    usually empty or echo turn markers. None when the model has a template (or is remote)."""
    if tokenizer is None or getattr(tokenizer, "chat_template", None):
        return None
    return (f"warning: {ref} has no chat template (a base model?); chat replies may be empty or echo turn markers. "
            f"For plain completion run: sealion generate {ref} --prompt 'Ibu kota Indonesia adalah'")


def _read_prompts(args) -> list[str]:
    prompts = list(args.prompt or [])
    if args.prompts_file:
        if args.prompts_file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            try:
                with open(args.prompts_file, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except OSError as e:
                raise SealionError(f"{args.prompts_file}: {e.strerror}") from None
        prompts += [line for line in lines if line.strip()]
    if not prompts and not sys.stdin.isatty():
        prompts = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not prompts:
        raise SealionError("no prompt: pass --prompt TEXT, --prompts-file FILE, or pipe prompts on stdin")
    return prompts


def _done_rows(out: Path, prompts: list[str]) -> dict[int, dict]:
    """Rows already in `--out` (index -> row) that answer this run's prompts; a torn last line (a kill mid-write)
    is cut off. Rows that failed (`error`) are not counted, so a rerun retries them."""
    if not out.is_file():
        return {}
    raw = out.read_bytes()
    if raw and not raw.endswith(b"\n"):  # killed mid-write: drop the partial row before appending
        raw = raw[: raw.rfind(b"\n") + 1]
        out.write_bytes(raw)
    done: dict[int, dict] = {}
    for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            i = int(row["index"])
        except (ValueError, KeyError, TypeError):
            raise SealionError(f"{out}:{n}: not a row written by `sealion generate --out`") from None
        if not (0 <= i < len(prompts) and row.get("prompt") == prompts[i]):
            raise SealionError(f"{out}:{n}: row {i} answers another prompt than this run's; pass another --out "
                               "(or delete the file) to start over")
        if not row.get("error"):
            done[i] = row
    return done


def run_generate(args) -> int:
    from .types import ChatRequest, CompletionRequest

    prompts = _read_prompts(args)
    params = sampling_from_args(args)
    out = Path(args.out) if args.out else None
    done = _done_rows(out, prompts) if out else {}
    remote = str(args.model).startswith(("http://", "https://"))
    engine = engine_from_args(args, **({} if remote else {"max_batch_size": args.batch_size}))
    if args.chat:
        warning = base_model_warning(getattr(engine, "tokenizer", None), args.model)
        if warning:
            print(f"sealion generate: {warning}", file=sys.stderr)

    def request(i, p):
        if args.chat:
            return ChatRequest([{"role": "user", "content": p}], params=params, id=str(i))
        return CompletionRequest(p, params=params, id=str(i))

    if len(prompts) == 1 and not args.json and out is None:
        for delta in engine.stream(request(0, prompts[0])):
            sys.stdout.write(delta.text)
            sys.stdout.flush()
            if delta.final and delta.final.error:
                raise SealionError(delta.final.error)
        sys.stdout.write("\n")
        return 0
    todo = [i for i in range(len(prompts)) if i not in done]
    if done:
        print(f"sealion generate: {len(done)} of {len(prompts)} prompts already answered in {out}; "
              f"generating the other {len(todo)}", file=sys.stderr)
    from tqdm import tqdm

    show = sys.stderr.isatty() if args.progress is None else args.progress
    chunk = max(1, args.batch_size)  # results are written a batch at a time, so Ctrl-C keeps finished batches
    sink = open(out, "a", encoding="utf-8") if out else None
    try:
        with tqdm(total=len(prompts), initial=len(done), desc="generate", unit="prompt", disable=not show,
                  file=sys.stderr) as bar:
            for start in range(0, len(todo), chunk):
                ids = todo[start:start + chunk]
                requests = [request(i, prompts[i]) for i in ids]
                run = engine.chat if args.chat else engine.complete
                for i, c in zip(ids, run(requests, progress=bar.update)):
                    row = {"index": i, "prompt": prompts[i], "text": c.content if args.chat else c.text,
                           "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                           "completion_tokens": c.completion_tokens, "error": c.error}
                    if sink:
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                        sink.flush()
                    if args.json:
                        print(json.dumps(row, ensure_ascii=False), flush=True)
                    else:
                        print(f"### {row['prompt']}\n{row['text']}\n", flush=True)
    finally:
        if sink:
            sink.close()
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text for one prompt or a batch of prompts",
        description="Generate text with a model in-process or through an OpenAI-compatible endpoint. One prompt is "
                    "streamed; several (--prompts-file, repeated --prompt, or stdin lines) run as a batch.",
        epilog="example: sealion generate demo --prompt 'Ibu kota Indonesia adalah' --max-new-tokens 8 --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    add_engine_args(p)
    p.add_argument("--prompt", action="append", help="prompt text (repeatable)")
    p.add_argument("--prompts-file", help="a file with one prompt per line ('-' = stdin)")
    p.add_argument("--chat", action="store_true", help="send each prompt as a user turn through the chat template")
    p.add_argument("--batch-size", type=int, default=16, help="rows per forward pass (in-process)")
    p.add_argument("--json", action="store_true", help="print one JSON object per prompt")
    p.add_argument("--out", metavar="FILE.jsonl",
                   help="append one JSON row per finished prompt; rerun with the same file to skip the prompts "
                        "already answered (an interrupted run loses nothing it finished)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on when stderr is a terminal)")
    add_sampling_args(p)
    p.set_defaults(func=run_generate)


def unescape_stop(text: str) -> str:
    """`--stop '\\n\\n'` from a shell means a blank line: read \\n, \\t and \\\\ as the characters they name."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
