"""The package's renderer and its own Jinja template against Google's official 2026-07-09 template."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import sealion.chat as chat
from sealion.chat.render import render_template

from .conversations import CASES

OFFICIAL = Path(__file__).resolve().parents[3] / "shared" / "reference" / "gemma4-templates" / "gemma4_e2b_chat_template_2026-07-09.jinja"


@pytest.fixture(scope="module")
def official() -> str:
    if not OFFICIAL.exists():
        pytest.skip("official template fixture (../shared) not available")
    return OFFICIAL.read_text(encoding="utf-8")


def _official_render(template: str, messages, kwargs) -> str:
    """The official template through transformers' own Jinja machinery (trim/lstrip blocks, loopcontrols...)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    options = dict(kwargs)
    tools = options.pop("tools", None)
    add = options.pop("add_generation_prompt", True)
    rendered, _ = render_jinja_template(conversations=[copy.deepcopy(messages)], tools=tools, chat_template=template,
                                        add_generation_prompt=add, bos_token="<bos>", **options)
    return rendered[0]


def test_enough_conversations():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name,messages,kwargs", CASES, ids=[c[0] for c in CASES])
def test_own_renderer_matches_official(official, name, messages, kwargs):
    expected = _official_render(official, messages, kwargs)
    assert chat.render(messages, **kwargs) == expected


@pytest.mark.parametrize("name,messages,kwargs", CASES, ids=[c[0] for c in CASES])
def test_own_template_matches_official(official, name, messages, kwargs):
    expected = _official_render(official, messages, kwargs)
    assert chat.render(messages, template=chat.gemma4_template(), **kwargs) == expected
    # the official text through sealion's sandbox is the same as through transformers'
    assert render_template(official, messages, bos_token="<bos>", **{"add_generation_prompt": True, **kwargs}) \
        == expected


def test_own_template_through_transformers(official):
    """The lead's tiny models carry gemma4_template(); apply_chat_template-style rendering must agree."""
    name, messages, kwargs = next(c for c in CASES if c[0] == "tool_round_trip_thinking")
    assert _official_render(chat.gemma4_template(), messages, kwargs) == _official_render(official, messages, kwargs)


def test_documented_examples():
    assert chat.render([{"role": "user", "content": "Hi"}]) == "<bos><|turn>user\nHi<turn|>\n<|turn>model\n"
    assert chat.render([{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
                       enable_thinking=True) == \
        "<bos><|turn>system\n<|think|>\nS<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n"


def test_string_arguments_normalized_to_match_official(official):
    """OpenAI history sends arguments as JSON strings; the official template raises, render() converts."""
    messages = [{"role": "user", "content": "weather?"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                    "name": "get_weather", "arguments": '{"city": "Hanoi", "days": [1, 2]}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "31C"}]
    with pytest.raises(Exception, match="arguments must be"):
        _official_render(official, messages, {})
    text = chat.render(messages)
    assert "<|tool_call>call:get_weather{city:<|\"|>Hanoi<|\"|>,days:[1,2]}<tool_call|>" in text
    assert text == _official_render(official, chat.normalize(messages), {})


def test_content_with_calls_is_split(official):
    """Content + tool_calls in one message: the official template closes the turn after the tool result;
    normalize() splits it so the model continues its turn."""
    messages = [{"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [{"id": "c1", "type": "function",
                 "function": {"name": "get_weather", "arguments": {"city": "Hanoi"}}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "31C"}]
    broken = _official_render(official, messages, {})
    assert broken.endswith("Let me check.<turn|>\n")
    fixed = chat.render(messages)
    assert fixed.endswith("<|turn>model\nLet me check.<|tool_call>call:get_weather{city:<|\"|>Hanoi<|\"|>}"
                          "<tool_call|><|tool_response>response:get_weather{value:<|\"|>31C<|\"|>}<tool_response|>")


def test_python_function_tools_render_like_schema():
    def get_weather(city: str, unit: str = "c") -> str:
        """Get current weather.

        Args:
            city: City name.
            unit: Unit.
        """
        return ""

    text = chat.render([{"role": "user", "content": "Hi"}], tools=[get_weather])
    assert "<|tool>declaration:get_weather{description:<|\"|>Get current weather.<|\"|>,parameters:{properties:{" \
           "city:{description:<|\"|>City name.<|\"|>,type:<|\"|>STRING<|\"|>}" in text


def test_template_error_is_sealion_error():
    with pytest.raises(chat.ChatFormatError, match="chat template"):
        chat.render([{"role": "user", "content": "x"}], template="{{ raise_exception('nope') }}")


def test_render_for_picks_template():
    class Tok:
        bos_token = "<bos>"
        chat_template = "{{ bos_token }}GEMMA3<start_of_turn>"

    messages = [{"role": "user", "content": "Hi"}]
    assert chat.render_for(Tok(), messages) == chat.render(messages)  # Gemma 3 template: own renderer

    class Tok4:
        bos_token = "<bos>"
        chat_template = "{{ bos_token }}<|turn>custom<turn|>"

    assert chat.render_for(Tok4(), messages) == "<bos><|turn>custom<turn|>"


@pytest.mark.demo
def test_render_for_demo_tokenizer(demo_dir):
    """The demo model (Gemma 3 270m pretrained) carries no Gemma 4 template: render_for uses the built-in one."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_dir)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    assert not chat.is_gemma4_template(tok.chat_template if isinstance(tok.chat_template, str) else None)
    assert chat.render_for(tok, messages, enable_thinking=True) == chat.render(messages, enable_thinking=True,
                                                                               bos_token=tok.bos_token)
