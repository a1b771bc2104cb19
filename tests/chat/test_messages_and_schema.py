"""normalize() and tool schemas from Python functions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Optional, TypedDict

import pytest

import sealion.chat as chat
from sealion.errors import SealionError


def test_normalize_converts_and_splits():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
        {"role": "assistant", "content": "Checking.", "reasoning_content": "plan",
         "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, {"b": null}]}'}},
                        {"id": "2", "function": {"name": "g", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "1", "content": "r1"},
        {"role": "tool", "tool_call_id": "2", "content": [{"type": "text", "text": "r2"}]},
        {"role": "model", "content": "done", "thinking": "t"},
    ]
    out = chat.normalize(messages)
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == '{"a": [1, {"b": null}]}'  # input untouched
    assert [m["role"] for m in out] == ["user", "assistant", "assistant", "tool", "tool", "assistant"]
    assert out[1] == {"role": "assistant", "content": "Checking.", "reasoning_content": "plan"}
    assert out[2]["content"] is None
    assert [c["function"]["arguments"] for c in out[2]["tool_calls"]] == [{"a": [1, {"b": None}]}, {}]
    assert out[2]["tool_calls"][1]["type"] == "function"
    assert out[5]["reasoning_content"] == "t"


@pytest.mark.parametrize("messages,match", [
    ([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
        {"id": "1", "function": {"name": "f", "arguments": {}}}]},
      {"role": "tool", "tool_call_id": "1", "content": {"temp": 31}}], r"messages\[2\]\.content: a tool result"),
    ([{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}], r"messages\[1\]\.role: a tool message"),
    ([{"role": "user", "content": "q"}, {"role": "system", "content": "x"}], r"messages\[1\]\.role"),
    ([{"role": "robot", "content": "q"}], r"messages\[0\]\.role"),
    ([{"role": "user", "content": [{"type": "pdf"}]}], r"messages\[0\]\.content\[0\]\.type"),
    ([{"role": "user", "content": [{"type": "text"}]}], r"messages\[0\]\.content\[0\]\.text"),
    ([{"role": "user", "content": 5}], r"messages\[0\]\.content"),
    ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}],
     r"messages\[0\]\.tool_calls\[0\]\.function\.arguments: not valid JSON"),
    ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}],
     r"messages\[0\]\.tool_calls\[0\]\.function\.arguments: must be a JSON object"),
    ([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}], r"function\.name"),
])
def test_normalize_rejects(messages, match):
    with pytest.raises(chat.ChatFormatError, match=match) as err:
        chat.normalize(messages)
    assert isinstance(err.value, SealionError)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Address:
    """A postal address.

    Args:
        street: Street and number.
        zip: Postal code.
    """

    street: str
    zip: Optional[str] = None
    lines: list[str] = field(default_factory=list)


class Point(TypedDict):
    x: float
    y: float


def google_style(city: str, days: int, units: Literal["c", "f"] = "c", tags: list[str] | None = None,
                 colour: Colour = Colour.RED, address: Optional[Address] = None, where: Point | None = None,
                 weights: dict[str, float] | None = None, flag: bool = False) -> dict:
    """Forecast the weather.

    Longer text that is not the summary.

    Args:
        city: City name, e.g. "Hanoi".
        days (int): How many days,
            at most 7.
        units: Temperature units.
        tags: Labels.
        colour: A colour.
        address: Where to send it.
        where: A point.
        weights: Per-source weights.
        flag: A switch.

    Returns:
        The forecast.
    """
    return {}


def numpy_style(query: str, limit: int = 10):
    """Search the index.

    Parameters
    ----------
    query : str
        What to look for.
    limit : int, optional
        Most results to return.

    Returns
    -------
    list
    """


def test_google_docstring_schema():
    schema = chat.tool_schema(google_style)
    fn = schema["function"]
    assert schema["type"] == "function" and fn["name"] == "google_style"
    assert fn["description"] == "Forecast the weather. Longer text that is not the summary."
    props = fn["parameters"]["properties"]
    assert fn["parameters"]["required"] == ["city", "days"]
    assert props["city"] == {"type": "string", "description": 'City name, e.g. "Hanoi".'}
    assert props["days"] == {"type": "integer", "description": "How many days, at most 7."}
    assert props["units"] == {"type": "string", "enum": ["c", "f"], "description": "Temperature units."}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "nullable": True, "description": "Labels."}
    assert props["colour"]["enum"] == ["red", "blue"]
    address = props["address"]
    assert address["type"] == "object" and address["nullable"] is True
    assert address["properties"]["street"] == {"type": "string", "description": "Street and number."}
    assert address["properties"]["zip"]["nullable"] is True
    assert address["properties"]["lines"] == {"type": "array", "items": {"type": "string"}}
    assert address["required"] == ["street"]
    assert props["where"]["properties"] == {"x": {"type": "number"}, "y": {"type": "number"}}
    assert props["weights"]["additionalProperties"] == {"type": "number"}
    assert props["flag"] == {"type": "boolean", "description": "A switch."}
    # and it renders: nested object, enum, nullable all appear in the declaration
    text = chat.render([{"role": "user", "content": "x"}], tools=[google_style])
    assert "units:{description:<|\"|>Temperature units.<|\"|>,enum:[<|\"|>c<|\"|>,<|\"|>f<|\"|>],type:<|\"|>STRING" \
        in text
    assert "street:{description:<|\"|>Street and number.<|\"|>,type:<|\"|>STRING<|\"|>}" in text


def test_numpy_docstring_schema():
    fn = chat.tool_schema(numpy_style)["function"]
    assert fn["description"] == "Search the index."
    assert fn["parameters"]["properties"] == {"query": {"type": "string", "description": "What to look for."},
                                              "limit": {"type": "integer", "description": "Most results to return."}}
    assert fn["parameters"]["required"] == ["query"]


def test_schema_passthrough_and_errors():
    bare = {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}
    assert chat.tool_schema(bare) == {"type": "function", "function": bare}
    assert chat.tool_schema({"type": "function", "function": bare})["function"] == bare
    with pytest.raises(chat.ToolSchemaError):
        chat.tool_schema({"description": "no name"})
    with pytest.raises(chat.ToolSchemaError, match="lambda"):
        chat.tool_schema(lambda x: x)

    def bad(x: object) -> None:
        """Bad."""

    with pytest.raises(chat.ToolSchemaError, match="parameter x"):
        chat.tool_schema(bad)
