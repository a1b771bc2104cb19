"""A tiny Gemma 4 taught (by a few seconds of overfitting) to answer a handful of scripted conversations.

Random tiny models emit noise, which cannot show that a tool call or a thought survives the trip through the
server and the OpenAI client. This model is the real architecture with real weights, trained on the exact prompts
the server renders, so greedy decoding reproduces the scripted answers token for token.
"""

from __future__ import annotations

from pathlib import Path

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]
ASK = [{"role": "user", "content": "Weather in Hanoi?"}]
CALL_ARGS = {"city": "Hanoi"}
AFTER_TOOL = ASK + [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Hanoi"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "31C"},
]
GREET = [{"role": "user", "content": "Hi"}]

# (messages, tools, enable_thinking, answer the model must write, stop token appended)
SCRIPT = [
    (ASK, TOOLS, False, '<|tool_call>call:get_weather{city:<|"|>Hanoi<|"|>}<tool_call|>', "<|tool_response>"),
    (AFTER_TOOL, TOOLS, False, "It is 31C in Hanoi.", "<turn|>"),
    (GREET, None, True, "<|channel>thought\nThe user greets me.<channel|>Hello there!", "<turn|>"),
    (GREET, None, False, "Hello there!", "<turn|>"),
]


def build_scripted_model(base_dir: Path, out_dir: Path, steps: int = 400) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sealion.chat.render import render_for

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    rows = []
    for messages, tools, thinking, answer, stop in SCRIPT:
        prompt = render_for(tok, messages, tools=tools, enable_thinking=thinking)
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        a_ids = tok(answer + stop, add_special_tokens=False).input_ids
        rows.append((p_ids, a_ids))
    # the 262k-row embedding tables stay frozen (tied to the output layer): training them is what costs time
    for name, param in model.named_parameters():
        param.requires_grad = "embed_tokens" not in name
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for step in range(steps):
        loss = sum(_answer_loss(model, p_ids, a_ids) for p_ids, a_ids in rows)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 4 and _all_greedy_right(model, rows):
            break
    model.eval()
    if not _all_greedy_right(model, rows):
        raise RuntimeError("the scripted model did not learn its script")
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    for name in ("generation_config.json", "chat_template.jinja"):
        src = Path(base_dir) / name
        if src.exists():
            (Path(out_dir) / name).write_bytes(src.read_bytes())
    return Path(out_dir)


def _answer_logits(model, p_ids, a_ids):
    """Logits at the answer positions only: the 262k-way output layer is most of the cost."""
    import torch

    ids = torch.tensor([p_ids + a_ids])
    hidden = model.model(input_ids=ids).last_hidden_state[0, len(p_ids) - 1 : -1]
    logits = model.lm_head(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def _answer_loss(model, p_ids, a_ids):
    import torch

    return torch.nn.functional.cross_entropy(_answer_logits(model, p_ids, a_ids), torch.tensor(a_ids))


def _all_greedy_right(model, rows) -> bool:
    import torch

    with torch.no_grad():
        return all(_answer_logits(model, p, a).argmax(-1).tolist() == a for p, a in rows)


def script_key(base_dir: Path) -> str:
    """Names a trained copy: changes when the script or the base model changes."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps([s[:4] for s in SCRIPT], sort_keys=True, default=str).encode())
    for name in ("config.json", "model.safetensors", "chat_template.jinja"):
        f = Path(base_dir) / name
        if f.exists():
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
