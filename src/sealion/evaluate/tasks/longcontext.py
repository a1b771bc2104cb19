"""Long-context suites: OneRuler NIAH (needle in a haystack) and CWE (common words extraction), as SEA-HELM's
``long_context/oneruler`` generates them, at any context length.

The items are generated, not read: the haystack is cut from the books / word lists in SEA-HELM's tree (pass it as
``--data .../seahelm_tasks``), sized with the *evaluated model's tokenizer* to the task's ``context_size`` (a task
name suffix picks it: ``niah-multikey@32k`` is 32 000 tokens, SEA-HELM's 8k/32k/64k/128k are ``@8k`` ...), and
the needles are placed with SEA-HELM's seeds (``random.Random(9472347)`` draws one seed per sample). The prompt
always fits the model: when ``context_size + max_tokens`` exceeds ``max_position_embeddings`` the haystack is
shrunk to fit and the items record the context size used (``metrics["context_size"]``).

Scoring (SEA-HELM's ``NIAHMetric`` / ``CweMetric``): the answer is everything between the answer tag and the last
``</`` (no tag: the string ``"None"``), split on commas, stripped, lower-cased; an item's ``accuracy`` is the share
of gold values found and its score (``normalized_strict_accuracy``) 1 only when all are.
"""

from __future__ import annotations

import csv
import math
import random
import re
import string
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from . import ItemScore, TaskKind, TaskSpec, register_kind

RECIPE_SEED = 9472347  # SEA-HELM's random_seed for every OneRuler task
GENERATION_MARGIN = 64  # chat-template tokens around the user turn, kept free when the model's window is the limit

_CLOSING = "'\"”’』」｣》⟩)]}）］｝»"
_QUOTES_BRACKETS = "“”‘’『』「」｢｣《》（）［］｛｝«»"
_OTHER_PUNCT = "｡。，、､…：；？！။"
_BLANK = string.whitespace + string.punctuation + _OTHER_PUNCT + _QUOTES_BRACKETS
_ENDINGS = {"zh": "｡。！？", "my": "။.!?"}
# no split after single letters, common abbreviations or digits (fixed-width look-behinds, one group per length)
_NO_SPLIT = (r"(?<!\b[a-z]\.)(?<!\b(?:Mr|Dr|Ms|Sr|Jr|Co|vs|Lt|St|Rd)\.)"
             r"(?<!\b(?:i\.e|e\.g|a\.m|p\.m|M\.A|Mrs|Inc|Ltd|etc|Rev|Hon|Gen|Sgt|Rep|Sen|Ave|Col)\.)"
             r"(?<!\b(?:Ph\.D|Prof|Capt|Blvd|Corp)\.)")


# --------------------------------------------------------------------------------------------------- helpers


def split_sentences(text: str, lang: str) -> list[str]:
    """Paragraphs (line breaks), then sentences ending in the language's full stops followed by whitespace;
    pieces with no text character are dropped."""
    endings = _ENDINGS.get(lang, ".!?")
    rexp = re.compile(rf"({_NO_SPLIT}(?<![\d])[{re.escape(endings)}]+[{re.escape(_CLOSING)}\*_]*)(\s+)")
    out: list[str] = []
    for para in re.split(r"[\r|\n]", text):
        if para.strip(_BLANK) == "":
            continue
        for s in rexp.sub("\\1<-split->", para).split("<-split->"):
            if s.strip(_BLANK) != "":
                out.append(s.strip())
    return out


class ModelTokenizer:
    """The evaluated model's tokenizer and context window (what SEA-HELM's recipe sizes haystacks with)."""

    def __init__(self, tokenizer: Any, max_positions: int):
        self.tok = tokenizer
        self.max_positions = int(max_positions or 0)

    def count(self, text: str, *, special: bool = False) -> int:
        return len(self.tok(text, add_special_tokens=special)["input_ids"])

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids)


def _max_positions(config: Any) -> int:
    cfg = getattr(config, "text_config", None) or config
    if isinstance(cfg, dict):
        return int(cfg.get("text_config", cfg).get("max_position_embeddings", 0) or 0)
    return int(getattr(cfg, "max_position_embeddings", 0) or 0)


