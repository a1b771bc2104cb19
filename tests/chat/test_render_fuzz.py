"""Random conversations: the Python renderer, sealion's Jinja template and the official template agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sealion.chat as chat
from sealion.chat.render import render_template

from .conversations import NESTED, NO_PARAMS, WEATHER

from ..conftest import SHARED

OFFICIAL = SHARED / "reference" / "gemma4-templates" / "gemma4_e2b_chat_template_2026-07-09.jinja"
pytestmark = pytest.mark.skipif(not OFFICIAL.exists(), reason="official template fixture (../shared) not available")

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_thoughtful = st.one_of(_text, _text.map(lambda t: f"<|channel>thought\n{t}<channel|>{t}"))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-99, 99), st.floats(-1e3, 1e3, allow_nan=False), _text)
_args = st.dictionaries(st.sampled_from(["city", "Unit", "days", "q", "nested"]),
                        st.recursive(_scalar, lambda x: st.one_of(st.lists(x, max_size=3),
                                                                  st.dictionaries(st.sampled_from(["a", "B"]), x,
                                                                                  max_size=2)), max_leaves=6),
                        max_size=3)
_media = st.sampled_from([{"type": "image", "url": "a.png"}, {"type": "audio", "url": "a.wav"},
                          {"type": "video", "video": "v"}])
_content = st.one_of(_text, st.lists(st.one_of(_text.map(lambda t: {"type": "text", "text": t}), _media),
                                     min_size=1, max_size=3))


@st.composite
def conversations(draw):
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_text)})
    for turn in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(_content)})
        for _ in range(draw(st.integers(0, 2))):  # tool rounds
            n = draw(st.integers(1, 2))
            calls = [{"id": f"c{turn}{k}{len(messages)}", "type": "function", "function": {
                "name": draw(st.sampled_from(["get_weather", "get_time", "book_trip"])), "arguments": draw(_args)}}
                for k in range(n)]
            assistant = {"role": "assistant", "tool_calls": calls}
            if draw(st.booleans()):
                assistant["reasoning_content"] = draw(_text.filter(bool))
            messages.append(assistant)
            if draw(st.booleans()):  # native structured results
                assistant["tool_responses"] = [{"name": c["function"]["name"], "response": draw(_args)}
                                               for c in calls]
            elif draw(st.integers(0, 4)):  # OpenAI tool messages (sometimes none: a pending call)
                for c in calls:
                    messages.append({"role": "tool", "tool_call_id": c["id"],
                                     "content": draw(st.one_of(_text, st.lists(
                                         _text.map(lambda t: {"type": "text", "text": t}), max_size=2)))})
            else:
                break
        if draw(st.booleans()):
            answer = {"role": "assistant", "content": draw(_thoughtful)}
            if draw(st.booleans()):
                answer["reasoning_content"] = draw(_text)
            messages.append(answer)
    return messages


@given(conversations(), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from([None, [WEATHER], [NESTED, NO_PARAMS]]))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_random_conversations_render_identically(messages, thinking, gen_prompt, preserve, tools):
    official = OFFICIAL.read_text(encoding="utf-8")
    kwargs = dict(tools=tools, enable_thinking=thinking, add_generation_prompt=gen_prompt, preserve_thinking=preserve)
    expected = render_template(official, messages, bos_token="<bos>", **kwargs)
    assert chat.render(messages, **kwargs) == expected
    assert chat.render(messages, template=chat.gemma4_template(), **kwargs) == expected
