"""Conversations -> token ids: the one renderer that every path calls (engine, server, distillation and recipe
data, evaluation through the engine).

`render.py` writes the prompt as text; this module turns it into ids for one tokenizer, with two rules:

* Gemma 4 control names are mapped to this tokenizer's special tokens at the same ids. The demo tokenizer is
  Gemma 3's, whose `<start_of_turn>` (105) and `<end_of_turn>` (106) are Gemma 4's `<|turn>` and `<turn|>`.
* Text inside messages never becomes a control token. Every special-token name typed in a message, a tool result
  or a tool schema is swapped for a private-use placeholder before rendering, so only the renderer's own
  structure produces special tokens. The placeholders are then put back as text and tokenized with special-token
  parsing off. A conversation without such text takes the plain path, so its ids are exactly the tokenizer's ids
  for the rendered text.

A checkpoint whose chat template is not a Gemma one (and whose vocabulary is not Gemma's) keeps its template, under
the same placeholder rule.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..models.tokenizers import GEMMA4_SPECIAL_TOKENS
from .gemma4 import strip_thoughts
from .messages import ChatFormatError, normalize
from .render import is_gemma4_template, normalize_tools, render, tokenizer_template

TURN_END_ID = 106  # `<turn|>` (Gemma 3: `<end_of_turn>`)
TOOL_RESPONSE_ID = 50  # `<|tool_response>`: the model stops here after writing a tool call
_PLACEHOLDER_BASE = 0xF0000  # Supplementary Private Use Area-A: never produced by a renderer


@dataclass(frozen=True)
class Prompt:
    """A rendered conversation: its token ids and its text (control tokens in this tokenizer's names, user text
    as typed) for display, logging and telling the reply parser how the prompt ends."""

    ids: list[int]
    text: str


@dataclass(frozen=True)
class TrainingIds:
    """A whole conversation as ids, with `mask[t]` True where token t is written by the assistant (its content,
    thoughts, tool calls and the turn-end / tool-response token that ends its turn; never a role header)."""

    ids: list[int]
    mask: list[bool]
    untrained_turns: int  # assistant turns whose rendering the template rewrites later (not learnable as-is)


# ------------------------------------------------------------------------------------------- the tokenizer's names


class _Vocabulary:
    """What this module needs to know about one tokenizer, computed once."""

    def __init__(self, tokenizer: Any):
        self.aliases = _aliases(tokenizer)  # Gemma 4 name -> this tokenizer's name
        decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
        specials = {t.content for t in decoder.values() if getattr(t, "special", False)}
        specials.update(getattr(tokenizer, "all_special_tokens", None) or [])
        self.specials = {s for s in specials if s}
        # a message must not spell a tokenizer special, nor a Gemma 4 name that the alias map would turn into one
        self.forbidden = _Matcher(self.specials | set(self.aliases))
        self.structure = _Matcher(self.specials)
        self.gemma_ids = _has_gemma_ids(tokenizer)


_VOCABULARIES: dict[int, tuple[Any, _Vocabulary]] = {}


def _vocabulary(tokenizer: Any) -> _Vocabulary:
    key = id(tokenizer)
    cached = _VOCABULARIES.get(key)
    if cached is not None and cached[0]() is tokenizer:
        return cached[1]
    vocab = _Vocabulary(tokenizer)
    try:
        ref = weakref.ref(tokenizer)
    except TypeError:  # an object that takes no weak references: do not cache it
        return vocab
    _VOCABULARIES[key] = (ref, vocab)
    return vocab


def _aliases(tokenizer: Any) -> dict[str, str]:
    try:
        if len(tokenizer) <= max(GEMMA4_SPECIAL_TOKENS):
            return {}
        names = tokenizer.convert_ids_to_tokens(list(GEMMA4_SPECIAL_TOKENS))
    except (TypeError, AttributeError):
        return {}
    return {g4: own for g4, own in zip(GEMMA4_SPECIAL_TOKENS.values(), names) if own and own != g4}


def _has_gemma_ids(tokenizer: Any) -> bool:
    try:
        return tokenizer.convert_ids_to_tokens(TURN_END_ID) in ("<turn|>", "<end_of_turn>")
    except Exception:  # a tokenizer too small for id 106, or a stand-in without the method
        return False


def control_aliases(tokenizer: Any) -> dict[str, str]:
    """Gemma 4 control name -> this tokenizer's name, for the control ids whose names differ (empty for a Gemma 4
    tokenizer; `<|turn>` -> `<start_of_turn>` and so on for the demo's Gemma 3 tokenizer)."""
    return dict(_vocabulary(tokenizer).aliases)


def to_tokenizer_names(text: str, aliases: Mapping[str, str]) -> str:
    for g4, own in aliases.items():
        text = text.replace(g4, own)
    return text


def to_gemma4_names(text: str, aliases: Mapping[str, str]) -> str:
    for g4, own in aliases.items():
        text = text.replace(own, g4)
    return text


