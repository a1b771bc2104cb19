"""`sealion generate`: answer one prompt, or a file of prompts as a batch."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import SealionError


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Flags every verb that opens an engine shares."""
    p.add_argument("model", help="model reference: demo, a local HF directory, a hub id, a .gguf file, or an "
                                 "OpenAI-compatible base URL (http://host:port/v1)")
    p.add_argument("--dtype", default=None, help="float32 (CPU default), bfloat16, float16")
    p.add_argument("--api-key", default=None, help="API key for an HTTP endpoint (or OPENAI_API_KEY)")
    p.add_argument("--served-model", default=None, help="model name to request from an HTTP endpoint")
    add_backend_arg(p)


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
    return open_engine(args.model, dtype=args.dtype, **kw)


def sampling_from_args(args):
    from .types import SamplingParams

    if args.max_new_tokens < 1:
        raise SealionError("--max-new-tokens must be at least 1")
    return SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        seed=args.seed, stop=[unescape_stop(x) for x in args.stop],
    )


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


def run_generate(args) -> int:
    from .types import ChatRequest, CompletionRequest

    prompts = _read_prompts(args)
    params = sampling_from_args(args)
    engine = engine_from_args(args, **({} if str(args.model).startswith("http") else {"max_batch_size": args.batch_size}))

    def request(i, p):
        if args.chat:
            return ChatRequest([{"role": "user", "content": p}], params=params, id=str(i))
        return CompletionRequest(p, params=params, id=str(i))

    requests = [request(i, p) for i, p in enumerate(prompts)]
    if len(requests) == 1 and not args.json:
        for delta in engine.stream(requests[0]):
            sys.stdout.write(delta.text)
            sys.stdout.flush()
            if delta.final and delta.final.error:
                raise SealionError(delta.final.error)
        sys.stdout.write("\n")
        return 0
    from tqdm import tqdm

    with tqdm(total=len(requests), desc="generate", unit="prompt", disable=not sys.stderr.isatty()) as bar:
        results = engine.chat(requests, progress=bar.update) if args.chat else engine.complete(
            requests, progress=bar.update
        )
    for prompt, c in zip(prompts, results):
        if args.json:
            print(json.dumps({"prompt": prompt, "text": c.content if args.chat else c.text,
                              "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                              "completion_tokens": c.completion_tokens, "error": c.error}, ensure_ascii=False))
        else:
            print(f"### {prompt}\n{c.content if args.chat else c.text}\n")
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
    add_engine_args(p)
    p.add_argument("--prompt", action="append", help="prompt text (repeatable)")
    p.add_argument("--prompts-file", help="a file with one prompt per line ('-' = stdin)")
    p.add_argument("--chat", action="store_true", help="send each prompt as a user turn through the chat template")
    p.add_argument("--batch-size", type=int, default=16, help="rows per forward pass (in-process)")
    p.add_argument("--json", action="store_true", help="print one JSON object per prompt")
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