def model_tokenizer(model: Any) -> ModelTokenizer:
    """From an opened in-process engine or a model reference; an endpoint has no tokenizer here."""
    loaded = getattr(model, "loaded", None)
    if loaded is not None:
        return ModelTokenizer(loaded.tokenizer, _max_positions(loaded.config))
    if isinstance(model, str) and not model.startswith(("http://", "https://")):
        return _tokenizer_for_ref(model)
    raise ConfigError("long-context tasks size their haystack with the model's tokenizer: evaluate a local model "
                      "(an endpoint URL has none here)")


@lru_cache(maxsize=4)
def _tokenizer_for_ref(ref: str) -> ModelTokenizer:
    import json

    from ...models.load import load_tokenizer
    from ...models.refs import resolve

    path = resolve(ref)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return ModelTokenizer(load_tokenizer(path), _max_positions(config))


def recipe_file(source: Any, rel: str, task: str, lang: str) -> Path:
    """A file of SEA-HELM's tree under one of the `--data` roots (with or without the `seahelm_tasks/` level)."""
    from ..data import MissingData

    for root in getattr(source, "roots", []) or []:
        for base in (Path(root), Path(root) / "seahelm_tasks"):
            p = base / rel
            if p.exists():
                return p
    raise MissingData(f"task {task!r} [{lang}]: generated from SEA-HELM's recipe files ({rel}); pass --data "
                      f"pointing at a SEA-HELM seahelm_tasks tree")


def english_words() -> list[str]:
    """English CWE's vocabulary, as SEA-HELM (after RULER) takes it: the nouns, adjectives and verbs of the
    `wonderwords` package (an optional dependency; its word lists are not in SEA-HELM's tree)."""
    try:
        from importlib import resources

        assets = resources.files("wonderwords") / "assets"
    except ModuleNotFoundError:
        raise ConfigError("English CWE needs the wonderwords word lists: pip install wonderwords") from None
    words: list[str] = []
    for name in ("nounlist.txt", "adjectivelist.txt", "verblist.txt"):
        words += [w.strip() for w in (assets / name).read_text(encoding="utf-8").splitlines() if w.strip()]
    return words


def cwe_words(source: Any, task: str, lang: str) -> list[str]:
    """The CWE vocabulary of `lang`: the tree's vocab/<lang>_words.txt; English from wonderwords."""
    from ..data import MissingData

    try:
        path = recipe_file(source, f"long_context/oneruler/cwe/vocab/{lang}_words.txt", task, lang)
    except MissingData:
        if lang == "en":
            return english_words()
        raise
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def seeds(n: int) -> list[int]:
    return random.Random(RECIPE_SEED).sample(range(2**31 - 1), n)


def extract_list(response: str | None, answer_tag: str | None) -> list[str]:
    """Everything between the answer tag and the last ``</`` (else ``"None"``), comma-split, stripped, lower."""
    m = re.search(rf"(?<={re.escape(answer_tag or '')})([\s\S]*)(?=</)", response or "")
    text = m.group(1).strip() if m else "None"
    return [x.strip().lower() for x in text.split(",")]


# --------------------------------------------------------------------------------------------------- kinds


class _OneRulerKind(TaskKind):
    """Shared by NIAH and CWE: sizing, scoring, metrics."""

    default_samples = 200

    def context_size(self, spec: TaskSpec, lang: str, tok: ModelTokenizer) -> int:
        """The task's context size, shrunk when it and the answer budget do not fit the model's window."""
        want = int(spec.options.get("context_size", 8000))
        if tok.max_positions:
            room = tok.max_positions - self.max_tokens(spec, lang) - GENERATION_MARGIN
            if room < want:
                if room < 256:
                    raise ConfigError(f"task {spec.name!r}: the model's window ({tok.max_positions} tokens) leaves no "
                                      f"room for a haystack after {self.max_tokens(spec, lang)} answer tokens")
                return room
        return want

    def prompt_overhead(self, spec: TaskSpec, lang: str, tok: ModelTokenizer) -> int:
        p = spec.lang(lang).prompt
        return tok.count(p.preamble.replace("{answer_tag}", p.answer_tag or "") + p.template)

    def score(self, spec, lang, items, outputs, ctx):
        tag = spec.lang(lang).prompt.answer_tag
        out = []
        for item, turns in zip(items, outputs):
            pred = extract_list(turns[0].answer if turns else "", tag)
            ref = {str(x).strip().lower() for x in item.label}
            found = len(set(pred) & ref) / len(ref) if ref else 0.0
            out.append(ItemScore(score=float(found == 1.0), extracted=pred, details={"accuracy": found}))
        return out

    def task_metrics(self, spec, lang, items, scores):
        n = len(scores) or 1
        m = {spec.metric: 100.0 * sum(s.score or 0.0 for s in scores) / n,
             "accuracy": 100.0 * sum(s.details.get("accuracy", 0.0) for s in scores) / n}
        if items:
            m["context_size"] = float(items[0].metadata.get("context_size", 0))
        return m