def has_gemma4_ids(tokenizer: Any) -> bool:
    """Whether ids 105/106 are turn tokens (Gemma 3 or Gemma 4 vocabularies)."""
    return _vocabulary(tokenizer).gemma_ids


def turn_end_id(tokenizer: Any) -> int | None:
    """The id that ends a turn (`<turn|>`, 106) when this is a Gemma vocabulary, else None."""
    return TURN_END_ID if has_gemma4_ids(tokenizer) else None


def chat_stop_ids(tokenizer: Any) -> list[int]:
    """Ids that end an assistant reply besides EOS: the turn end and, after a tool call, the tool-response opener."""
    return [TURN_END_ID, TOOL_RESPONSE_ID] if has_gemma4_ids(tokenizer) else []


class _Matcher:
    """Leftmost-longest occurrences of a fixed set of strings (as the tokenizer matches its added tokens)."""

    def __init__(self, names: set[str]):
        self.names = names
        lengths: dict[str, set[int]] = {}
        for name in names:
            lengths.setdefault(name[0], set()).add(len(name))
        self.lengths = {c: sorted(ls, reverse=True) for c, ls in lengths.items()}
        self.starts = re.compile("|".join(re.escape(c) for c in sorted(self.lengths))) if names else None

    def find(self, text: str) -> list[tuple[int, int]]:
        if self.starts is None:
            return []
        spans, pos = [], 0
        for m in self.starts.finditer(text):
            i = m.start()
            if i < pos:
                continue
            for n in self.lengths[text[i]]:
                if text[i:i + n] in self.names:
                    spans.append((i, i + n))
                    pos = i + n
                    break
        return spans


# ------------------------------------------------------------------------------------------- placeholders


class _Placeholders:
    """Swaps control names typed in messages for private-use characters, and back."""

    def __init__(self, matcher: _Matcher, strings: list[str]):
        self.matcher = matcher
        found = sorted({s[a:b] for s in strings for a, b in matcher.find(s)})
        taken = {ch for s in strings for ch in s if ord(ch) >= _PLACEHOLDER_BASE} if found else set()
        self.to_char: dict[str, str] = {}
        code = _PLACEHOLDER_BASE
        for name in found:
            while chr(code) in taken:
                code += 1
            self.to_char[name] = chr(code)
            code += 1
        self.to_name = {c: n for n, c in self.to_char.items()}

    def __bool__(self) -> bool:
        return bool(self.to_char)

    def hide(self, text: str) -> str:
        spans = self.matcher.find(text)
        if not spans:
            return text
        out, pos = [], 0
        for a, b in spans:
            out += [text[pos:a], self.to_char[text[a:b]]]
            pos = b
        out.append(text[pos:])
        return "".join(out)

    def restore(self, text: str) -> str:
        if not self.to_name:
            return text
        return "".join(self.to_name.get(ch, ch) for ch in text)


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)


def _hide(value: Any, placeholders: _Placeholders) -> Any:
    if isinstance(value, str):
        return placeholders.hide(value)
    if isinstance(value, Mapping):
        return {_hide(k, placeholders): _hide(v, placeholders) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hide(v, placeholders) for v in value]
    return value


def _without_thoughts(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """Assistant content with its `<|channel>…<channel|>` spans dropped, as the Gemma 4 renderer does; done before
    the placeholders hide those markers from it."""
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": strip_thoughts(content)}
    if isinstance(content, list):
        parts = [{**p, "text": strip_thoughts(p["text"])} if isinstance(p, Mapping) and p.get("type") == "text"
                 and isinstance(p.get("text"), str) else p for p in content]
        return {**message, "content": parts}
    return message


# ------------------------------------------------------------------------------------------- rendering


def _template_for(tokenizer: Any) -> tuple[str | None, bool]:
    """(template to render with or None for the built-in Gemma 4 renderer, whether Gemma 4 names are used).

    A checkpoint's Gemma 4 template wins; any Gemma vocabulary without one gets the package's renderer (names
    mapped to this tokenizer's); a non-Gemma model keeps its own template."""
    template = tokenizer_template(tokenizer)
    if is_gemma4_template(template):
        return template, True
    if template and not has_gemma4_ids(tokenizer):
        return template, False
    return None, True


def render_prompt(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Any] | None = None,
    enable_thinking: bool = False,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
    expand: Callable[[str], str] | None = None,
    **template_kwargs: Any,
) -> Prompt:
    """The prompt for `messages` (OpenAI shape) as this tokenizer's ids and as text. See the module docstring.

    `continue_final_message`: end the prompt right after the final message's text (the model continues it, as in
    transformers and vLLM) instead of closing its turn; needs `add_generation_prompt=False`.
    `expand`: rewrites the rendered text (Gemma 4 names, typed control names still hidden) before it is encoded;
    the media layer uses it to widen the renderer's own `<|image|>` / `<|audio|>` markers into soft-token spans, so
    a marker typed in a message stays text.
    `template_kwargs` go to a checkpoint's template (the built-in renderer refuses unknown ones)."""
    if continue_final_message and add_generation_prompt:
        raise ChatFormatError("continue_final_message and add_generation_prompt cannot both be true")
    vocab = _vocabulary(tokenizer)
    template, gemma = _template_for(tokenizer)
    messages = list(messages)
    if gemma:
        messages = [_without_thoughts(m) if m.get("role") == "assistant" else m for m in messages]
    schemas = normalize_tools(tools)
    strings: list[str] = []
    _strings(messages, strings)
    _strings(schemas, strings)
    placeholders = _Placeholders(vocab.forbidden, strings)
    if placeholders:
        messages = _hide(messages, placeholders)
        schemas = _hide(schemas, placeholders)
    text = render(messages, tools=schemas, enable_thinking=enable_thinking,
                  add_generation_prompt=add_generation_prompt, template=template,
                  bos_token=getattr(tokenizer, "bos_token", None) or "", **template_kwargs)
    if continue_final_message:
        text = _cut_after_final_message(text, messages)
    if expand is not None:
        text = expand(text)
    if gemma:
        text = to_tokenizer_names(text, vocab.aliases)
    ids = _encode(tokenizer, vocab, text, placeholders)
    return Prompt(ids=ids, text=placeholders.restore(text))


