"""A real logits processor that makes a real model write scripted replies (one script per generation)."""

from __future__ import annotations

import torch


class ScriptedLogits:
    """Forces the token ids of `scripts[k]` during the k-th generation, then `<turn|>`.

    A generation starts whenever the sequence length is not the previous one plus one. The decoded prompt of each
    generation is kept in `prompts`, so tests can check exactly what the model was given.
    """

    def __init__(self, tokenizer, scripts: list[str], end_id: int = 106):
        self.tokenizer = tokenizer
        self.scripts = [tokenizer.encode(s, add_special_tokens=False) for s in scripts]
        self.end_id = end_id
        self.prompts: list[str] = []
        self._last_len = -1
        self._script: list[int] = []
        self._pos = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[-1]
        if length != self._last_len + 1:
            self._script = self.scripts[len(self.prompts)] if len(self.prompts) < len(self.scripts) else []
            self._pos = 0
            self.prompts.append(self.tokenizer.decode(input_ids[0].tolist(), skip_special_tokens=False))
        self._last_len = length
        token = self._script[self._pos] if self._pos < len(self._script) else self.end_id
        self._pos += 1
        forced = torch.full_like(scores, float("-inf"))
        forced[..., token] = 0.0
        return forced
