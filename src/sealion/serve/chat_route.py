"""POST /v1/chat/completions: messages rendered by the one renderer, answers parsed into content, reasoning and
tool calls (batch and streaming), `n`, `logprobs`/`top_logprobs`, vLLM's `prompt_logprobs`, `add_generation_prompt`,
`continue_final_message` and `chat_template_kwargs`."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

from fastapi import Request

from . import protocol as P
from .bridge import Flight
from .chatio import ChatInputError
from .logprobs import chat_content, prompt_entries
from .media import media_parts, to_media_messages
from .state import ApiError, ServerState
from .streaming import collect, error_event, generated_ids, generated_records, observe, sse, streaming, usage


@dataclass
class ChatPlan:
    prompt: str  # the rendered prompt as text (tells the reply parser how it ends)
    prompt_ids: list[int]  # what the model is fed: the renderer's ids, then a forced tool-call opener if any
    forced_prefix: str  # text appended to the prompt to force a tool call (tool_choice required / named)
    parse_tools: bool
    thinking: bool
    extra_inputs: dict | None = None  # the image/audio encoders' inputs (pixel_values, input_features, ...)


def needs_worker(body: P.ChatCompletionRequest) -> bool:
    """Whether planning decodes media (run it in a worker thread, off the event loop)."""
    return any(m.has_media() for m in body.messages)


async def plan_chat_async(state: ServerState, body: P.ChatCompletionRequest) -> ChatPlan:
    if needs_worker(body):
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(plan_chat, state, body)
    return plan_chat(state, body)


def plan_chat(state: ServerState, body: P.ChatCompletionRequest) -> ChatPlan:
    problem = P.check_role_order(body.messages)
    if problem:
        raise ApiError(400, problem, param="messages", code="invalid_role_order")
    media = media_parts(body.messages)
    if media and state.processor is None:
        raise ApiError(400, f"{media[0]}: image and audio parts are not supported by this model (its checkpoint "
                       "has no processor)", param=media[0], code="unsupported_content")
    if media and body.continue_final_message:
        raise ApiError(400, "continue_final_message: not supported with image or audio parts",
                       param="continue_final_message", code="unsupported_parameter")
    if media and body.template_kwargs():
        raise ApiError(400, "chat_template_kwargs: only enable_thinking is supported with image or audio parts",
                       param="chat_template_kwargs", code="unsupported_parameter")
    try:
        thinking = body.enable_thinking()
    except ValueError as e:
        raise ApiError(400, str(e), param="chat_template_kwargs") from None
    tools = [t.model_dump(exclude_none=True) for t in body.tools] if body.tools else None
    choice = body.tool_choice
    names = [t["function"]["name"] for t in tools or []]
    forced = ""
    if isinstance(choice, P.NamedToolChoice):
        if choice.function.name not in names:
            raise ApiError(400, f"tool_choice names {choice.function.name!r}, which is not among the tools",
                           param="tool_choice")
        forced = state.codec.forced_call_prefix(choice.function.name)
    elif choice == "required":
        if not tools:
            raise ApiError(400, "tool_choice 'required' needs tools", param="tool_choice")
        forced = state.codec.forced_call_prefix(None)
    render_tools = tools if choice != "none" else None
    extra = None
    if media:
        ids, text, extra = _media_prompt(state, body, render_tools, thinking)
    else:
        try:
            rendered = state.codec.render_prompt(
                P.to_chat_messages(body.messages), tools=render_tools, enable_thinking=thinking,
                add_generation_prompt=body.add_generation_prompt, continue_final_message=body.continue_final_message,
                **body.template_kwargs())
        except ChatInputError as e:
            param = "chat_template_kwargs" if "render option" in str(e) else "messages"
            raise ApiError(400, str(e), param=param, code="invalid_messages") from None
        ids, text = rendered.ids, rendered.text
    ids = ids + (state.encode(forced, add_special_tokens=False) if forced else [])
    return ChatPlan(prompt=text, prompt_ids=ids, forced_prefix=forced, parse_tools=bool(render_tools),
                    thinking=thinking, extra_inputs=extra)


def _media_prompt(state: ServerState, body: P.ChatCompletionRequest, tools, thinking: bool):
    """The engine's own media path (`LocalEngine.media_prompt`, as `LocalEngine.chat` uses): soft-token spans in
    the ids, the encoders' inputs beside them."""
    from sealion.chat.multimodal import MediaError
    from sealion.errors import SealionError

    messages = to_media_messages(body.messages, state.config)
    try:
        return state.engine.media_prompt(messages, tools=tools, enable_thinking=thinking,
                                         add_generation_prompt=body.add_generation_prompt)
    except MediaError as e:
        raise ApiError(400, str(e), param=e.param or "messages", code="invalid_media") from None
    except (SealionError, ValueError, TypeError, KeyError) as e:
        raise ApiError(400, str(e), param="messages", code="invalid_messages") from None


