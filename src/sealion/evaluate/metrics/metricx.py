"""MetricX-24 (google/metricx-24-hybrid-*), a model-based translation metric that runs when the user has the model.

The checkpoint is an mT5 encoder-decoder regression model: the score is the logit of token 250089
(`<extra_id_10>`) at the first decoder step, clamped to [0, 25] (lower is better). The input is
``"source: {source} candidate: {candidate} reference: {reference}"``, truncated to 1536 tokens, with the final EOS
removed (as the reference implementation does). Point `--metricx` at a local directory holding the weights (and a
tokenizer; otherwise `--metricx-tokenizer`, normally google/mt5-xl). Without it the translation tasks report
chrF++ and say MetricX was skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ...errors import ModelLoadError

SCORE_TOKEN_ID = 250089
MAX_LENGTH = 1536


def metricx_input(source: str, candidate: str | None, reference: str) -> str:
    return f"source: {source} candidate: {candidate or ''} reference: {reference}"


_LOADED: dict[str, tuple] = {}


def _load(ref: str, tokenizer_ref: str | None = None):
    if ref in _LOADED:
        return _LOADED[ref]
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"--metricx: {ref} is not a local model directory (MetricX-24 cannot be downloaded here)")
    try:
        import torch
        from transformers import AutoTokenizer, MT5ForConditionalGeneration

        tok = AutoTokenizer.from_pretrained(tokenizer_ref or str(path))
        model = MT5ForConditionalGeneration.from_pretrained(str(path), torch_dtype="auto")
        model.eval()
        if torch.cuda.is_available():
            model = model.to("cuda")
    except OSError as e:
        raise ModelLoadError(f"--metricx {ref}: {str(e).splitlines()[0]}") from None
    _LOADED[ref] = (tok, model)
    return tok, model


def metricx_scores(ref: str, sources: Sequence[str], candidates: Sequence[str | None], references: Sequence[str], *,
                   batch_size: int = 8, tokenizer_ref: str | None = None, cache_dir: Path | None = None) -> list[float]:
    """Raw MetricX-24 scores in [0, 25] (0 = perfect)."""
    import torch

    tok, model = _load(ref, tokenizer_ref)
    device = next(model.parameters()).device
    texts = [metricx_input(s, c, r) for s, c, r in zip(sources, candidates, references)]
    out: list[float] = []
    for i in range(0, len(texts), batch_size):
        chunk = texts[i:i + batch_size]
        ids = [tok(t, truncation=True, max_length=MAX_LENGTH)["input_ids"][:-1] for t in chunk]  # drop EOS
        width = max(len(x) for x in ids) or 1
        pad = tok.pad_token_id or 0
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
        dec = torch.zeros((len(chunk), 1), dtype=torch.long, device=device)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
        out.extend(float(v) for v in logits[:, 0, SCORE_TOKEN_ID].float().clamp(0, 25).tolist())
    return out
