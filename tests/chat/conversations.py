"""Conversations for template conformance: (name, messages, render kwargs). All messages are already in the
shape the official template accepts (dict arguments, no dict tool content), so the official template can
render them unchanged."""

from __future__ import annotations

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}

NESTED = {
    "type": "function",
    "function": {
        "name": "book_trip",
        "description": "Book a trip with several legs",
        "parameters": {
            "type": "object",
            "properties": {
                "traveller": {
                    "type": "object",
                    "description": "Who travels",
                    "properties": {
                        "name": {"type": "string"},
                        "age": {"type": "integer", "description": "Age in years"},
                        "class": {"type": "string", "enum": ["economy", "business"]},
                    },
                    "required": ["name"],
                },
                "legs": {
                    "type": "array",
                    "description": "Flight legs",
                    "items": {
                        "type": "object",
                        "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                                       "Date": {"type": "string", "description": "ISO date"}},
                        "required": ["from", "to"],
                    },
                },
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "budget": {"type": "number", "nullable": True},
                "flexible": {"type": "boolean"},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}, "title": "Meta"},
                "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                "mode": {"type": ["string", "null"], "description": "union type"},
            },
            "required": ["traveller", "legs"],
        },
    },
}

NO_PARAMS = {"type": "function", "function": {"name": "get_time", "description": "Current time"}}
UNTYPED_PARAMS = {"type": "function", "function": {
    "name": "ping", "description": "Ping a host",
    "parameters": {"properties": {"host": {"type": "string"}}, "required": ["host"]}}}
WITH_RESPONSE = {"type": "function", "function": {
    "name": "lookup", "description": "Look something up",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    "response": {"type": "object", "description": "The result"}}}
