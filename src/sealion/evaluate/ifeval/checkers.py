"""SEA-IFEval instruction checkers: one pure function per instruction id.

Each checker is `check(response, kwargs, ctx) -> bool`. `ctx` carries the task language and the prompt (some
checks need them). The rules follow SEA-HELM's SEA-IFEval: sentences and paragraphs are blocks separated by
`***` (the prompts ask for that divider, which works in every script); keywords use word boundaries only where
words are space-delimited; postscript markers and yes/no answers are native.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..langid import NON_SPACE_DELIMITED, is_language
from .native import WORD_BOUNDARY_LANGS, constrained_options


@dataclass
class CheckContext:
    lang: str  # the task language
    prompt: str = ""


Checker = Callable[[str, dict[str, Any], CheckContext], bool]
CHECKERS: dict[str, Checker] = {}


def checker(instruction_id: str):
    def deco(fn: Checker) -> Checker:
        CHECKERS[instruction_id] = fn
        return fn

    return deco


def compare(value: int, relation: str, n: int) -> bool:
    """IFEval relations: 'less than' (<), 'at least' (>=), 'exactly' (==)."""
    rel = relation.strip().lower()
    if rel == "less than":
        return value < n
    if rel == "at least":
        return value >= n
    if rel == "exactly":
        return value == n
    raise ValueError(f"unknown relation {relation!r}")


# ------------------------------------------------------------------------------------------ length constraints



def star_blocks(response: str) -> list[str]:
    """Blocks of text separated by the `***` markdown divider (empty blocks dropped)."""
    # `****` and longer runs are not the divider (six asterisks separate two responses).
    parts = re.split(r"(?<!\*)\s?\*\*\*\s?(?!\*)", response)
    return [p for p in parts if p.strip()]


@checker("length_constraints:number_paragraphs")
def number_paragraphs(response, kw, ctx):
    return len(star_blocks(response)) == int(kw["num_paragraphs"])


@checker("length_constraints:number_sentences")
def number_sentences(response, kw, ctx):
    return compare(len(star_blocks(response)), kw["relation"], int(kw["num_sentences"]))


@checker("length_constraints:number_words")
def number_words(response, kw, ctx):
    return compare(len(re.findall(r"\w+", response)), kw["relation"], int(kw["num_words"]))


def skips(instruction_id: str, lang: str) -> bool:
    """Items that cannot be checked in `lang`: word counts where words are not space-delimited."""
    return instruction_id == "length_constraints:number_words" and lang in NON_SPACE_DELIMITED


# ------------------------------------------------------------------------------------------ keywords


def _keyword_pattern(keyword: str, lang: str) -> re.Pattern:
    kw = re.escape(keyword.strip())
    if lang in WORD_BOUNDARY_LANGS:
        kw = rf"(?<!\w){kw}(?!\w)"
    return re.compile(kw, re.IGNORECASE)


def count_keyword(response: str, keyword: str, lang: str) -> int:
    return len(_keyword_pattern(keyword, lang).findall(response))


@checker("keywords:existence")
def keywords_existence(response, kw, ctx):
    return all(count_keyword(response, k, ctx.lang) > 0 for k in kw["keywords"])


@checker("keywords:forbidden_words")
def keywords_forbidden(response, kw, ctx):
    return not any(count_keyword(response, k, ctx.lang) > 0 for k in kw["forbidden_words"])


@checker("keywords:frequency")
def keywords_frequency(response, kw, ctx):
    return compare(count_keyword(response, kw["keyword"], ctx.lang), kw["relation"], int(kw["frequency"]))


@checker("keywords:number_frequency")
def number_frequency(response, kw, ctx):
    # A number counts as a whole numeral: "3" is not found in "30" or "1.3".
    num = re.escape(str(kw["number"]).strip())
    count = len(re.findall(rf"(?<![\d.,]){num}(?![\d]|[.,]\d)", response))
    return compare(count, kw["relation"], int(kw["frequency"]))


# ------------------------------------------------------------------------------------------ detectable content


@checker("detectable_content:number_placeholders")
def number_placeholders(response, kw, ctx):
    found = [p for p in re.findall(r"\[([^\[\]\n]*)\]", response) if p.strip()]
    return len(found) >= int(kw["num_placeholders"])


def postscript_pattern(marker: str) -> re.Pattern:
    """`P.S.` -> matches `P.S.`, `P. S.`, `p.s` at the start of a line; native markers (`ป.ล.`) likewise."""
    parts = [re.escape(p.strip()) for p in marker.strip().split(".") if p.strip()]
    body = r"\.\s?".join(parts) + (r"\.?" if marker.strip().endswith(".") else "")
    return re.compile(rf"(?:^|\n)[ \t>*_]*{body}", re.IGNORECASE)


@checker("detectable_content:postscript")
def postscript(response, kw, ctx):
    return bool(postscript_pattern(kw["postscript_marker"]).search(response))


# ------------------------------------------------------------------------------------------ detectable format


@checker("detectable_format:title")
def title(response, kw, ctx):
    return any(t.strip() for t in re.findall(r"<<([^\n<>]+)>>", response))


@checker("detectable_format:number_bullet_lists")
def number_bullet_lists(response, kw, ctx):
    bullets = re.findall(r"^[ \t]*[*\-•][ \t]+\S", response, re.MULTILINE)
    return len(bullets) == int(kw["num_bullets"])


@checker("detectable_format:number_highlighted_sections")
def number_highlighted_sections(response, kw, ctx):
    bold = re.findall(r"\*\*([^\n*]+)\*\*", response)
    rest = re.sub(r"\*\*([^\n*]+)\*\*", " ", response)
    italic = re.findall(r"\*([^\n*]+)\*", rest)
    return sum(1 for h in bold + italic if h.strip()) >= int(kw["num_highlights"])


@checker("detectable_format:multiple_sections")
def multiple_sections(response, kw, ctx):
    title_ = re.escape(kw["section_title"].strip())
    marks = re.findall(rf"(?<!\w){title_}\s*(?:\d+|[IVXLCDM]+(?![a-z])|[A-Z](?!\w))", response)
    return len(marks) >= int(kw["num_sections"])


@checker("detectable_format:json_format")
def json_format(response, kw, ctx):
    text = response.strip()
    text = re.sub(r"^```[ \t]*(?:json)?[ \t]*\n?", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\n?```\s*$", "", text)
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@checker("detectable_format:constrained_response")
def constrained_response(response, kw, ctx):
    options = constrained_options(ctx.lang, ctx.prompt)
    # The final full stop is not part of the choice; everything else must match exactly.
    return any(opt.rstrip(".。").strip() in response for opt in options)


# ------------------------------------------------------------------------------------------ start / end


@checker("startend:end_checker")
def end_checker(response, kw, ctx):
    return response.strip().lower().endswith(kw["end_phrase"].strip().lower())


_LEADING_NOISE = re.compile(r"^[\s\"'“”‘’«»*_#>`(\[]+")


@checker("startend:first_word")
def first_word(response, kw, ctx):
    word = kw["first_word"].strip().lower()
    text = _LEADING_NOISE.sub("", response).lower()
    if not text.startswith(word):
        return False
    if ctx.lang in NON_SPACE_DELIMITED:
        return True  # no word boundary to check in Thai, Burmese, Khmer, Lao
    rest = text[len(word):]
    return not rest or not (rest[0].isalnum() or rest[0] == "_")


@checker("startend:quotation")
def quotation(response, kw, ctx):
    text = response.strip()
    return len(text) > 1 and ((text[0] == '"' and text[-1] == '"') or (text[0] == "“" and text[-1] == "”"))


# ------------------------------------------------------------------------------------------ combination, language


@checker("combination:repeat_prompt")
def repeat_prompt(response, kw, ctx):
    prompt = kw["prompt_to_repeat"].strip().lower()
    text = response.strip().lower()
    # The repeat must come first and an answer must follow it.
    return text.startswith(prompt) and bool(text[len(prompt):].strip(" \n\t\"'“”*:"))


@checker("combination:two_responses")
def two_responses(response, kw, ctx):
    parts = [p.strip() for p in re.split(r"\*{6}", response)]
    if len(parts) != 2 or not all(parts):
        return False
    return parts[0] != parts[1]


@checker("language:response_language")
def response_language(response, kw, ctx):
    return is_language(response, kw["response_language"])


# ------------------------------------------------------------------------------------------ strict / loose


def loose_variants(response: str) -> list[str]:
    """IFEval's loose variants: the response, without its first and/or last line, each with `*` removed too."""
    lines = response.split("\n")
    base = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    variants = base + [b.replace("*", "") for b in base]
    return [v for v in variants if v.strip()]


def check(instruction_id: str, response: str, kwargs: dict[str, Any], ctx: CheckContext, *, loose: bool = False) -> bool:
    """Whether `response` follows one instruction (strict: as written; loose: any IFEval variant passes)."""
    try:
        fn = CHECKERS[instruction_id]
    except KeyError:
        raise KeyError(f"no checker for instruction {instruction_id!r}") from None
    kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
    if not response or not response.strip():
        return False
    candidates = loose_variants(response) if loose else [response]
    return any(fn(c, kwargs, ctx) for c in candidates)
