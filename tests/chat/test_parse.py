"""Output parsing: batch, streaming at every split point, and Gemma-syntax argument round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sealion.chat as chat
from sealion.chat.dsl import QUOTE, DSLError, format_value, parse_arguments, parse_value
from sealion.chat.parse import ChatEvent, StreamParser, counting_ids, parse

Q = QUOTE

# recorded-style outputs (what the model emits, decoded with special tokens kept)
RECORDED = {
    "plain": "Hello there!<turn|>",
    "thinking": "<|channel>thought\nLet me think.\n<channel|>Answer 42.<turn|>",
    "thinking_eos": "<|channel>thought\nA < B and C > D.\n<channel|>\nThe answer: x<y.<eos>",
    "cut_mid_thought": "<|channel>thought\nStep 1: add the numbers, then",
    "cut_in_label": "<|channel>thou",
    "empty_thought": "<|channel>thought\n<channel|>Hi.<turn|>",
    "bare_label": "thought\nJust the answer.",
    "one_call": f"<|tool_call>call:get_weather{{city:{Q}Hanoi{Q}}}<tool_call|><|tool_response>",
    "thought_then_call": f"<|channel>thought\nneed weather\n<channel|><|tool_call>call:get_weather{{city:{Q}Ha Noi{Q},"
                         f"unit:{Q}c{Q}}}<tool_call|><|tool_response>",
    "parallel": f"<|tool_call>call:a{{x:1}}<tool_call|><|tool_call>call:b.v-2{{y:[1,2.5,-3e2],z:null}}<tool_call|>",
    "tricky_strings": f"<|tool_call>call:note{{text:{Q}a, b}} {{c}} \"q\" <tool_call|> <turn|>\nline2 สวัสดี{Q},"
                      f"nested:{{k:{{deep:[true,false,{Q}{Q}]}}}}}}<tool_call|>",
    "content_then_call": f"Let me check.<|tool_call>call:lookup{{q:{Q}x{Q}}}<tool_call|>",
    "malformed_call": f"<|tool_call>call:broken{{a:{Q}unterminated}}<tool_call|>After.",
    "no_name_call": "<|tool_call>call:{a:1}<tool_call|>ok",
    "cut_mid_call": f"<|tool_call>call:f{{a:{Q}par",
    "call_without_close": f"<|tool_call>call:f{{a:1}}<|tool_response>",
    "stray_tokens": f"Text {Q}with<channel|> stray<tool_call|> tokens<turn|>ignored",
    "literal_angles": "a <b> <| not a token <|channel",
    "with_header": "<|turn>model\n<|channel>thought\nhm\n<channel|>Hi<turn|>",
    "header_then_label": "<|turn>model\nthought\nHi",
}

EXPECTED = {
    "plain": ("", "Hello there!", []),
    "thinking": ("Let me think.", "Answer 42.", []),
    "thinking_eos": ("A < B and C > D.", "The answer: x<y.", []),
    "cut_mid_thought": ("Step 1: add the numbers, then", "", []),
    "cut_in_label": ("", "", []),
    "empty_thought": ("", "Hi.", []),
    "bare_label": ("", "Just the answer.", []),
    "one_call": ("", "", [("get_weather", {"city": "Hanoi"})]),
    "thought_then_call": ("need weather", "", [("get_weather", {"city": "Ha Noi", "unit": "c"})]),
    "parallel": ("", "", [("a", {"x": 1}), ("b.v-2", {"y": [1, 2.5, -300.0], "z": None})]),
    "tricky_strings": ("", "", [("note", {"text": "a, b} {c} \"q\" <tool_call|> <turn|>\nline2 สวัสดี",
                                          "nested": {"k": {"deep": [True, False, ""]}}})]),
    "content_then_call": ("", "Let me check.", [("lookup", {"q": "x"})]),
    "malformed_call": ("", "After.", []),
    "no_name_call": ("", "ok", []),
    "cut_mid_call": ("", "", []),
    "call_without_close": ("", "", [("f", {"a": 1})]),
    "stray_tokens": ("", "Text with stray tokens", []),
    "literal_angles": ("", "a <b> <| not a token <|channel", []),
    "with_header": ("hm", "Hi", []),
    "header_then_label": ("", "Hi", []),
}


def _calls(parsed):
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in parsed.tool_calls]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_batch(name):
    parsed = parse(RECORDED[name])
    reasoning, content, calls = EXPECTED[name]
    assert (parsed.reasoning, parsed.content, _calls(parsed)) == (reasoning, content, calls)
    for call in parsed.tool_calls:
        assert call["type"] == "function" and call["id"].startswith("call_")
    for delimiter in ("<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", Q, "<turn|>", "thought\n"):
        assert delimiter not in parsed.content


def test_errors_are_values():
    parsed = parse(RECORDED["malformed_call"])
    assert len(parsed.errors) == 1 and "broken" in parsed.errors[0].message and parsed.errors[0].raw.startswith("call:")
    cut = parse(RECORDED["cut_mid_call"])
    assert cut.errors and "ended before" in cut.errors[0].message
    assert parse(RECORDED["no_name_call"]).errors


def _normalise(events: list[ChatEvent]):
    """Merge adjacent text events of one kind: deltas may cut text anywhere."""
    out = []
    for e in events:
        if out and e.kind in ("reasoning", "content") and out[-1][0] == e.kind:
            out[-1] = (e.kind, out[-1][1] + e.text)
        else:
            out.append((e.kind, e.text if e.kind in ("reasoning", "content") else (e.tool_call or e.error)))
    return out


def _run(deltas):
    parser = StreamParser(make_id=counting_ids())
    events = []
    for d in deltas:
        events += parser.feed(d)
    events += parser.finish()
    return _normalise(events), parser.result()


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_every_split_point_matches_batch(name):
    text = RECORDED[name]
    whole_events, whole = _run([text])
    batch = parse(text, make_id=counting_ids())
    assert whole == batch
    for i in range(len(text) + 1):
        assert _run([text[:i], text[i:]]) == (whole_events, whole), f"split at {i}"
    assert _run(list(text)) == (whole_events, whole)  # one character at a time


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_random_multi_splits(data):
    name = data.draw(st.sampled_from(sorted(RECORDED)))
    text = RECORDED[name]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    assert _run(pieces) == _run([text])


def test_stream_never_emits_delimiters_char_by_char():
    for text in RECORDED.values():
        parser = StreamParser()
        for ch in text:
            for event in parser.feed(ch):
                if event.kind == "content":
                    assert "<|" not in event.text or "not a token" in text


def test_prompt_ending_in_open_thought():
    """With thinking on, the prompt after tool results ends in `<|channel>thought\\n`: output starts as reasoning."""
    prompt = chat.render([{"role": "user", "content": "w?"}, {"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "1", "content": "ok"}], enable_thinking=True)
    assert prompt.endswith("<|channel>thought\n")
    parsed = parse("the tool said ok\n<channel|>It is ok.<turn|>", prompt=prompt)
    assert (parsed.reasoning, parsed.content) == ("the tool said ok", "It is ok.")
    assert parse("plain<turn|>", prompt="<|turn>model\n").content == "plain"


def test_message_shape():
    msg = parse(RECORDED["thought_then_call"], make_id=counting_ids()).message()
    assert msg == {"role": "assistant", "content": None, "reasoning_content": "need weather", "tool_calls": [
        {"id": "call_0", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Ha Noi", "unit": "c"}'}}]}


# ------------------------------------------------------------------------------------ Gemma syntax round trips

_keys = st.text(st.characters(codec="utf-8", exclude_characters=":{}[],<\"", exclude_categories=("Cs", "Zs", "Cc")),
                min_size=1, max_size=8)
_strings = st.text(max_size=20).filter(lambda s: Q not in s)
_scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | \
    st.floats(allow_nan=False, allow_infinity=False) | _strings


def _containers(inner):
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4))


_values = st.recursive(_scalars, _containers, max_leaves=15)


@given(st.dictionaries(_keys, _values, max_size=6))
@settings(max_examples=150, deadline=None)
def test_arguments_round_trip(arguments):
    text = chat.format_arguments(arguments)
    assert parse_arguments(text) == arguments
    call = parse(f"<|tool_call>call:tool.name-1{text}<tool_call|>")
    assert not call.errors
    assert json.loads(call.tool_calls[0]["function"]["arguments"]) == arguments


def test_format_arguments_matches_template_rendering():
    args = {"b": [1, {"Z": None, "a": True}], "A": "x, \"y\"", "n": 1.5}
    text = chat.render([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "t", "arguments": args}}]}], add_generation_prompt=False)
    assert f"<|tool_call>call:t{chat.format_arguments(args)}<tool_call|>" in text
    assert chat.format_arguments(args) == f"{{A:{Q}x, \"y\"{Q},b:[1,{{a:true,Z:null}}],n:1.5}}"


@pytest.mark.parametrize("bad", ["{a:1", "{a 1}", "{a:[1,2}", "{a:<|\"|>x}", "{a:1}}", "[1]", "{:1}", "{a:1,,b:2}"])
def test_malformed_arguments_raise_dsl_error(bad):
    with pytest.raises(DSLError):
        parse_arguments(bad)


def test_lenient_values():
    assert parse_value("{a: hello world , b: None, c: \"json str\"}") == {"a": "hello world", "b": None,
                                                                         "c": "json str"}
    assert format_value({"k": [None, True]}, quote_keys=True) == f"{{{Q}k{Q}:[null,true]}}"


_PIECES = ["<|channel>", "<channel|>", "thought\n", "thought", "<|tool_call>", "call:f{a:", "call:g.h-1{", Q, "x, y",
           "<", "<|", "}", "{", "[1,", "]", "<tool_call|>", "<turn|>", " ", "\n", "halo", "<|tool_response>",
           "<|turn>model\n", "<eos>", "null", "true"]
_CONTROL = ("<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", Q, "<turn|>", "<|tool_response>", "<eos>",
            "<|turn>")


@given(st.lists(st.sampled_from(_PIECES), max_size=25), st.data())
@settings(max_examples=300, deadline=None)
def test_random_outputs_stream_like_batch_and_never_leak(pieces, data):
    text = "".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    deltas = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    events, result = _run(deltas)
    assert (events, result) == _run([text])
    assert result == parse(text, make_id=counting_ids())
    for token in _CONTROL:
        assert token not in result.content and token not in result.reasoning
    for call in result.tool_calls:
        json.loads(call["function"]["arguments"])
