"""Choosing the next token per row: greedy, or temperature / top-k / top-p sampling with a per-request generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .types import SamplingParams


@dataclass
class ResolvedSampling:
    """SamplingParams with the model's generation_config defaults filled in."""

    greedy: bool
    temperature: float
    top_k: int
    top_p: float
    generator: torch.Generator | None


def model_defaults(generation_config) -> dict:
    gc = generation_config
    return {
        "do_sample": bool(getattr(gc, "do_sample", False)) if gc is not None else False,
        "temperature": getattr(gc, "temperature", None) or 1.0,
        "top_k": getattr(gc, "top_k", None) or 0,
        "top_p": getattr(gc, "top_p", None) or 1.0,
    }


def resolve(params: SamplingParams, defaults: dict) -> ResolvedSampling:
    greedy = params.is_greedy(default_do_sample=defaults["do_sample"])
    temperature = params.temperature if params.temperature is not None else defaults["temperature"]
    top_k = params.top_k if params.top_k is not None else defaults["top_k"]
    top_p = params.top_p if params.top_p is not None else defaults["top_p"]
    generator = None
    if not greedy:
        generator = torch.Generator()
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        generator.manual_seed(seed)
    return ResolvedSampling(greedy, float(temperature), int(top_k or 0), float(top_p or 1.0), generator)


NUCLEUS_WINDOW = 1024  # top-p looks for its nucleus among this many best tokens before sorting the whole vocabulary


def candidates(logits: torch.Tensor, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens a draw may pick and their probabilities (summing to 1), after top-k then top-p (nucleus), from a
    1-D row of temperature-scaled logits.

    The nucleus is the smallest run of best tokens whose mass reaches top_p, plus every token tied with its last one
    (so the kept set never depends on how a sort orders ties). Sorting a 262k vocabulary costs ~19 ms a row on a CPU
    core, top-k of 1,024 under 1 ms: the nucleus is almost always inside the best 1,024 tokens, and then the kept
    set is exactly the one the full sort keeps (the same probabilities, summed in the same order); only a flatter
    distribution, or a tie running past the window, pays for the sort."""
    vocab = logits.shape[-1]
    if top_k and 0 < top_k < vocab:
        values, indices = torch.topk(logits, top_k)
        probs = torch.softmax(values, dim=-1)
        return indices, _nucleus(values, probs, top_p)
    lse = torch.logsumexp(logits, dim=-1)
    window = min(NUCLEUS_WINDOW, vocab)
    values, indices = torch.topk(logits, window)
    probs = torch.exp(values - lse)
    if window < vocab:
        keep = _nucleus(values, probs, top_p, normalise=False)
        if float(probs.sum()) >= top_p and not bool(keep[-1]):
            return indices, keep / keep.sum()
    values, indices = torch.sort(logits, descending=True, stable=True)
    probs = torch.exp(values - lse)
    return indices, _nucleus(values, probs, top_p)


def _nucleus(values: torch.Tensor, probs: torch.Tensor, top_p: float, normalise: bool = True) -> torch.Tensor:
    """probs with everything outside the nucleus zeroed (renormalised unless asked not to)."""
    cumulative = torch.cumsum(probs, dim=-1)
    n = max(1, int((cumulative - probs < top_p).sum()))  # the smallest prefix reaching top_p; at least the best
    kept = probs * (values >= values[n - 1])  # and every token tied with the last one kept
    return kept / kept.sum() if normalise else kept


def token_logprobs(logits: torch.Tensor, tokens: list[int], top: int) -> list[dict]:
    """Per row of logits [N, V] (the model's raw scores): the log-prob of `tokens[i]`, its rank (1 = best) and the
    `top` best tokens with theirs, as {"token_id", "logprob", "rank", "top": [(id, logprob), ...]}."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    ids = torch.tensor(tokens, device=logits.device)
    chosen = logp.gather(1, ids[:, None])[:, 0]
    ranks = (logp > chosen[:, None]).sum(dim=1) + 1
    out = []
    best = torch.topk(logp, top, dim=-1) if top else None
    for i, tok in enumerate(tokens):
        row = {"token_id": int(tok), "logprob": float(chosen[i]), "rank": int(ranks[i]), "top": []}
        if best is not None:
            row["top"] = [(int(t), float(v)) for t, v in zip(best.indices[i], best.values[i])]
        out.append(row)
    return out


def draw_token(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
               generator: torch.Generator) -> int:
    """Draw one token id from a 1-D logits row: temperature, then top-k, then top-p."""
    logits = logits / max(temperature, 1e-5)
    if top_p >= 1.0 and not (top_k and 0 < top_k < logits.shape[-1]):
        probs = torch.softmax(logits, dim=-1)  # plain temperature sampling needs no order
        return int(torch.multinomial(probs, 1, generator=generator).item())
    indices, probs = candidates(logits, top_k, top_p)
    return int(indices[torch.multinomial(probs, 1, generator=generator)].item())


def sample_row(logits: torch.Tensor, s: ResolvedSampling) -> int:
    """Sample one token id from a 1-D logits row."""
    return draw_token(logits, s.temperature, s.top_k, s.top_p, s.generator)


def choose_next(logits: torch.Tensor, rows: list[ResolvedSampling]) -> torch.Tensor:
    """Next token for each row of `logits` [B, V]."""
    next_ids = torch.argmax(logits, dim=-1)
    for i, s in enumerate(rows):
        if not s.greedy:
            next_ids[i] = sample_row(logits[i].float(), s)
    return next_ids
