"""Judge prompts for SEA-MT-Bench, written for sealion.

Two judging modes:
* pairwise: the judge compares the evaluated model's answer with a stored baseline answer and ends with
  `[[A]]`, `[[B]]` or `[[C]]` (tie). Turn 2 is judged with both full conversations in view.
* criteria: the judge rates one answer against one criterion and ends with a `<classification>` tag holding one
  of five classes.
"""

from __future__ import annotations

from ...errors import ConfigError

PAIRWISE_SYSTEM = """\
You are an impartial expert judge of AI assistants. Two assistants, A and B, answered the same user. Decide \
which answer serves the user better.

How to judge:
- Correctness comes first: an answer with factual, logical or calculation errors loses to a correct one. \
When a reference answer is given, use it to check correctness.
- Then consider how completely and directly the answer follows the user's instructions, its depth, clarity \
and usefulness.
- The answer must be written in the language the user wrote in. An answer in another language is a serious \
fault unless the user asked for that language.
- Ignore the order in which the answers appear, their length as such, and the assistants' names.

Write a short comparison (a few sentences). Then, on the last line, write your verdict in exactly one of these \
forms and nothing after it:
[[A]] - assistant A is better
[[B]] - assistant B is better
[[C]] - they are equally good (a tie)"""

PAIRWISE_SINGLE = """\
<user_question>
{question}
</user_question>
{reference}
<assistant_a_answer>
{answer_a}
</assistant_a_answer>

<assistant_b_answer>
{answer_b}
</assistant_b_answer>

Which assistant answered the user's question better? End with [[A]], [[B]] or [[C]]."""

PAIRWISE_MULTI = """\
Both assistants had the same two-turn conversation with the user. Judge ONLY their answers to the user's \
SECOND message, taking the whole conversation into account (the second answer should build on the first).

<conversation_with_assistant_a>
[User] {q1}

[Assistant A] {a1}

[User] {q2}

[Assistant A] {a2}
</conversation_with_assistant_a>

<conversation_with_assistant_b>
[User] {q1}

[Assistant B] {b1}

[User] {q2}

[Assistant B] {b2}
</conversation_with_assistant_b>
{reference}
Which assistant answered the user's second message better? End with [[A]], [[B]] or [[C]]."""

REFERENCE_BLOCK = """
<reference_answer>
{reference}
</reference_answer>
"""

CRITERIA_CLASSES = {
    "CLASS_UNMET": 0.0,
    "CLASS_SLIGHTLY_MET": 0.25,
    "CLASS_MODERATELY_MET": 0.5,
    "CLASS_MAJORLY_MET": 0.75,
    "CLASS_EXACTLY_MET": 1.0,
}

CRITERIA_SYSTEM = """\
You are an expert evaluator. You will read a conversation between a user and an AI assistant and one \
criterion. Rate how well the assistant's LAST answer (marked "to evaluate") meets that criterion, and nothing \
else. Earlier assistant turns are context only.

Think it through first inside <reflection>...</reflection>: quote or point to the parts of the answer that \
matter, and check facts and calculations yourself (use the reference answer when one is given). Then give \
exactly one class inside <classification>...</classification>:
CLASS_UNMET - the criterion is not met at all
CLASS_SLIGHTLY_MET - met only in small part
CLASS_MODERATELY_MET - about half met
CLASS_MAJORLY_MET - mostly met, with minor gaps
CLASS_EXACTLY_MET - fully met

Example output:
<reflection>The answer lists three causes as asked, but the second one is factually wrong.</reflection>
<classification>CLASS_MODERATELY_MET</classification>"""

CRITERIA_USER = """\
<conversation>
{transcript}
</conversation>
{reference}
<criterion>
{criterion}
</criterion>

Rate the answer marked "to evaluate" against the criterion. End with <classification>CLASS_...</classification>."""

