"""Does a built model end its reply the way the engine expects: by emitting the turn-end id (106, `<turn|>`)?

A student trained on data whose turn markers were text pieces learns to spell `<turn|>` and never stops; the engine
(and llama.cpp, and every server) waits for the id. This check answers held-out prompts greedily through the engine
core and counts, per model, the replies that ended on the turn-end id, those that spelled a marker as text, and
those that ran to the token limit. Writes `turn_end.json` in the evaluate stage directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

# the turn markers as text, in Gemma 4's names and the Gemma 3 names the demo tokenizer has at the same ids
MARKER_TEXTS = ("<turn|>", "<|turn>", "<end_of_turn>", "<start_of_turn>")


def held_out_prompts(heldout_path: Path, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` held-out user turns: the first of each language, then the rest in file order."""
    rows = [json.loads(line) for line in heldout_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen: set[str] = set()
    first, rest = [], []
    for row in rows:
        item = {"lang": row["lang"], "messages": [m for m in row["messages"] if m["role"] != "assistant"]}
        (rest if row["lang"] in seen else first).append(item)
        seen.add(row["lang"])
    return (first + rest)[:limit]


def spells_a_marker(tokenizer: Any, token_ids: list[int]) -> bool:
    """Whether the reply's ordinary (non-special) tokens spell a turn marker."""
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    return any(m in text for m in MARKER_TEXTS)


def check_model(ref: str, prompts: list[dict[str, Any]], *, max_new_tokens: int, batch_size: int) -> dict[str, Any]:
    from ..chat import turn_end_id
    from ..engine import open_engine
    from ..engine.types import ChatRequest, SamplingParams

    engine = open_engine(ref, max_batch_size=batch_size, text_only=True)
    try:
        tokenizer = engine.tokenizer
        target = turn_end_id(tokenizer)
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
        outs = engine.chat([ChatRequest(messages=p["messages"], params=params) for p in prompts])
    finally:
        engine.close()
    rows = []
    for p, o in zip(prompts, outs):
        rows.append({"lang": p["lang"], "finish_reason": o.finish_reason, "stop_token_id": o.stop_token_id,
                     "tokens": o.completion_tokens, "spelled": spells_a_marker(tokenizer, o.token_ids or []),
                     "text": o.text})
    ended = sum(1 for r in rows if target is not None and r["stop_token_id"] == target)
    return {"turn_end_id": target, "n": len(rows), "ended": ended,
            "spelled": sum(1 for r in rows if r["spelled"]),
            "length": sum(1 for r in rows if r["finish_reason"] == "length"),
            "share": round(ended / len(rows), 4) if rows else None, "rows": rows}


def run_turn_end(models: dict[str, Path], heldout_path: Path, out_dir: Path, *, prompts: int, max_new_tokens: int,
                 batch_size: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    from ..io import write_json

    items = held_out_prompts(heldout_path, prompts)
    result: dict[str, Any] = {"max_new_tokens": max_new_tokens, "models": {}}
    if not items:
        return result
    for name, path in models.items():
        r = check_model(str(path), items, max_new_tokens=max_new_tokens, batch_size=batch_size)
        result["models"][name] = r
        log(f"evaluate: {name} ends its turn with id {r['turn_end_id']} on {r['ended']}/{r['n']} held-out prompts"
            f" ({r['spelled']} spell a marker as text, {r['length']} hit {max_new_tokens} tokens)")
    write_json(out_dir / "turn_end.json", result)
    return result
