"""The data stage: instruction prompts per language -> (prompt, response) conversations, split train / held-out.

Prompts come from the project's own builtin set (`data/prompts.yaml`), a JSONL file (`{"lang", "prompt"}` rows or
`{"lang", "messages"}` conversations) or a SEA-Instruct-style directory of parquet files (one folder per language,
`conversations` holding a Python-literal list of turns). Responses are the teacher's own continuations (generated
once, batched, appended to `generated.jsonl` as they come so a killed run resumes) or the dataset's own.
"""

from __future__ import annotations

import ast
import json
import random
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import DataError
from ..io import append_jsonl, read_jsonl, write_json
from .config import LANGUAGES, Recipe, resolve_path

# SEA-Instruct folder names (and a few spellings) -> our language codes
LANGUAGE_NAMES = {
    "english": "en", "indonesian": "id", "vietnamese": "vi", "thai": "th", "tamil": "ta", "filipino": "tl",
    "tagalog": "tl", "malay": "ms", "burmese": "my", "myanmar": "my",
}


def builtin_prompts() -> dict[str, list[str]]:
    text = resources.files("sealion.recipe").joinpath("data/prompts.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {lang: list(data[lang]) for lang in LANGUAGES}


def _lang_code(name: str) -> str | None:
    key = name.strip().lower()
    if key in LANGUAGES:
        return key
    return LANGUAGE_NAMES.get(key.split("_")[0])


def _rows_from_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, row in enumerate(read_jsonl(path, tolerate_torn_tail=False), 1):
        lang = _lang_code(str(row.get("lang", row.get("language", ""))))
        if lang is None:
            raise DataError(f"{path}: row {i}: 'lang' must be one of {', '.join(LANGUAGES)}")
        if "messages" in row:
            msgs = row["messages"]
            if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
                raise DataError(f"{path}: row {i}: 'messages' must be a non-empty list of {{role, content}}")
            user = [m for m in msgs if m.get("role") == "user"]
            asst = [m for m in msgs if m.get("role") == "assistant"]
            if not user:
                raise DataError(f"{path}: row {i}: no user turn")
            rows.append({"lang": lang, "prompt": str(user[0].get("content", "")),
                         "response": str(asst[0]["content"]) if asst else None})
        elif "prompt" in row:
            rows.append({"lang": lang, "prompt": str(row["prompt"]), "response": row.get("response")})
        else:
            raise DataError(f"{path}: row {i}: needs 'prompt' or 'messages'")
    return rows


def _rows_from_sea_instruct(root: Path, languages: list[str], limit: int | None) -> list[dict[str, Any]]:
    """SEA-Instruct layout: ROOT/<Language>/*.parquet with a `conversations` column (a Python-literal string)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        lang = _lang_code(sub.name)
        if lang not in languages:
            continue
        taken = 0
        for f in sorted(sub.glob("*.parquet")):
            table = pq.read_table(f, columns=["conversations"])
            for j, conv in enumerate(table.column("conversations").to_pylist()):
                try:
                    turns = ast.literal_eval(conv) if isinstance(conv, str) else conv
                except (ValueError, SyntaxError):
                    raise DataError(f"{f}: row {j}: 'conversations' is not a Python literal") from None
                user = next((t for t in turns if t.get("role") == "user"), None)
                asst = next((t for t in turns if t.get("role") == "assistant"), None)
                if user is None:
                    continue
                rows.append({"lang": lang, "prompt": str(user.get("content", "")),
                             "response": str(asst["content"]) if asst else None})
                taken += 1
                if limit is not None and taken >= limit:
                    break
            if limit is not None and taken >= limit:
                break
    return rows


def load_prompt_rows(recipe: Recipe) -> list[dict[str, Any]]:
    """All candidate rows for the recipe's languages (before selection), each {lang, prompt, response|None}."""
    spec = recipe.data
    if spec.source == "builtin":
        table = builtin_prompts()
        return [{"lang": lang, "prompt": p, "response": None} for lang in spec.languages for p in table[lang]]
    path = resolve_path(recipe, spec.source)
    if spec.format == "sea-instruct":
        if not path.is_dir():
            raise DataError(f"{path}: a SEA-Instruct source must be a directory with one folder per language")
        limit = None if spec.per_language is None else spec.per_language + spec.heldout_per_language
        return _rows_from_sea_instruct(path, spec.languages, limit)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    rows = [r for f in files for r in _rows_from_jsonl(f)]
    return [r for r in rows if r["lang"] in spec.languages]


def select_rows(recipe: Recipe, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per language: a seeded shuffle, the first `heldout_per_language` held out, then up to `per_language` train
    rows. Ids are stable (`<lang>-<index in the source>`) so reruns and resumes line up."""
    spec = recipe.data
    out: list[dict[str, Any]] = []
    for lang in spec.languages:
        mine = [(i, r) for i, r in enumerate(x for x in rows if x["lang"] == lang)]
        if len(mine) <= spec.heldout_per_language:
            raise DataError(f"data: language {lang!r} has {len(mine)} rows; need more than "
                            f"heldout_per_language={spec.heldout_per_language}")
        random.Random(f"{spec.seed}-{lang}").shuffle(mine)
        held = mine[: spec.heldout_per_language]
        train = mine[spec.heldout_per_language:]
        if spec.per_language is not None:
            train = train[: spec.per_language]
        for split, part in (("heldout", held), ("train", train)):
            for i, r in part:
                if spec.responses == "dataset" and not r.get("response"):
                    continue
                out.append({"id": f"{lang}-{i:05d}", "lang": lang, "split": split, "prompt": r["prompt"],
                            "response": r.get("response")})
    return out


def prompt_renderer(tokenizer: Any) -> Callable[[str], tuple[str, list[int] | None]]:
    """(text, ids) the teacher continues. A chat model gets the conversation exactly as distillation will render it:
    the one renderer's ids (never its text re-tokenized, so a prompt that types `<turn|>` stays text). A base model
    (no chat template, like the demo model) has never seen a chat format and only echoes its markers, so it
    continues the request as plain text instead."""
    if not getattr(tokenizer, "chat_template", None):
        return lambda prompt: (prompt + "\n", None)
    from ..chat import render_prompt

    def render(prompt: str) -> tuple[str, list[int] | None]:
        rendered = render_prompt(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True)
        return rendered.text, list(rendered.ids)

    return render


def run_data_stage(recipe: Recipe, out_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    rows = select_rows(recipe, load_prompt_rows(recipe))
    spec = recipe.data
    gen_path = out_dir / "generated.jsonl"
    if spec.responses == "teacher":
        done = {r["id"]: r for r in read_jsonl(gen_path)}
        todo = [r for r in rows if r["id"] not in done]
        if done:
            log(f"data: {len(done)} responses already generated, {len(todo)} to go")
        if todo:
            _generate(recipe, todo, gen_path, log)
            done = {r["id"]: r for r in read_jsonl(gen_path)}
        for r in rows:
            g = done[r["id"]]
            r["response"] = g["response"]
            r["prompt_text"] = g["prompt_text"]
    counts: dict[str, dict[str, int]] = {}
    for split in ("train", "heldout"):
        part = [r for r in rows if r["split"] == split]
        lines = [json.dumps({"id": r["id"], "lang": r["lang"], "messages": [
            {"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}],
            **({"prompt_text": r["prompt_text"]} if "prompt_text" in r else {})}, ensure_ascii=False) for r in part]
        from ..io import write_text

        write_text(out_dir / f"{split}.jsonl", "".join(line + "\n" for line in lines))
        for r in part:
            counts.setdefault(r["lang"], {"train": 0, "heldout": 0})[split] += 1
    write_json(out_dir / "counts.json", counts)
    return {"rows": len(rows), "per_language": counts}


def _generate(recipe: Recipe, todo: list[dict[str, Any]], gen_path: Path, log: Callable[[str], None]) -> None:
    from tqdm import tqdm

    from ..engine import open_engine
    from ..engine.types import CompletionRequest, SamplingParams

    g = recipe.data.generate
    engine = open_engine(recipe.teacher, max_batch_size=g.batch_size, text_only=True)
    try:
        tokenizer = getattr(engine, "tokenizer", None)
        if tokenizer is None:
            from ..models import load_tokenizer, resolve

            tokenizer = load_tokenizer(resolve(recipe.teacher))
        render = prompt_renderer(tokenizer)
        params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p,
                                do_sample=g.temperature > 0, seed=g.seed)
        bar = tqdm(total=len(todo), desc="data: teacher responses", unit="prompt")
        for start in range(0, len(todo), g.batch_size):
            batch = todo[start: start + g.batch_size]
            rendered = [render(r["prompt"]) for r in batch]
            texts = [t for t, _ in rendered]
            outs = engine.complete([CompletionRequest(prompt=t, params=params, id=r["id"], prompt_ids=ids)
                                    for (t, ids), r in zip(rendered, batch)])
            for o in outs:
                if o.finish_reason == "error":
                    raise DataError(f"data: the teacher failed on a prompt: {o.error}")
            append_jsonl(gen_path, [{"id": r["id"], "prompt_text": t, "response": _clean(o.text)}
                                    for r, t, o in zip(batch, texts, outs)])
            bar.update(len(batch))
        bar.close()
    finally:
        engine.close()


def _clean(text: str) -> str:
    # the engine keeps special tokens; a response is plain text
    for tok in ("<end_of_turn>", "<eos>", "<turn|>", "<pad>"):
        text = text.replace(tok, "")
    return text.strip() or "."