# Generic criteria for rows that carry none (the v1 SEA-MT-Bench files have no per-item criteria).
DEFAULT_CRITERIA_TURN1 = (
    "The answer does what the user asked, completely and directly, following every explicit instruction "
    "(format, length, number of items, style).",
    "The answer is factually, logically and mathematically correct (when a reference answer is given, it agrees "
    "with it).",
    "The answer is written fluently and naturally in the same language as the user's message (unless the user "
    "asked for another language).",
)
DEFAULT_CRITERIA_TURN2 = DEFAULT_CRITERIA_TURN1 + (
    "The answer builds on the earlier conversation: it uses what was said in the first turn and applies the "
    "user's follow-up request to it instead of starting over or ignoring it.",
)


def reference_block(reference: str | None) -> str:
    return REFERENCE_BLOCK.format(reference=reference.strip()) if reference and reference.strip() else ""


def pairwise_messages(questions: list[str], answers_a: list[str], answers_b: list[str], turn: int,
                      reference: str | None = None) -> list[dict[str, str]]:
    """Messages asking to compare A and B on `turn` (1-based)."""
    if turn == 1:
        user = PAIRWISE_SINGLE.format(question=questions[0], answer_a=answers_a[0], answer_b=answers_b[0],
                                      reference=reference_block(reference))
    else:
        user = PAIRWISE_MULTI.format(q1=questions[0], q2=questions[1], a1=answers_a[0], a2=answers_a[1],
                                     b1=answers_b[0], b2=answers_b[1], reference=reference_block(reference))
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


def criteria_messages(questions: list[str], answers: list[str], turn: int, criterion: str,
                      reference: str | None = None) -> list[dict[str, str]]:
    """Messages asking to rate the answer of `turn` (1-based) against one criterion."""
    lines = []
    for t in range(turn):
        lines.append(f"[User] {questions[t]}")
        tag = "[Assistant - to evaluate]" if t == turn - 1 else "[Assistant - earlier turn, context only]"
        lines.append(f"{tag} {answers[t]}")
    user = CRITERIA_USER.format(transcript="\n\n".join(lines), reference=reference_block(reference), criterion=criterion)
    return [{"role": "system", "content": CRITERIA_SYSTEM}, {"role": "user", "content": user}]


def seahelm_transcript(questions: list[str], answers: list[str], turn: int) -> str:
    """SEA-HELM's criteria-judge transcript up to `turn` (1-based): `[User]` blocks, earlier answers as
    `[Assistant (fixed)]`; the judged answer goes into the prompt's `<TEXT>` instead."""
    blocks = []
    for t in range(turn):
        blocks.append(f"[User]\n{questions[t]}")
        if t < turn - 1:
            blocks.append(f"[Assistant (fixed)]\n{answers[t]}")
    return "\n\n".join(blocks)


def seahelm_criteria_messages(judge_prompts: dict, questions: list[str], answers: list[str], turn: int,
                              criterion: str, where: str = "") -> list[dict[str, str]]:
    """A criteria-judge call with the judge prompts of a SEA-HELM task config (`judge.judge_prompts`): its system
    prompt, and its `criteria_prompt` (one string, or one per turn as `turn_1`, `turn_2`)."""
    tmpl = judge_prompts.get("criteria_prompt")
    if isinstance(tmpl, dict):
        tmpl = tmpl.get(f"turn_{turn}")
    if not isinstance(tmpl, str):
        raise ConfigError(f"{where}: judge.judge_prompts.criteria_prompt has no template for turn {turn}")
    fields = {"transcript": seahelm_transcript(questions, answers, turn), "prompt": questions[turn - 1],
              "response": answers[turn - 1], "keyPointText": criterion}
    try:
        user = tmpl.format(**fields)
    except (KeyError, IndexError) as e:
        raise ConfigError(f"{where}: judge criteria_prompt names {e}, not one of {sorted(fields)}") from None
    system = judge_prompts.get("system_prompt")
    return ([{"role": "system", "content": str(system)}] if system else []) + [{"role": "user", "content": user}]