def render_ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[int]:
    """`render_prompt(...).ids`: the token ids every path feeds the model."""
    return render_prompt(tokenizer, messages, **kwargs).ids


def render_text(tokenizer: Any, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> str:
    """`render_prompt(...).text`: the same prompt as text, for display and logging (never re-tokenize it)."""
    return render_prompt(tokenizer, messages, **kwargs).text


def _cut_after_final_message(text: str, messages: list[Mapping[str, Any]]) -> str:
    content = messages[-1].get("content") if messages else None
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        content = texts[-1] if texts else None
    final = content.strip() if isinstance(content, str) else ""
    at = text.rfind(final) if final else -1
    if at < 0:
        raise ChatFormatError("continue_final_message: the final message has no text to continue")
    return text[: at + len(final)]


def _encode(tokenizer: Any, vocab: _Vocabulary, text: str, placeholders: _Placeholders) -> list[int]:
    if not placeholders:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        ids = _encode_segments(tokenizer, vocab, text, placeholders)
    bos_id, bos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "bos_token", None)
    if bos_id is not None and bos and not text.startswith(bos) and (not ids or ids[0] != bos_id):
        ids.insert(0, bos_id)  # a template that leaves <bos> to the tokenizer: the model still needs it
    return ids


def _encode_segments(tokenizer: Any, vocab: _Vocabulary, text: str, placeholders: _Placeholders) -> list[int]:
    """The structure's control tokens as ids; the text between them (placeholders restored) with special-token
    parsing off. The tokenizer splits at special tokens before anything else, so for text without placeholders
    this equals the plain tokenization."""
    pieces: list[str | int] = []
    pos = 0
    for a, b in vocab.structure.find(text):
        if a > pos:
            pieces.append(placeholders.restore(text[pos:a]))
        pieces.append(tokenizer.convert_tokens_to_ids(text[a:b]))
        pos = b
    if pos < len(text):
        pieces.append(placeholders.restore(text[pos:]))
    texts = [p for p in pieces if isinstance(p, str)]
    encoded = iter(tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]) if texts \
        else iter(())
    ids: list[int] = []
    for p in pieces:
        ids.extend(next(encoded) if isinstance(p, str) else [p])
    return ids


# ------------------------------------------------------------------------------------------- training data


def render_training(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Any] | None = None,
    enable_thinking: bool | None = None,
) -> TrainingIds:
    """A whole conversation as ids with an assistant-only mask, for supervised and distillation training.

    The mask is found on ids: for each assistant turn, the prompt the engine would send before it (the history
    with the generation prompt) and the history including the turn are rendered; the ids between them are what
    the model writes, its trailing newline excepted (the template's, not the model's). So the training prompt of
    each turn is exactly the engine's prompt, and the turn's end (id 106, or 50 after a tool call) is learned.
    `enable_thinking` defaults to whether any assistant message carries reasoning."""
    messages = normalize(list(messages))  # turns as the renderer sees them (e.g. content and calls split)
    if enable_thinking is None:
        enable_thinking = any(m.get("reasoning_content") or m.get("reasoning") or m.get("thinking")
                              for m in messages if m.get("role") == "assistant")
    kw = {"tools": tools, "enable_thinking": enable_thinking}
    full = render_ids(tokenizer, messages, add_generation_prompt=False, **kw)
    mask = [False] * len(full)
    untrained = 0
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        before = render_ids(tokenizer, messages[:i], add_generation_prompt=True, **kw) if i else []
        upto = render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False, **kw)
        if upto[: len(before)] != before or full[: len(upto)] != upto:
            untrained += 1  # the template rewrites this turn later (e.g. drops its thoughts)
            continue
        end = len(upto)
        while end > len(before) and not tokenizer.decode(upto[end - 1 : end]).strip():
            end -= 1
        mask[len(before):end] = [True] * (end - len(before))
    if mask:
        mask[0] = False
    return TrainingIds(ids=full, mask=mask, untrained_turns=untrained)
