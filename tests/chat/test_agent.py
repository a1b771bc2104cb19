"""The tool loop end to end on the tiny Gemma 4 model, its replies scripted by a real logits processor."""

from __future__ import annotations

import pytest

import sealion.chat as chat
from sealion.engine.types import SamplingParams

from .scripted import ScriptedLogits

Q = '<|"|>'


def get_weather(city: str, unit: str = "c") -> dict:
    """Get the current weather.

    Args:
        city: City name.
        unit: Temperature unit.
    """
    return {"temp": 31, "unit": unit, "city": city}


def explode(reason: str) -> str:
    """A tool that always fails.

    Args:
        reason: Why.
    """
    raise ValueError(f"boom: {reason}")


def echo(text: str) -> str:
    """Echo text back."""
    return text


@pytest.fixture(scope="module")
def engine_factory(tiny_loaded):
    from sealion.engine import LocalEngine

    loaded = tiny_loaded

    def make(scripts):
        script = ScriptedLogits(loaded.tokenizer, scripts)
        return LocalEngine(loaded, logits_processors=[script]), script

    return make


GREEDY = SamplingParams(max_new_tokens=80, temperature=0)
CALLS = (f"<|tool_call>call:get_weather{{city:{Q}Hanoi{Q}}}<tool_call|>"
         f"<|tool_call>call:explode{{reason:{Q}test{Q}}}<tool_call|><|tool_response>")


def test_tool_loop_with_failing_tool(engine_factory):
    engine, script = engine_factory([CALLS, "It is 31C in Hanoi; the other tool failed.<turn|>"])
    messages = [{"role": "user", "content": "Weather in Hanoi?"}]
    result = chat.run_with_tools(engine, messages, [get_weather, explode], params=GREEDY)
    assert result.stopped == "answer" and result.steps == 2
    assert result.content == "It is 31C in Hanoi; the other tool failed."
    assert [(c.name, c.arguments) for c in result.calls] == [("get_weather", {"city": "Hanoi"}),
                                                             ("explode", {"reason": "test"})]
    assert result.calls[0].result == {"temp": 31, "unit": "c", "city": "Hanoi"}
    assert result.calls[1].error == "ValueError: boom: test"
    # what the model saw: its own calls, then both results in Gemma's native shape, in the same model turn
    assert script.prompts[0] == chat.render(messages, tools=[get_weather, explode])
    second = script.prompts[1]
    assert second == chat.render(result.messages[:-1], tools=[get_weather, explode])
    assert second.endswith(
        f"<|turn>model\n{CALLS[:-len('<|tool_response>')]}"
        f"<|tool_response>response:get_weather{{city:{Q}Hanoi{Q},temp:31,unit:{Q}c{Q}}}<tool_response|>"
        f"<|tool_response>response:explode{{error:{Q}ValueError: boom: test{Q}}}<tool_response|>")
    # the final conversation is valid OpenAI history (tool messages carry text)
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert result.messages[2]["content"] == '{"temp": 31, "unit": "c", "city": "Hanoi"}'


def test_text_results_and_thinking(engine_factory):
    engine, script = engine_factory([
        f"<|channel>thought\nI should echo.\n<channel|><|tool_call>call:echo{{text:{Q}halo, dunia{Q}}}<tool_call|>"
        "<|tool_response>",
        "the echo worked\n<channel|>Done: halo, dunia<turn|>",
    ])
    result = chat.run_with_tools(engine, [{"role": "user", "content": "echo it"}], [echo], enable_thinking=True,
                                 params=GREEDY)
    assert result.stopped == "answer"
    # after tool results with thinking on, the prompt opens a thought channel; the reply starts inside it
    assert script.prompts[1].endswith(f"<|tool_response>response:echo{{value:{Q}halo, dunia{Q}}}<tool_response|>"
                                      "<|channel>thought\n")
    assert "<|channel>thought\nI should echo.\n<channel|>" in script.prompts[1]  # current chain keeps its thought
    assert (result.reasoning, result.content) == ("the echo worked", "Done: halo, dunia")
    assert result.messages[2] == {"role": "tool", "tool_call_id": result.messages[1]["tool_calls"][0]["id"],
                                  "name": "echo", "content": "halo, dunia"}


def test_max_steps_and_unknown_tool(engine_factory):
    loop = f"<|tool_call>call:nope{{}}<tool_call|><|tool_response>"
    engine, script = engine_factory([loop, loop, loop])
    result = chat.run_with_tools(engine, [{"role": "user", "content": "x"}], [echo], max_steps=2, params=GREEDY)
    assert result.stopped == "max_steps" and result.steps == 2 and len(script.prompts) == 2
    assert all("unknown tool 'nope'" in c.error for c in result.calls)


def test_bad_arguments_go_back_to_model(engine_factory):
    engine, _ = engine_factory([f"<|tool_call>call:echo{{wrong:1}}<tool_call|><|tool_response>", "ok<turn|>"])
    result = chat.run_with_tools(engine, [{"role": "user", "content": "x"}], [echo], params=GREEDY)
    assert result.stopped == "answer" and "bad arguments for echo" in result.calls[0].error