@register_kind
class NIAHKind(_OneRulerKind):
    """Needles ``needle`` (``{needle}``, ``{value}``) inserted before random sentences of a book; options
    ``min_num_keys`` (needles in all), ``num_values`` (values of the asked key; 0: none) or ``num_queries``
    (keys asked)."""

    name = "niah"

    def load_rows(self, spec, lang, source, *, model=None, limit=None):
        ls = spec.lang(lang)
        tok = model_tokenizer(model)
        opts = spec.options
        keys, n_values, n_queries = int(opts.get("min_num_keys", 4)), opts.get("num_values"), opts.get("num_queries")
        if (n_values is None) == (n_queries is None):
            raise ConfigError(f"{spec.path}: set exactly one of num_values and num_queries")
        needle_fmt = ls.extra.get("needle")
        if not needle_fmt or "{needle}" not in needle_fmt or "{value}" not in needle_fmt:
            raise ConfigError(f"{spec.path}: languages.{lang}.needle must hold {{needle}} and {{value}}")
        vocab = _vocab(recipe_file(source, "long_context/oneruler/niah/vocab/100_noun_list_translated.tsv",
                                   spec.name, lang), lang)
        book_dir = recipe_file(source, f"long_context/oneruler/niah/books/{lang}", spec.name, lang)
        books = re.sub(r"[ \t]+", " ", "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(book_dir.glob("*.txt"))))

        context = self.context_size(spec, lang, tok)
        needle_tokens = tok.count(needle_fmt.format(needle=random.Random(RECIPE_SEED).choice(vocab), value=123456789))
        target = context - self.prompt_overhead(spec, lang, tok) - needle_tokens * keys
        text = tok.decode(_first_tokens(tok, books, target))
        sentences = split_sentences(text, lang)
        n = min(limit or self.default_samples, int(opts.get("num_samples", self.default_samples)))
        rows = []
        for i, seed in enumerate(seeds(n)):
            row = _niah_instance(seed, text, sentences, vocab, needle_fmt, keys, n_values, n_queries,
                                 ls.extra.get("and_word", ", and "), ls.extra.get("quote", '"{needle}"'),
                                 "，" if lang == "zh" else ", ")
            row["id"] = i
            row["metadata"].update({"context_size": context, "seed": seed})
            rows.append(row)
        return rows


@register_kind
class CWEKind(_OneRulerKind):
    """A numbered word list where ``num_common_words`` words repeat ``num_repeats_common_words`` times and the
    rest ``num_repeats_uncommon_words`` times; the model names the common ones."""

    name = "cwe"

    def load_rows(self, spec, lang, source, *, model=None, limit=None):
        tok = model_tokenizer(model)
        opts = spec.options
        k = int(opts.get("num_common_words", 10))
        rep_common, rep_uncommon = int(opts.get("num_repeats_common_words", 20)), int(opts.get("num_repeats_uncommon_words", 10))
        words = [" " + w for w in sorted(set(cwe_words(source, spec.name, lang)))]
        counts = {w: c for w, c in zip(words, (len(x) for x in tok.tok(words, add_special_tokens=False)["input_ids"]))}
        avg = sum(counts.values()) / len(counts)
        context, overhead = self.context_size(spec, lang, tok), self.prompt_overhead(spec, lang, tok)
        budget = context - overhead
        n = min(limit or self.default_samples, int(opts.get("num_samples", self.default_samples)))
        rows = []
        for i, seed in enumerate(seeds(n)):
            pool = words.copy()
            random.Random(seed).shuffle(pool)
            common, uncommon = pool[:k], pool[k:]
            extra = k * rep_common * (sum(counts[w] for w in common) / k - avg)
            est = random.Random(seed)  # SEA-HELM draws these from the unseeded global generator
            num_words = _estimate_words(tok, budget - extra, avg, est)
            uncommon = uncommon * rep_uncommon
            random.Random(seed).shuffle(uncommon)
            repeated = common * rep_common
            for _ in range(3):
                if num_words < len(repeated) or num_words - len(repeated) > len(uncommon):
                    raise ConfigError(f"task {spec.name!r} [{lang}]: context {budget} tokens cannot hold the word list")
                listed = repeated + uncommon[: num_words - len(repeated)]
                random.Random(seed).shuffle(listed)
                word_str = " ".join(f"{j + 1}.{w}" for j, w in enumerate(listed))
                n_tokens = tok.count(word_str, special=True)
                diff = budget - n_tokens
                if abs(diff) < 100:
                    break
                num_words = _estimate_words(tok, diff + budget - extra, avg, est)
            rows.append({"id": i, "prompts": [{"list": word_str, "num_common_words": k}],
                         "label": [w.strip() for w in common],
                         "metadata": {"num_tokens": n_tokens + overhead, "context_size": context, "seed": seed}})
        return rows


# --------------------------------------------------------------------------------------------------- recipe


def _vocab(path: Path, lang: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if lang not in (reader.fieldnames or []):
            raise ConfigError(f"{path}: no column {lang!r} (has {', '.join(reader.fieldnames or [])})")
        return [row[lang].strip() for row in reader]


def _first_tokens(tok: ModelTokenizer, text: str, n: int) -> list[int]:
    """The first `n` tokens of `text` (repeated when too short), tokenising only a prefix that is long enough."""
    if n <= 0:
        raise ConfigError(f"context too small: {n} tokens left for the haystack")
    chars = max(4 * n, 1024)
    while True:
        ids = tok.encode(text[:chars])
        if len(ids) >= n + 16 or chars >= len(text):
            break
        chars *= 2
    if len(ids) < n:  # the book is shorter than the haystack: repeat it, as SEA-HELM does
        ids = tok.encode(text * (n // max(len(ids), 1) + 1))
    return ids[:n]


def _insert(text: str, sentences: list[str], rng: random.Random, fmt: str, needle: str, value: str) -> str:
    point = rng.choice(sentences)
    return text.replace(point, fmt.format(needle=needle, value=value) + point, 1)


def _niah_instance(seed, text, sentences, vocab, fmt, keys, n_values, n_queries, and_word, quote, comma) -> dict:
    rng = random.Random(seed)
    pool = list(vocab)
    labels: list[str] = []
    needles: list[str] = []

    def distractor(t: str) -> str:
        value = str(rng.randint(0, 2**31 - 1))
        needle = rng.choice(pool)
        pool.remove(needle)
        return _insert(t, sentences, rng, fmt, needle, value)

    if n_queries is not None:
        if n_queries > keys:
            raise ConfigError("num_queries cannot exceed min_num_keys")
        for _ in range(n_queries):
            value = str(rng.randint(0, 2**31 - 1))
            needle = rng.choice(pool)
            pool.remove(needle)
            text = _insert(text, sentences, rng, fmt, needle, value)
            labels.append(value)
            needles.append(needle)
        first_distractor = n_queries
    else:
        if n_values > keys:
            raise ConfigError("num_values cannot exceed min_num_keys")
        needle = rng.choice(pool)
        pool.remove(needle)
        needles.append(needle)
        if n_values == 0:
            labels.append("none")
        for _ in range(n_values):
            value = str(rng.randint(0, 2**31 - 1))
            text = _insert(text, sentences, rng, fmt, needle, value)
            labels.append(value)
        first_distractor = n_values
    for _ in range(first_distractor, keys):
        text = distractor(text)
    quoted = [quote.format(needle=x) for x in needles]
    needle_text = quoted[0] if len(quoted) == 1 else comma.join(quoted[:-1]) + and_word + quoted[-1]
    return {"prompts": [{"text": text, "needle_text": needle_text}], "label": labels,
            "metadata": {"num_queries": n_queries, "num_values": n_values, "num_keys": keys}}


def _estimate_words(tok: ModelTokenizer, budget: float, avg: float, rng: random.Random, num_words: int = 0) -> int:
    """How many numbered words fit `budget` tokens, filling one order of magnitude at a time."""
    power = math.floor(math.log10(num_words)) if num_words > 0 else 0
    while True:
        entry = tok.count(f" {rng.randint(10**power, 10 ** (power + 1) - 1)}.")
        more = 10 ** (power + 1) - 10**power
        cost = more * (entry + avg)
        if cost > budget:
            num_words += int(budget // (entry + avg))
            return int(num_words)
        num_words += more
        budget -= cost
        power += 1
