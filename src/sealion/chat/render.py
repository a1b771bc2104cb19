"""Turning a conversation into the prompt string.

`render` uses a given chat template (the checkpoint's own, run in a sandboxed Jinja environment set up the way
transformers sets it up), else the package's own Python renderer for Gemma 4. Both get normalised messages
(see `messages.normalize`) and OpenAI-shaped tool schemas (see `tools.tool_schema`).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .gemma4 import render_gemma4
from .messages import ChatFormatError, normalize

GEMMA4_TEMPLATE_PATH = Path(__file__).with_name("gemma4_chat_template.jinja")


def gemma4_template() -> str:
    """sealion's own Gemma 4 chat template (Jinja); renders like the official 2026-07-09 template.

    Attach it as a tokenizer's `chat_template` so `apply_chat_template` prompts like Gemma 4 E2B-it.
    """
    return GEMMA4_TEMPLATE_PATH.read_text(encoding="utf-8")


def is_gemma4_template(template: str | None) -> bool:
    """Whether a chat template writes Gemma 4 turns (`<|turn>`), as opposed to Gemma 3 or others."""
    return bool(template) and "<|turn>" in template and "<turn|>" in template


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # transformers' tojson: no HTML escaping, options passed through
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def jinja_environment() -> ImmutableSandboxedEnvironment:
    """A sandbox configured like transformers' chat-template environment."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    return jinja_environment().from_string(template)


def render_template(template: str, messages: Sequence[Mapping[str, Any]], **variables: Any) -> str:
    """Render a Jinja chat template as-is (no normalisation). Template errors become ChatFormatError."""
    try:
        compiled = _compile(template)
    except jinja2.TemplateSyntaxError as e:
        raise ChatFormatError(f"chat template: syntax error at line {e.lineno}: {e.message}") from None
    try:
        return compiled.render(messages=list(messages), **variables)
    except jinja2.TemplateError as e:
        raise ChatFormatError(f"chat template: {e}") from None


def normalize_tools(tools: Sequence[Any] | None) -> list[dict[str, Any]] | None:
    """Tools as OpenAI `{"type": "function", "function": {...}}` dicts; Python functions get a schema."""
    if not tools:
        return None
    from .schema import tool_schema

    return [tool_schema(tool) for tool in tools]


def render(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Any] | None = None,
    enable_thinking: bool = False,
    add_generation_prompt: bool = True,
    template: str | Path | None = None,
    bos_token: str = "<bos>",
    preserve_thinking: bool = False,
    **template_kwargs: Any,
) -> str:
    """The prompt text for `messages` (OpenAI shape), ready to tokenize without adding special tokens.

    `template`: a chat template string (or a path to one); None uses sealion's own Gemma 4 renderer.
    `tools`: OpenAI tool schemas, bare function schemas, or Python functions.
    """
    clean = normalize(list(messages))
    schemas = normalize_tools(tools)
    if template is None:
        if template_kwargs:
            raise ChatFormatError(f"unknown render option(s) {sorted(template_kwargs)} for the built-in renderer")
        return render_gemma4(clean, tools=schemas, enable_thinking=enable_thinking,
                             add_generation_prompt=add_generation_prompt, bos_token=bos_token,
                             preserve_thinking=preserve_thinking)
    if isinstance(template, Path):
        template = template.read_text(encoding="utf-8")
    return render_template(template, clean, tools=schemas, enable_thinking=enable_thinking,
                           add_generation_prompt=add_generation_prompt, bos_token=bos_token,
                           preserve_thinking=preserve_thinking, **template_kwargs)


def tokenizer_template(tokenizer: Any) -> str | None:
    """The tokenizer's default chat template text, if it has one."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, Mapping):
        template = template.get("default")
    return template if isinstance(template, str) else None


def render_for(tokenizer: Any, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> str:
    """Render with the tokenizer's chat template when it is a Gemma 4 template, else sealion's own renderer.

    Checkpoints keep the template revision they were trained with, so theirs wins; a Gemma 3 (or missing)
    template cannot express thinking or tools the Gemma 4 way, so those get the built-in Gemma 4 format.
    """
    template = tokenizer_template(tokenizer)
    if "bos_token" not in kwargs:
        kwargs["bos_token"] = getattr(tokenizer, "bos_token", None) or "<bos>"
    if is_gemma4_template(template):
        return render(messages, template=template, **kwargs)
    return render(messages, **kwargs)
