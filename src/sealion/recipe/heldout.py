"""How close each model is to the teacher on held-out conversations, per language.

For every response token of every held-out row: KL(teacher || model) over the full vocabulary, whether the
model's top-1 token equals the teacher's, and the model's negative log-likelihood of the response token (its
perplexity on the teacher's own text). Per-sequence sums are kept so error bars come from a bootstrap over
sequences (resample rows with replacement, recompute the token-weighted metric, take the 2.5/97.5 percentiles).

All models are run on the same batches so the teacher is computed once; only the response positions reach the
lm_head (sequences are left-padded so the responses sit in the last positions and `logits_to_keep` suffices).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..io import read_jsonl, write_json

METRICS = ("kl", "top1", "ppl")


def encode_rows(tokenizer: Any, heldout_path: Path, *, max_len: int) -> list[dict]:
    """Token ids and target mask per row, tokenised exactly as distillation tokenises its training rows."""
    from ..distill.data import load_examples

    examples, _ = load_examples([str(heldout_path)], tokenizer, max_length=max_len)
    rows = read_jsonl(heldout_path)
    out = []
    for ex, row in zip(examples, rows):
        ids = [int(x) for x in ex.input_ids]
        mask = [bool(x) for x in ex.target_mask]
        first = mask.index(True)
        # predict token t from position t-1: the scored window starts one before the first target
        out.append({"id": row["id"], "lang": row["lang"], "ids": ids, "first": first,
                    "target": mask[first:]})
    if len(out) != len(rows):
        raise ValueError(f"{heldout_path}: {len(rows) - len(out)} held-out rows could not be tokenised")
    return out


def _batch(encoded: list[dict], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Left-padded ids, attention mask, position ids, and how many trailing logits are needed."""
    width = max(len(e["ids"]) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e["ids"]):] = torch.tensor(e["ids"])
        mask[i, width - len(e["ids"]):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    keep = max(len(e["ids"]) - e["first"] for e in encoded) + 1
    return ids, mask, pos, keep


@torch.no_grad()
def _logprobs(model: Any, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, keep: int) -> torch.Tensor:
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep, use_cache=False)
    # logits at position t predict token t+1: drop the last one
    return F.log_softmax(out.logits[:, :-1].float(), dim=-1)


def score_models(teacher: Any, models: dict[str, Any], encoded: list[dict], *, pad_id: int, batch_size: int = 8,
                 progress: Callable[[int], None] | None = None) -> dict[str, list[dict]]:
    """-> {model name: [per-row {id, lang, tokens, kl, top1, nll}]}; 'teacher' itself is included."""
    every = {"teacher": teacher, **models}
    result: dict[str, list[dict]] = {name: [] for name in every}
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start: start + batch_size]
        ids, mask, pos, keep = _batch(chunk, pad_id)
        targets = ids[:, -(keep - 1):]  # the tokens the kept logits predict
        t_lp = _logprobs(teacher, ids, mask, pos, keep)
        t_top = t_lp.argmax(-1)
        for name, model in every.items():
            lp = t_lp if name == "teacher" else _logprobs(model, ids, mask, pos, keep)
            kl = (t_lp.exp() * (t_lp - lp)).sum(-1)  # [B, keep-1]
            top1 = (lp.argmax(-1) == t_top).float()
            nll = -lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for i, e in enumerate(chunk):
                n = len(e["target"])  # positions predicting this row's tokens from its first target on
                sel = torch.tensor(e["target"])
                sl = slice(keep - 1 - n, keep - 1)
                result[name].append({"id": e["id"], "lang": e["lang"], "tokens": int(sel.sum()),
                                     "kl": float(kl[i, sl][sel].clamp(min=0).sum()),
                                     "top1": float(top1[i, sl][sel].sum()), "nll": float(nll[i, sl][sel].sum())})
        if progress:
            progress(len(chunk))
    return result


def _metric(rows_kl: np.ndarray, rows_top1: np.ndarray, rows_nll: np.ndarray, tokens: np.ndarray) -> dict:
    n = tokens.sum()
    return {"kl": rows_kl.sum() / n, "top1": rows_top1.sum() / n, "ppl": math.exp(rows_nll.sum() / n)}


def summarize(per_row: dict[str, list[dict]], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Token-weighted metrics per model and language (plus 'all') with bootstrap 95% intervals over sequences."""
    out: dict[str, Any] = {}
    for name, rows in per_row.items():
        langs = sorted({r["lang"] for r in rows}, key=lambda x: [r["lang"] for r in rows].index(x))
        out[name] = {}
        for lang in [*langs, "all"]:
            sel = [r for r in rows if lang == "all" or r["lang"] == lang]
            arr = {k: np.array([r[k] for r in sel], dtype=float) for k in ("kl", "top1", "nll", "tokens")}
            point = _metric(arr["kl"], arr["top1"], arr["nll"], arr["tokens"])
            entry: dict[str, Any] = {"n_rows": len(sel), "n_tokens": int(arr["tokens"].sum())}
            # the same resampled rows for every model (seeded by language), so intervals are comparable
            rng = np.random.default_rng([seed, sum(map(ord, lang))])
            boots = {k: [] for k in METRICS}
            for _ in range(n_boot):
                idx = rng.integers(0, len(sel), size=len(sel))
                if arr["tokens"][idx].sum() == 0:
                    continue
                m = _metric(arr["kl"][idx], arr["top1"][idx], arr["nll"][idx], arr["tokens"][idx])
                for k in METRICS:
                    boots[k].append(m[k])
            for k in METRICS:
                lo, hi = (np.percentile(boots[k], [2.5, 97.5]) if boots[k] else (point[k], point[k]))
                entry[k] = {"value": float(point[k]), "lo": float(lo), "hi": float(hi)}
            out[name][lang] = entry
    return out


def run_heldout(teacher_ref: str, model_dirs: dict[str, Path], heldout_path: Path, out_dir: Path, *,
                batch_size: int, n_boot: int, seed: int, max_len: int,
                log: Callable[[str], None]) -> dict[str, Any]:
    from tqdm import tqdm

    from ..distill.modeling import load_model  # text part only; tokenizers loaded once per content

    rows = read_jsonl(heldout_path)
    if not rows:
        raise ValueError(f"{heldout_path}: no held-out rows")
    teacher_model, tokenizer, _ = load_model(teacher_ref, dtype="float32")
    teacher_model.eval()
    models = {}
    for name, path in model_dirs.items():
        m = load_model(str(path), dtype="float32")[0]
        m.eval()
        models[name] = m
    bar = tqdm(total=len(rows), desc="evaluate: held-out KL", unit="row")
    encoded = encode_rows(tokenizer, heldout_path, max_len=max_len)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    per_row = score_models(teacher_model, models, encoded, pad_id=pad_id, batch_size=batch_size,
                           progress=bar.update)
    bar.close()
    from ..io import write_text
    import json

    write_text(out_dir / "heldout_rows.jsonl",
               "".join(json.dumps({"model": n, **r}, ensure_ascii=False) + "\n" for n, rs in per_row.items() for r in rs))
    summary = summarize(per_row, n_boot=n_boot, seed=seed)
    write_json(out_dir / "heldout.json", summary)
    return summary
