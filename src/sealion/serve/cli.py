"""`sealion serve MODEL`: the OpenAI-compatible server."""

from __future__ import annotations

import argparse
import os
import sys

from sealion.engine.cli import DTYPES, one_line_errors


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="OpenAI-compatible server (chat, completions) over the engine core",
        description="Serve a model over OpenAI's HTTP API: /v1/chat/completions (tools, thinking, streaming, "
        "logprobs), /v1/completions (token-id prompts, echo, prompt_logprobs), /tokenize, /detokenize, /v1/models, "
        "/health, /metrics. Requests run in the engine core that `sealion generate` uses: concurrent requests "
        "share forward passes and repeated prompt prefixes are computed once. Binds "
        "127.0.0.1 unless --host says otherwise; set an API key before exposing it.",
        epilog="example: sealion serve demo --port 8000 --max-batch 16\n"
        "         curl localhost:8000/v1/completions -H 'Content-Type: application/json' "
        "-d '{\"model\": \"demo\", \"prompt\": \"Ibu kota Indonesia adalah\", \"max_tokens\": 8}'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("model", help="model reference: a local HF directory, a hub id, a .gguf file, or 'demo'")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port, 0-65535 (default 8000; 0 = any free)")
    p.add_argument("--api-key", default=os.environ.get("SEALION_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $SEALION_API_KEY)")
    p.add_argument("--served-model-name", default=None, help="the model id clients send (default: MODEL)")
    p.add_argument("--max-batch", type=int, default=32, help="requests decoded together (default 32)")
    p.add_argument("--max-queue", type=int, default=256, help="requests waiting beyond the batch before 429")
    p.add_argument("--max-model-len", type=int, default=None, help="context window; default: the model's")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="longest prompt accepted (400 beyond)")
    p.add_argument("--default-max-tokens", type=int, default=1024,
                   help="max_tokens when a request gives none (default 1024)")
    p.add_argument("--prefix-cache-mb", type=float, default=256.0,
                   help="memory for the automatic prefix cache shared by requests, MiB (0: off; default 256)")
    p.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request, queueing included")
    p.add_argument("--max-body-mb", type=float, default=4.0, help="largest request body in MiB (413 beyond)")
    p.add_argument("--allow-media-paths", action="store_true",
                   help="accept local file paths and http(s) URLs in image_url parts (default: base64 data URLs only)")
    p.add_argument("--max-media-mb", type=float, default=16.0,
                   help="largest image or audio clip in MiB, decoded (default 16; 400 beyond)")
    p.add_argument("--max-media-parts", type=int, default=8,
                   help="image and audio parts in one request (default 8; 400 beyond)")
    p.add_argument("--text-only", action="store_true",
                   help="load a multimodal checkpoint without its vision and audio towers (refuses media parts)")
    p.add_argument("--dtype", default=None, choices=DTYPES, help="default: the loader's choice (float32 on CPU)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: the loader's choice)")
    from sealion.engine.cli import add_quantize_arg

    add_quantize_arg(p)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=run)


def port_number(text: str) -> int:
    """argparse type: a TCP port (0 = any free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {port}")
    return port


def run(args) -> int:
    from sealion.errors import ConfigError

    from .app import ServeConfig, create_app
    from .loading import load_served
    from sealion.engine.cli import base_model_warning, check_sampling_flags
    from sealion.engine.types import SamplingParams

    from .runner import bind_socket, serve_forever

    check_sampling_flags(SamplingParams(max_new_tokens=args.default_max_tokens),
                         {"max_tokens": "--default-max-tokens"})
    for name in ("max_batch", "max_queue"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive (got {getattr(args, name)})")
    if args.request_timeout <= 0 or args.max_body_mb <= 0:
        raise ConfigError("--request-timeout and --max-body-mb must be positive")
    if args.max_media_mb <= 0 or args.max_media_parts < 0:
        raise ConfigError("--max-media-mb must be positive and --max-media-parts 0 or more")
    if args.prefix_cache_mb < 0:
        raise ConfigError(f"--prefix-cache-mb must be 0 (off) or more, got {args.prefix_cache_mb:g}")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"sealion serve: warning: binding {args.host} without --api-key; anyone who can reach this port "
              "can use the model", file=sys.stderr)
    sock = bind_socket(args.host, args.port)  # a port in use is found before the model loads
    loaded = load_served(args.model, dtype=args.dtype, device=args.device, quantize=getattr(args, "quantize", None),
                         text_only=args.text_only)
    tokenizer = loaded.tokenizer
    warning = base_model_warning(tokenizer, args.model)
    if warning:
        print(f"sealion serve: {warning.split('; chat')[0]}; /v1/chat/completions may answer '' or echo turn "
              "markers: send it plain prompts on /v1/completions", file=sys.stderr)
    config = ServeConfig(
        model_name=args.served_model_name or args.model,
        api_key=args.api_key or None,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_model_len=args.max_model_len,
        max_prompt_tokens=args.max_prompt_tokens,
        default_max_tokens=args.default_max_tokens,
        request_timeout=args.request_timeout,
        prefix_cache_mb=args.prefix_cache_mb,
        allow_media_paths=args.allow_media_paths,
        max_media_bytes=int(args.max_media_mb * 1024 * 1024),
        max_media_parts=args.max_media_parts,
    )
    app = create_app(loaded, config=config)
    port = sock.getsockname()[1]
    print(f"sealion serve: {config.model_name} on http://{args.host}:{port}/v1 "
          f"(max batch {config.max_batch}{', images and audio' if loaded.processor is not None else ''}"
          f"{', API key required' if config.api_key else ''})", file=sys.stderr)
    serve_forever(app, args.host, port, log_level=args.log_level, sock=sock)
    return 0