DOTTED = {"type": "function", "function": {
    "name": "db.query-v2", "description": "Run a query",
    "parameters": {"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]}}}


def _call(name, args, id_=None):
    call = {"type": "function", "function": {"name": name, "arguments": args}}
    if id_:
        call["id"] = id_
    return call


U = {"role": "user", "content": "What's the weather in Hanoi?"}
CALL = {"role": "assistant", "tool_calls": [_call("get_weather", {"city": "Hanoi"}, "c1")]}
RESULT = {"role": "tool", "tool_call_id": "c1", "content": "31C"}

CASES: list[tuple[str, list, dict]] = [
    ("user_only", [{"role": "user", "content": "Hi"}], {}),
    ("user_no_gen_prompt", [{"role": "user", "content": "Hi"}], {"add_generation_prompt": False}),
    ("system_user", [{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": " Hi "}], {}),
    ("system_thinking", [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
     {"enable_thinking": True}),
    ("thinking_no_system", [{"role": "user", "content": "Hi"}], {"enable_thinking": True}),
    ("developer_role", [{"role": "developer", "content": "D"}, {"role": "user", "content": "Hi"}], {}),
    ("system_parts", [{"role": "system", "content": [{"type": "text", "text": " A "}, {"type": "text", "text": "B"}]},
                      {"role": "user", "content": "Hi"}], {}),
    ("multi_turn", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Apa kabar?"}], {}),
    ("multi_turn_no_gen", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
     {"add_generation_prompt": False}),
    ("earlier_thought_in_content", [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<|channel>thought\nplan<channel|>Hello!"},
        {"role": "user", "content": "More"}], {"enable_thinking": True}),
    ("earlier_reasoning_dropped", [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "old thought"},
        {"role": "user", "content": "More"}], {"enable_thinking": True}),
    ("reasoning_after_last_user", [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "fresh thought"}],
     {"enable_thinking": True, "add_generation_prompt": False}),
    ("tools_declared", [U], {"tools": [WEATHER]}),
    ("tools_nested_enums", [U], {"tools": [NESTED, WEATHER]}),
    ("tools_edge_schemas", [U], {"tools": [NO_PARAMS, UNTYPED_PARAMS, WITH_RESPONSE, DOTTED]}),
    ("tools_thinking_system", [{"role": "system", "content": "You are helpful."}, U],
     {"tools": [WEATHER], "enable_thinking": True}),
    ("tool_round_trip", [U, CALL, RESULT], {"tools": [WEATHER]}),
    ("tool_round_trip_thinking", [U, CALL, RESULT], {"tools": [WEATHER], "enable_thinking": True}),
    ("tool_call_pending", [U, CALL], {"tools": [WEATHER]}),
    ("tool_final_answer", [U, CALL, RESULT, {"role": "assistant", "content": "It is 31C in Hanoi."}],
     {"tools": [WEATHER]}),
    ("tool_then_next_user", [U, CALL, RESULT, {"role": "assistant", "content": "31C."},
                             {"role": "user", "content": "And Bangkok?"}], {"tools": [WEATHER]}),
    ("parallel_calls", [U, {"role": "assistant", "tool_calls": [
        _call("get_weather", {"city": "Hanoi"}, "a"), _call("get_weather", {"city": "Bangkok", "unit": "f"}, "b")]},
        {"role": "tool", "tool_call_id": "a", "content": "31C"},
        {"role": "tool", "tool_call_id": "b", "content": "95F"}], {"tools": [WEATHER]}),
    ("parallel_calls_no_ids", [U, {"role": "assistant", "tool_calls": [
        _call("get_weather", {"city": "Hanoi"}), _call("get_time", {})]},
        {"role": "tool", "name": "get_weather", "content": "31C"},
        {"role": "tool", "name": "get_time", "content": "noon"}], {"tools": [WEATHER, NO_PARAMS]}),
    ("structured_native_result", [U, {"role": "assistant", "tool_calls": [_call("get_weather", {"city": "Hanoi"})],
                                      "tool_responses": [{"name": "get_weather", "response": {
                                          "temp": 31, "ok": True, "note": None, "Hum": 0.75, "list": [1, "x"]}}]}],
     {"tools": [WEATHER]}),
    ("structured_native_thinking", [U, {"role": "assistant", "tool_calls": [_call("get_weather", {"city": "Hanoi"})],
                                        "tool_responses": [{"name": "get_weather", "response": {"temp": 31}}]}],
     {"tools": [WEATHER], "enable_thinking": True}),
    ("native_result_unnamed_and_text", [U, {"role": "assistant", "tool_calls": [_call("get_weather", {"city": "x"})],
                                            "tool_responses": [{"response": "plain"}, {"name": "", "response": 7}]}],
     {"tools": [WEATHER]}),
    ("tool_result_parts", [U, CALL, {"role": "tool", "tool_call_id": "c1", "content": [
        {"type": "text", "text": "see "}, {"type": "text", "text": "image"}, {"type": "image", "url": "x.png"}]}],
     {"tools": [WEATHER]}),
    ("tool_result_none", [U, CALL, {"role": "tool", "tool_call_id": "c1", "content": None}], {"tools": [WEATHER]}),
    ("rich_arguments", [U, {"role": "assistant", "tool_calls": [_call("book_trip", {
        "traveller": {"name": "Siti, \"Nur\"", "age": 30, "class": "business"},
        "legs": [{"from": "SIN", "to": "BKK", "Date": "2026-01-02"}, {"from": "BKK", "to": "HAN"}],
        "budget": None, "flexible": False, "note": "line1\nline2 {braces} [x]", "ratio": 1.5e-07,
        "thai": "สวัสดี", "empty": {}, "nil_list": []}, "t1")]},
        {"role": "tool", "tool_call_id": "t1", "content": "booked"}], {"tools": [NESTED]}),
    ("reasoning_replay_tool_chain", [U, {"role": "assistant", "reasoning_content": "need tool", "tool_calls": [
        _call("get_weather", {"city": "Hanoi"}, "c1")]}, RESULT], {"tools": [WEATHER], "enable_thinking": True}),
    ("reasoning_alias_field", [U, {"role": "assistant", "reasoning": "via reasoning", "content": "ok"}],
     {"enable_thinking": True, "add_generation_prompt": False}),
    ("preserve_thinking_earlier_chain", [U, {"role": "assistant", "reasoning_content": "r1", "tool_calls": [
        _call("get_weather", {"city": "Hanoi"}, "c1")]}, RESULT, {"role": "assistant", "content": "31C"},
        {"role": "user", "content": "thanks"}], {"tools": [WEATHER], "enable_thinking": True,
                                                 "preserve_thinking": True}),
    ("earlier_chain_thoughts_dropped", [U, {"role": "assistant", "reasoning_content": "r1", "tool_calls": [
        _call("get_weather", {"city": "Hanoi"}, "c1")]}, RESULT, {"role": "assistant", "content": "31C"},
        {"role": "user", "content": "thanks"}], {"tools": [WEATHER], "enable_thinking": True}),
    ("two_tool_rounds", [U, CALL, RESULT, {"role": "assistant", "tool_calls": [
        _call("get_weather", {"city": "Hue"}, "c2")]}, {"role": "tool", "tool_call_id": "c2", "content": "29C"}],
     {"tools": [WEATHER]}),
    ("split_content_then_call", [U, {"role": "assistant", "content": "Let me check."},
                                 {"role": "assistant", "tool_calls": [_call("get_weather", {"city": "Hanoi"}, "c1")]},
                                 RESULT], {"tools": [WEATHER]}),
    ("image_part", [{"role": "user", "content": [{"type": "image", "url": "a.png"}, {"type": "text", "text": "Describe"}]}],
     {}),
    ("openai_media_shapes", [{"role": "user", "content": [
        {"type": "text", "text": "Compare "}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
        {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}, {"type": "video", "video": "v.mp4"},
        {"type": "audio", "audio": "a.wav"}]}], {"enable_thinking": True}),
    ("assistant_parts", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
        {"type": "text", "text": "<|channel>thought\nx<channel|> Part A "}, {"type": "text", "text": "B"}]},
        {"role": "user", "content": "ok"}], {}),
    ("consecutive_assistants", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "One."},
                                {"role": "assistant", "content": "Two."}], {}),
    ("empty_conversation_thinking", [], {"enable_thinking": True}),
    ("non_latin", [{"role": "system", "content": "Jawab dalam Bahasa Indonesia."},
                   {"role": "user", "content": "Xin chào! ສະບາຍດີ 你好 မင်္ဂလာပါ"}], {}),
    ("empty_arguments_none", [U, {"role": "assistant", "tool_calls": [
        {"id": "n", "type": "function", "function": {"name": "get_time", "arguments": None}}]},
        {"role": "tool", "tool_call_id": "n", "content": "noon"}], {"tools": [NO_PARAMS]}),
]
