"""Per-row next-token choice: greedy rows by argmax, sampled rows with their own generator and knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..engine.sampling import draw_token


@dataclass
class SamplingConfig:
    """Resolved sampling settings of one request (model defaults already applied)."""

    max_new_tokens: int = 16
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 or -1 = off
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    skip_special_tokens: bool = True

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


def make_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed % (2**64))
    return g


def sample_row(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator) -> int:
    """Draw one token from a 1-D float logits row."""
    return draw_token(logits, cfg.temperature, cfg.top_k, cfg.top_p, generator)


def choose_tokens(logits: torch.Tensor, configs: list[SamplingConfig], generators: list[torch.Generator]) -> list[int]:
    """logits: [B, V]. Returns one token id per row."""
    logits = logits.float()
    greedy = logits.argmax(dim=-1).tolist()
    out = []
    for i, cfg in enumerate(configs):
        out.append(greedy[i] if cfg.greedy else sample_row(logits[i], cfg, generators[i]))
    return out
