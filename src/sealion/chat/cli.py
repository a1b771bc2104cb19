"""`sealion chat MODEL`: an interactive chat in the terminal (or over a pipe).

Streaming replies; reasoning shown dimmed and apart; tool calls and their results shown as they happen.
Input: a line is a message; a line ending in `\\` continues on the next line; `\"\"\"` starts and ends a block.
Commands: /reset, /exit, /image PATH, /audio PATH (attach to the next message), /help.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from sealion.engine.cli import DTYPES, one_line_errors
from sealion.errors import ConfigError, SealionError

from .parse import StreamParser
from .render import render
from .tools import Tool, ToolCallRecord, as_tools, call_tool, result_messages

HELP = """commands:
  /reset        forget the conversation (keeps the system prompt)
  /image PATH   attach an image to your next message
  /audio PATH   attach a WAV clip to your next message
  /exit         quit (also Ctrl-D)
input: end a line with \\ to continue it; wrap several lines in \"\"\" ... \"\"\""""


class Style:
    """ANSI styling when writing to a terminal; plain labelled text otherwise."""

    def __init__(self, color: bool):
        self.color = color

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def tool(self, text: str) -> str:
        return self._wrap("36", text)

    def result(self, text: str) -> str:
        return self._wrap("33", text)

    def error(self, text: str) -> str:
        return self._wrap("31", text)

    def prompt(self, text: str) -> str:
        return self._wrap("1", text)


def load_tool_functions(spec: str | None) -> list[Callable]:
    """`module:function,module:function2` (or `path/to/file.py:function`) -> the functions."""
    if not spec:
        return []
    functions = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        module_name, sep, name = item.rpartition(":")
        if not sep or not module_name or not name:
            raise ConfigError(f"--tools: {item!r} is not module:function")
        try:
            if module_name.endswith(".py"):
                path = Path(module_name)
                spec_ = importlib.util.spec_from_file_location(path.stem, path)
                if spec_ is None or spec_.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec_)
                spec_.loader.exec_module(module)
            else:
                module = importlib.import_module(module_name)
        except (ImportError, OSError) as e:
            raise ConfigError(f"--tools: cannot import {module_name}: {e}") from None
        function = getattr(module, name, None)
        if not callable(function):
            raise ConfigError(f"--tools: {module_name} has no function {name!r}")
        functions.append(function)
    return functions


def read_messages(stream: TextIO, ask: Callable[[str], None] | None = None) -> Iterator[str]:
    """User inputs from a stream: `\\`-continued lines and triple-quoted blocks become one message."""
    pending: list[str] = []
    block: list[str] | None = None
    while True:
        if ask:
            ask("... " if pending or block is not None else ">>> ")
        line = stream.readline()
        if not line:
            if block is not None or pending:
                yield "\n".join((block or []) + pending)
            return
        line = line.rstrip("\n").rstrip("\r")
        if block is not None:
            if line.rstrip().endswith('"""'):
                block.append(line.rstrip()[:-3])
                yield "\n".join(block).strip("\n")
                block = None
            else:
                block.append(line)
            continue
        if not pending and line.lstrip().startswith('"""'):
            rest = line.lstrip()[3:]
            if rest.rstrip().endswith('"""') and len(rest.rstrip()) >= 3:
                yield rest.rstrip()[:-3]
            else:
                block = [rest] if rest else []
            continue
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield "\n".join(pending)
        pending = []


