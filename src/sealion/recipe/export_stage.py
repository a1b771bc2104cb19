"""The recipe's export stage: the final model (merged, else distilled) as GGUF files llama.cpp runs, how far each
drifts from it per language, and one held-out prompt per language answered through the llama.cpp backend.

Writes into the stage directory:
    model.<quant>.gguf          one per `export.quants` (sealion.export: the gguf package, llama.cpp's quantiser)
    fidelity.json               {quant: quantize-report (KL, top-1, perplexity ratio per language)}
    answers.jsonl               {lang, quant, prompt, answer, finish_reason, tokens, token_ids, seconds}: llama.cpp
A GGUF already written by an earlier, killed run is kept (the file appears atomically only when complete).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..io import write_json, write_text


def gguf_name(quant: str) -> str:
    return f"model.{quant}.gguf"


def needs_llama_cpp(spec) -> bool:
    from ..export.gguf_export import FLOAT_TYPES

    return spec.enabled and (spec.fidelity or spec.answer_with is not None
                             or any(q not in FLOAT_TYPES for q in spec.quants))


def check_llama_cpp(spec, source: str) -> None:
    """Before any stage runs: the export stage's k-quants, fidelity and answers need llama-cpp-python."""
    if not needs_llama_cpp(spec):
        return
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise ConfigError(f"{source}: export: needs llama-cpp-python (`make setup` installs it; or set "
                          "export.enabled: false)") from None


def one_prompt_per_language(heldout_path: Path) -> list[dict]:
    """The first held-out row of each language, in file order: {lang, messages (the user turn only)}."""
    seen: dict[str, dict] = {}
    for line in heldout_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["lang"] not in seen:
            user = [m for m in row["messages"] if m["role"] != "assistant"]
            seen[row["lang"]] = {"lang": row["lang"], "messages": user}
    return list(seen.values())


def run_export_stage(spec, model_dir: Path, heldout_path: Path, out_dir: Path, *,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    from ..export import export_gguf

    files: dict[str, str] = {}
    for quant in spec.quants:
        path = out_dir / gguf_name(quant)
        if not path.is_file():
            started = time.monotonic()
            export_gguf(model_dir, path, quant=quant, threads=spec.threads)
            log(f"export: {path.name} written in {time.monotonic() - started:.0f} s")
        files[quant] = str(path)
    out: dict[str, Any] = {"files": {q: {"path": p, "bytes": Path(p).stat().st_size} for q, p in files.items()}}
    if spec.fidelity:
        out["fidelity"] = _fidelity(model_dir, files, out_dir, spec.threads, log)
    if spec.answer_with is not None:
        out["answers"] = _answers(files[spec.answer_with], spec, heldout_path, out_dir, log)
    return out


def _fidelity(model_dir: Path, files: dict[str, str], out_dir: Path, threads, log) -> dict:
    from ..export.fidelity import fidelity_report, load_original

    original = load_original(model_dir)  # loaded once for every export
    reports = {q: fidelity_report(model_dir, path, threads=threads, original=original) for q, path in files.items()}
    write_json(out_dir / "fidelity.json", reports)
    for q, r in reports.items():
        log(f"export: {q} vs the final model: mean KL {r['mean']['kl']:.4f}, top-1 {r['mean']['top1']:.3f}, "
            f"ppl ratio {r['mean']['ppl_ratio']:.3f}")
    return {q: {"mean": r["mean"], "languages": r["languages"]} for q, r in reports.items()}


def _answers(gguf: str, spec, heldout_path: Path, out_dir: Path, log) -> dict:
    from ..engine import ChatRequest, SamplingParams, open_engine

    engine = open_engine(gguf, backend="llama.cpp", n_threads=spec.threads)
    rows = []
    try:
        for item in one_prompt_per_language(heldout_path):
            started = time.monotonic()
            c = engine.chat([ChatRequest(item["messages"], SamplingParams(max_new_tokens=spec.max_new_tokens,
                                                                          temperature=0))])[0]
            rows.append({"lang": item["lang"], "quant": spec.answer_with, "prompt": item["messages"][-1]["content"],
                         "answer": c.content if c.content is not None else c.text, "finish_reason": c.finish_reason,
                         "tokens": c.completion_tokens, "token_ids": c.token_ids, "seconds": round(time.monotonic() - started, 3)})
            log(f"export: [{item['lang']}] {rows[-1]['answer'][:70]!r}")
    finally:
        engine.close()
    write_text(out_dir / "answers.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tokens, seconds = sum(r["tokens"] for r in rows), sum(r["seconds"] for r in rows)
    return {"quant": spec.answer_with, "languages": [r["lang"] for r in rows],
            "ended_turn": sum(r["finish_reason"] == "stop" for r in rows), "n": len(rows),
            "tokens_per_s": round(tokens / seconds, 2) if seconds else None}
