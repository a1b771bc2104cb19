"""Log-probs on the wire, from the engine's per-token records ({"token_id", "logprob", "rank", "top": [(id, lp)]}).

Three shapes, as OpenAI and vLLM write them:
- chat completions: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}`;
- text completions (OpenAI's legacy shape, which lm-evaluation-harness reads): `{"tokens", "token_logprobs",
  "top_logprobs": [{token: logprob}], "text_offset"}`, the prompt's tokens first with `echo` (the first None);
- vLLM's `prompt_logprobs`: one entry per prompt token, the first None, else `{str(id): {"logprob", "rank",
  "decoded_token"}}` holding the prompt token and the k best.
"""

from __future__ import annotations

from functools import lru_cache


class TokenText:
    """Each id's text as a client sees it (`tokenizer.decode([id])`), cached: the same ids recur in every row."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.text = lru_cache(maxsize=65536)(self._decode)

    def _decode(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def chat_content(records: list[dict], names: TokenText) -> list[dict]:
    out = []
    for r in records:
        token = names.text(r["token_id"])
        out.append({"token": token, "logprob": r["logprob"], "bytes": _bytes(token),
                    "top_logprobs": [{"token": (t := names.text(i)), "logprob": lp, "bytes": _bytes(t)}
                                     for i, lp in r["top"]]})
    return out


def legacy(ids: list[int], records: list[dict | None], names: TokenText, *, start_offset: int = 0) -> dict:
    """OpenAI's text-completion logprobs for tokens `ids`; a None record (the first prompt token) gives None
    log-probs. A top dict holds the k best and the token itself (vLLM), so `max(top.values())` tells whether the
    token was the greedy pick (lm-evaluation-harness's is_greedy)."""
    tokens, lps, tops, offsets = [], [], [], []
    offset = start_offset
    for token_id, r in zip(ids, records):
        token = names.text(token_id)
        tokens.append(token)
        offsets.append(offset)
        offset += len(token)
        if r is None:
            lps.append(None)
            tops.append(None)
            continue
        lps.append(r["logprob"])
        top = {names.text(i): lp for i, lp in r["top"]}
        top.setdefault(token, r["logprob"])
        tops.append(top)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def prompt_entries(records: list[dict | None], names: TokenText) -> list[dict | None]:
    out: list[dict | None] = []
    for r in records:
        if r is None:
            out.append(None)
            continue
        entry = {str(r["token_id"]): {"logprob": r["logprob"], "rank": r["rank"],
                                      "decoded_token": names.text(r["token_id"])}}
        for rank, (i, lp) in enumerate(r["top"], start=1):
            entry.setdefault(str(i), {"logprob": lp, "rank": rank, "decoded_token": names.text(i)})
        out.append(entry)
    return out
