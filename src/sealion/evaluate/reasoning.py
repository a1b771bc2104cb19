"""Separate a response's reasoning from its answer before extraction.

One function, `split_reasoning`, so the chat layer's parser (`sealion.chat.parse`) can take over in one place.
A response cut off inside its reasoning (an opening marker without its close) has an empty answer.
"""

from __future__ import annotations

import re

# (open, close) markers: Gemma 4 thinking channel, and the <think> convention of other reasoning models.
_MARKERS = (("<|channel>", "<channel|>"), ("<think>", "</think>"))
# end-of-turn tokens that may survive decoding with special tokens kept
_TRAILERS = re.compile(r"(?:<turn\|>|<end_of_turn>|<eos>|<\|im_end\|>|<\|eot_id\|>)\s*$")


def _chat_parse():
    try:
        from ..chat import parse  # the chat layer's parser, when it exists
    except ImportError:
        return None
    return parse


def split_reasoning(text: str) -> tuple[str, str | None]:
    """-> (answer, reasoning). Reasoning blocks are removed wherever they occur; an unclosed block at the end
    (generation stopped mid-thought) makes the answer empty. A response with only a closing marker (the opening
    one was part of the prompt) keeps what follows the last close."""
    if text is None:
        return "", None
    reasoning: list[str] = []
    answer = text
    parse = _chat_parse()
    if parse is not None and "<|channel>" in answer:  # Gemma 4 channels: the chat layer's parser
        parsed = parse(answer)
        if parsed.reasoning:
            reasoning.append(parsed.reasoning.strip())
        truncated = answer.rfind("<|channel>") > answer.rfind("<channel|>")
        answer = parsed.content or ""
        if truncated:
            return _finish("", reasoning, truncated=True)
    for open_m, close_m in _MARKERS:
        # whole blocks
        while True:
            i = answer.find(open_m)
            if i < 0:
                break
            j = answer.find(close_m, i + len(open_m))
            if j < 0:  # truncated inside reasoning
                reasoning.append(_clean_thought(answer[i + len(open_m):]))
                answer = answer[:i]
                return _finish(answer, reasoning, truncated=True)
            reasoning.append(_clean_thought(answer[i + len(open_m):j]))
            answer = answer[:i] + answer[j + len(close_m):]
        # a dangling close: the prompt opened the block (enable_thinking prefill)
        k = answer.rfind(close_m)
        if k >= 0:
            reasoning.append(_clean_thought(answer[:k]))
            answer = answer[k + len(close_m):]
    return _finish(answer, reasoning, truncated=False)


def _clean_thought(s: str) -> str:
    s = s[len("thought"):] if s.startswith("thought") else s
    return s.strip()


def _finish(answer: str, reasoning: list[str], truncated: bool) -> tuple[str, str | None]:
    answer = _TRAILERS.sub("", answer).strip()
    if truncated:
        answer = ""
    r = "\n".join(x for x in reasoning if x) if reasoning else None
    return answer, r
