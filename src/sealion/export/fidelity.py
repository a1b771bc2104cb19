"""How far a GGUF (quantised or not) drifts from the original model, per language.

The original runs in transformers (fp32); the GGUF in llama.cpp. Both score the same token ids (the GGUF's
tokenizer, which matches the original's): for every position, KL(original || GGUF) over the full vocabulary,
whether the top-1 tokens agree, and each model's log-likelihood of the text's next token, giving the perplexity
ratio ppl(GGUF) / ppl(original) (1.0 = no loss).
"""

from __future__ import annotations

import math
import os

from .heldout import HELDOUT


def load_original(model_ref):
    import torch

    from ..models import load

    loaded = load(model_ref, dtype=torch.float32, text_only=True)
    return loaded.model.eval()


def score(original, runtime, ids: list[int]) -> dict:
    """Sums over the positions of one text: {tokens, kl, top1, nll_orig, nll_gguf}."""
    import numpy as np
    import torch

    with torch.inference_mode():
        logits = original(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    # float64: a KL of 1e-3 is a sum of 262k terms that cancel; fp32 loses about 1% of it
    p_lp = torch.log_softmax(logits[:-1].double(), dim=-1)
    runtime.reset()
    q_logits = torch.from_numpy(np.asarray(runtime.feed(ids, all_logits=True), dtype=np.float64))
    q_lp = torch.log_softmax(q_logits[:-1], dim=-1)
    target = torch.tensor(ids[1:])
    kl = (p_lp.exp() * (p_lp - q_lp)).sum(-1)
    return {
        "tokens": len(ids) - 1,
        "kl": float(kl.sum()),
        "top1": float((p_lp.argmax(-1) == q_lp.argmax(-1)).float().sum()),
        "nll_orig": float(-p_lp.gather(1, target[:, None]).sum()),
        "nll_gguf": float(-q_lp.gather(1, target[:, None]).sum()),
    }


def fidelity_report(model_ref, gguf_path, *, texts: dict[str, str] | None = None, max_tokens: int = 256,
                    threads: int | None = None, original=None) -> dict:
    """-> {"gguf", "languages": {lang: {tokens, kl, top1, ppl_ratio}}, "mean": {...}} on the built-in held-out
    text (or `texts`). `original` takes an already loaded transformers model."""
    from ..engine.llamacpp import LlamaCppModel

    texts = texts or HELDOUT
    model = original if original is not None else load_original(model_ref)
    runtime = LlamaCppModel(gguf_path, n_ctx=max_tokens + 8, n_threads=threads or os.cpu_count())
    try:
        langs = {}
        for lang, text in texts.items():
            ids = runtime.tokenize(text, add_bos=True)[:max_tokens]
            s = score(model, runtime, ids)
            n = s["tokens"]
            langs[lang] = {"tokens": n, "kl": s["kl"] / n, "top1": s["top1"] / n,
                           "ppl_ratio": math.exp((s["nll_gguf"] - s["nll_orig"]) / n)}
    finally:
        runtime.close()
    mean = {k: sum(v[k] for v in langs.values()) / len(langs) for k in ("kl", "top1", "ppl_ratio")}
    return {"gguf": str(gguf_path), "model": str(model_ref), "languages": langs, "mean": mean}


def format_report(report: dict) -> str:
    lines = [f"fidelity of {report['gguf']} vs {report['model']}",
             f"{'lang':<6}{'tokens':>8}{'KL':>10}{'top-1':>8}{'ppl ratio':>11}"]
    for lang, r in report["languages"].items():
        lines.append(f"{lang:<6}{r['tokens']:>8}{r['kl']:>10.4f}{r['top1']:>8.3f}{r['ppl_ratio']:>11.4f}")
    m = report["mean"]
    lines.append(f"{'mean':<6}{'':>8}{m['kl']:>10.4f}{m['top1']:>8.3f}{m['ppl_ratio']:>11.4f}")
    return "\n".join(lines)