@dataclass
class ChatSession:
    engine: Any
    out: TextIO
    style: Style
    system: str | None = None
    think: bool = False
    tools: dict[str, Tool] = field(default_factory=dict)
    params: Any = None
    max_tool_steps: int = 8
    messages: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []
        self.attachments = []

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    # ---------------------------------------------------------------------------------------- commands
    def command(self, line: str) -> bool:
        """Handle a /command; returns False to quit."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/reset":
            self.reset()
            self.write(self.style.dim("(conversation reset)") + "\n")
        elif name in ("/image", "/audio"):
            if not arg:
                self.write(self.style.error(f"usage: {name} PATH") + "\n")
            elif not Path(arg).expanduser().is_file():
                self.write(self.style.error(f"{name}: no such file: {arg}") + "\n")
            else:
                kind = name[1:]
                self.attachments.append({"type": kind, "path": str(Path(arg).expanduser())})
                self.write(self.style.dim(f"({kind} {arg} attached to your next message)") + "\n")
        elif name == "/help":
            self.write(HELP + "\n")
        else:
            self.write(self.style.error(f"unknown command {name}; /help lists them") + "\n")
        return True

    # ---------------------------------------------------------------------------------------- a turn
    def ask(self, text: str) -> str:
        """Send a user message, stream the reply (running tools as asked); returns the final answer."""
        content: Any = text
        if self.attachments:
            content = [*self.attachments, {"type": "text", "text": text}]
            self.attachments = []
        self.messages.append({"role": "user", "content": content})
        schemas = [t.schema for t in self.tools.values()] or None
        for _step in range(self.max_tool_steps):
            parsed, finish = self._stream_reply(schemas)
            assistant = parsed.message()
            if not parsed.tool_calls:
                self.messages.append(assistant)
                if finish == "length":
                    self.write(self.style.dim("[reply cut at --max-new-tokens]") + "\n")
                return parsed.content
            records = [call_tool(self.tools, call) for call in parsed.tool_calls]
            for record in records:
                self._show_result(record)
            self.messages.extend(result_messages(assistant, records))
        self.write(self.style.error(f"[stopped after {self.max_tool_steps} tool rounds]") + "\n")
        return ""

    def _stream_reply(self, schemas):
        from sealion.engine.types import ChatRequest, SamplingParams

        prompt = render(self.messages, tools=schemas, enable_thinking=self.think)
        parser = StreamParser(in_reasoning=prompt.endswith("<|channel>thought\n"))
        request = ChatRequest(messages=[dict(m) for m in self.messages], tools=schemas, enable_thinking=self.think,
                              params=self.params or SamplingParams())
        aliases = _aliases(self.engine)
        state = {"kind": None}
        final = None
        for delta in self.engine.stream(request):
            if delta.text:
                for event in parser.feed(_gemma4_names(delta.text, aliases)):
                    self._show(event, state)
            if delta.final is not None:
                final = delta.final
        for event in parser.finish():
            self._show(event, state)
        parsed = parser.result()
        if final is not None and final.token_ids is None and not parsed.tool_calls and final.tool_calls:
            parsed.tool_calls = list(final.tool_calls)  # an HTTP backend parsed the calls server-side
            for call in parsed.tool_calls:
                self._show_call(call, state)
        if final is not None and final.finish_reason == "error":
            self.write("\n" + self.style.error(f"[error: {final.error}]") + "\n")
        elif state["kind"] is not None:
            self.write("\n")
        return parsed, final.finish_reason if final is not None else "stop"

    def _show(self, event, state) -> None:
        if event.kind == "reasoning":
            if state["kind"] != "reasoning":
                self.write(("\n" if state["kind"] else "") + self.style.dim("[thinking] "))
            self.write(self.style.dim(event.text))
        elif event.kind == "content":
            if state["kind"] not in (None, "content"):
                self.write("\n")
            self.write(event.text)
        elif event.kind == "tool_call":
            self._show_call(event.tool_call, state)
            return
        else:
            if state["kind"] is not None:
                self.write("\n")
            self.write(self.style.error(f"[unreadable tool call: {event.error.message}]"))
        state["kind"] = event.kind

    def _show_call(self, call, state) -> None:
        if state["kind"] is not None:
            self.write("\n")
        fn = call["function"]
        self.write(self.style.tool(f"[tool call] {fn['name']}({fn['arguments']})"))
        state["kind"] = "tool_call"

    def _show_result(self, record: ToolCallRecord) -> None:
        if record.error is not None:
            self.write(self.style.error(f"[tool error] {record.name}: {record.error}") + "\n")
        else:
            shown = record.result if isinstance(record.result, str) else json.dumps(record.result, ensure_ascii=False,
                                                                                     default=str)
            self.write(self.style.result(f"[tool result] {record.name}: {shown}") + "\n")


def _aliases(engine: Any) -> dict[str, str]:
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        return {}
    try:
        from sealion.engine.prompting import token_aliases

        return token_aliases(tokenizer)
    except ImportError:
        return {}


def _gemma4_names(text: str, aliases: dict[str, str]) -> str:
    for g4, own in aliases.items():
        text = text.replace(own, g4)
    return text


def repl(session: ChatSession, stdin: TextIO, interactive: bool) -> int:
    ask = (lambda p: session.write(session.style.prompt(p))) if interactive else None
    if interactive:
        session.write(session.style.dim("Type a message; /help for commands, /exit to quit.") + "\n")
    for message in read_messages(stdin, ask):
        if not message.strip():
            continue
        if message.lstrip().startswith("/") and "\n" not in message:
            if not session.command(message):
                break
            continue
        if not interactive:
            session.write(f">>> {message}\n")
        try:
            session.ask(message)
        except KeyboardInterrupt:
            session.write("\n" + session.style.dim("(interrupted)") + "\n")
            if session.messages and session.messages[-1]["role"] == "user":
                session.messages.pop()
        except SealionError as e:
            session.write(session.style.error(f"error: {e}") + "\n")
            if session.messages and session.messages[-1]["role"] == "user":
                session.messages.pop()
    return 0


def run(args: argparse.Namespace) -> int:
    from sealion.engine import SamplingParams, open_engine
    from sealion.engine.cli import base_model_warning, check_sampling_flags

    params = check_sampling_flags(SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                                 top_p=args.top_p, top_k=args.top_k, seed=args.seed))
    tools = as_tools(load_tool_functions(args.tools))
    remote = str(args.model).startswith(("http://", "https://"))
    kw = {} if remote or args.dtype is None else {"dtype": args.dtype}
    if not remote and getattr(args, "quantize", None):
        kw["quantize"] = args.quantize
    engine = open_engine(args.model, backend=getattr(args, "backend", "auto"), **kw)
    try:
        warning = base_model_warning(getattr(engine, "tokenizer", None), args.model)
        if warning:
            print(f"sealion chat: {warning}", file=sys.stderr)
        color = sys.stdout.isatty() and not args.no_color
        session = ChatSession(engine, sys.stdout, Style(color), system=args.system, think=args.think, tools=tools,
                              params=params)
        return repl(session, sys.stdin, interactive=sys.stdin.isatty())
    finally:
        engine.close()


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "chat",
        help="chat with a model in the terminal (streaming, thinking, tools, images, audio)",
        description=__doc__,
        epilog="example: sealion chat demo --system 'Answer briefly.' --think --tools mytools:get_weather",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("model", help="model reference (demo, a directory, a hub id, a .gguf file) or an http(s):// "
                                 "OpenAI-compatible base URL")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--think", action="store_true", help="let the model reason before answering (shown dimmed)")
    p.add_argument("--tools", metavar="MODULE:FUNC,...",
                   help="Python functions the model may call (module:function or file.py:function, comma-separated)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="longest reply, in tokens (default 1024)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature; 0 = greedy (default: the model's generation_config)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling, in (0, 1] (default: the model's)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens (default: the model's)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed, for repeatable replies")
    p.add_argument("--dtype", default=None, choices=DTYPES, help="weights dtype (default: float32 on CPU)")
    p.add_argument("--no-color", action="store_true", help="plain output even on a terminal")
    from sealion.engine.cli import add_backend_arg, add_quantize_arg

    add_quantize_arg(p)
    add_backend_arg(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Run the chat verb alone (what `sealion chat` does)."""
    parser = argparse.ArgumentParser(prog="sealion")
    register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["chat", *(argv if argv is not None else sys.argv[1:])])
    try:
        return args.func(args)
    except SealionError as e:
        print(f"sealion: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
