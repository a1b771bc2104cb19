"""The thinking budget: a per-request cap on Gemma 4's thought channel (`<|channel>thought ... <channel|>`).

When the channel has taken `budget` tokens the core writes the channel-end token itself, so the answer always comes;
the answer then has its own `max_tokens`. Without a budget `max_tokens` covers thought and answer together (OpenAI's
`max_completion_tokens`). Reasoning tokens are counted either way, for usage.
"""

from __future__ import annotations

THOUGHT_OPEN_ID = 100  # <|channel>
THOUGHT_CLOSE_ID = 101  # <channel|>

# reasoning_effort -> thinking budget in tokens ("none" and "minimal" turn thinking off altogether)
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}


def budget_for_effort(effort: str | None) -> int | None:
    """The thinking budget an OpenAI `reasoning_effort` stands for (None: no budget)."""
    return EFFORT_BUDGETS.get(effort) if effort else None


class ThoughtBudget:
    """Per-sequence thought accounting; the core calls `override` before and `observe` after each token.

    `budget`: tokens allowed inside the channel (None: unlimited, only counted). A prompt that ends inside an open
    channel (`<|channel>thought` rendered for the model) starts the count at once.
    """

    def __init__(self, budget: int | None, answer_max: int, prompt_ids: list[int]):
        self.budget = budget
        self.answer_max = answer_max
        last_open = max((i for i, t in enumerate(prompt_ids) if t == THOUGHT_OPEN_ID), default=-1)
        last_close = max((i for i, t in enumerate(prompt_ids) if t == THOUGHT_CLOSE_ID), default=-1)
        self.inside = last_open > last_close
        self.reasoning = 0  # tokens of thought: the channel's own tokens, its markers included
        self.answer = 0
        self.forced = False  # whether the core closed the channel

    def override(self, seq, token: int) -> int:
        if self.budget is not None and self.inside and self.reasoning >= self.budget:
            self.forced = True
            return THOUGHT_CLOSE_ID
        return token

    def observe(self, seq, token: int) -> None:
        if token == THOUGHT_OPEN_ID and not self.inside:
            self.inside = True
            self.reasoning += 1
            return
        if self.inside:
            self.reasoning += 1
            if token == THOUGHT_CLOSE_ID:
                self.inside = False
            return
        self.answer += 1

    def answer_exhausted(self, seq) -> bool:
        """With a budget the answer has its own max_tokens; without one, max_tokens counts everything."""
        if self.budget is None:
            return len(seq.generated) >= self.answer_max
        return self.answer >= self.answer_max