def wire_call(call: dict) -> dict:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    return {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": fn.get("name"), "arguments": args}}


async def chat_completions(state: ServerState, body: P.ChatCompletionRequest, request: Request):
    started = time.monotonic()
    plan = await plan_chat_async(state, body)
    params = state.params(body, len(plan.prompt_ids), chat=True, logprobs=body.logprobs_k(),
                          prompt_logprobs=body.prompt_logprobs, default_max=state.config.default_max_tokens)
    flight = state.submit(state.sequences(plan.prompt_ids, params, body.n, chat=True, stream=body.stream,
                                          extra_inputs=plan.extra_inputs))
    rid = P.new_id("chatcmpl")
    if body.stream:
        return streaming(state, _stream(state, body, plan, rid, flight), "chat", started, flight)
    await collect(request, flight)
    observe(state, "chat", started, flight)
    choices = []
    for c, seq in enumerate(flight.seqs):
        parsed = state.codec.parse(plan.forced_prefix + seq.tracker.final_text, prompt=plan.prompt)
        message: dict[str, Any] = {"role": "assistant", "content": parsed.content}
        reasoning = parsed.reasoning if plan.thinking else None
        message["reasoning_content"] = reasoning
        message["reasoning"] = reasoning
        finish = seq.finish_reason
        if parsed.tool_calls and plan.parse_tools:
            message["tool_calls"] = [wire_call(call) for call in parsed.tool_calls]
            if not message["content"]:
                message["content"] = None
            finish = "tool_calls"
        elif not message["content"]:
            message["content"] = ""
        logprobs = None
        if body.logprobs:
            logprobs = {"content": chat_content(generated_records(seq)[1], state.names)}
        choice = {"index": c, "message": message, "logprobs": logprobs, "finish_reason": finish}
        if body.return_token_ids:
            choice["token_ids"] = generated_ids(seq)
        choices.append(choice)
    out = {"id": rid, "object": "chat.completion", "created": P.now(), "model": state.config.model_name,
           "choices": choices, "usage": usage(len(plan.prompt_ids), flight)}
    if body.prompt_logprobs is not None:
        out["prompt_logprobs"] = prompt_entries(flight.seqs[0].prompt_token_logprobs, state.names)
    if body.return_token_ids:
        out["prompt_token_ids"] = plan.prompt_ids
    return out


class _ChoiceStream:
    """One choice of a streamed chat: its parser, its tool-call count and log-probs not yet sent."""

    def __init__(self, state: ServerState, plan: ChatPlan):
        self.parser = state.codec.stream_parser(prompt=plan.prompt)
        self.plan = plan
        self.calls = 0
        self.pending: list[dict] = []
        self.sent = 0  # log-prob records taken from the core's events

    def deltas(self, text: str, *, final: bool = False) -> list[dict]:
        pieces = self.parser.feed(text) + (self.parser.finish() if final else [])
        out = []
        for piece in pieces:
            if "reasoning" in piece:
                if self.plan.thinking and piece["reasoning"]:
                    out.append({"reasoning_content": piece["reasoning"], "reasoning": piece["reasoning"]})
            elif "content" in piece:
                if piece["content"]:
                    out.append({"content": piece["content"]})
            elif "tool_call" in piece and self.plan.parse_tools:
                out.append({"tool_calls": [{"index": self.calls, **wire_call(piece["tool_call"])}]})
                self.calls += 1
        return out


async def _stream(state: ServerState, body: P.ChatCompletionRequest, plan: ChatPlan, rid: str,
                  flight: Flight) -> AsyncIterator[str]:
    name, created = state.config.model_name, P.now()

    def chunk(c: int, delta: dict, finish: str | None = None, logprobs: list[dict] | None = None) -> str:
        choice = {"index": c, "delta": delta, "logprobs": {"content": logprobs} if logprobs else None,
                  "finish_reason": finish}
        return sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                    "choices": [choice]})

    choices = [_ChoiceStream(state, plan) for _ in flight.seqs]
    for c, ch in enumerate(choices):
        yield chunk(c, {"role": "assistant", "content": ""})
        for delta in ch.deltas(plan.forced_prefix):
            yield chunk(c, delta)
    async for c, event in flight.events():
        if event.kind == "error":
            yield error_event(event)
            break
        ch, seq = choices[c], flight.seqs[c]
        if body.logprobs:
            # a delta's own token; at the end, the tokens no delta carried (the last one, the stop token)
            records = event.logprobs if event.kind == "delta" else generated_records(seq)[1][ch.sent:]
            ch.sent += len(records)
            ch.pending += chat_content(records, state.names)
        for delta in ch.deltas(event.text, final=event.kind == "done"):
            yield chunk(c, delta, logprobs=ch.pending)
            ch.pending = []
        if event.kind == "done":
            finish = "tool_calls" if ch.calls else seq.finish_reason
            yield chunk(c, {}, finish, logprobs=ch.pending)
            ch.pending = []
    else:
        if body.stream_options and body.stream_options.include_usage:
            yield sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                       "choices": [], "usage": usage(len(plan.prompt_ids), flight)})
    yield sse("[DONE]")
