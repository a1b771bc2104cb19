"""Task specs, task sets, row loading (v1 local format, stringified lists, numeric labels) and prompt building."""

from pathlib import Path

import pytest

from sealion.errors import ConfigError
from sealion.evaluate.data import DataSource, MissingData, load_fewshot_rows, load_rows, normalize_row
from sealion.evaluate.tasks import SEA_LANGUAGES, all_specs, get_kind, resolve_tasks, task_sets

FIXTURES = Path(__file__).parent / "fixtures" / "seahelm"
CHOICE_KINDS = {"choice", "minimal-pairs", "pragmatics"}


def test_every_spec_is_complete():
    specs = all_specs()
    for name in ["sentiment", "qa", "belebele-qa-mc", "metaphor", "toxicity", "translation-en-xx", "translation-xx-en",
                 "abssum", "causal", "nli", "mp-r", "pragmatic-single", "pragmatic-pair", "kalahi-mc",
                 "global-mmlu-lite", "thai-exam-onet"]:
        assert name in specs, name
    for spec in specs.values():
        if spec.kind not in CHOICE_KINDS | {"extractive-qa", "summarization", "translation"}:
            continue  # plug-in kinds (ifeval, mtbench) own their specs
        for lang, ls in spec.languages.items():
            p = ls.prompt
            assert p.answer_tag and p.max_tokens > 0, (spec.name, lang)
            assert '"{answer_tag} ' in p.preamble, (spec.name, lang)  # the quoted answer format
            if spec.kind in CHOICE_KINDS:
                assert ls.labels, (spec.name, lang)
                assert set(ls.label_map.values()) <= set(ls.labels), (spec.name, lang)


def test_seahelm_set_covers_seven_languages():
    sets = task_sets()
    assert set(sets["seahelm"]) == set(SEA_LANGUAGES)
    plan = resolve_tasks(["seahelm"])
    assert set(plan) == set(SEA_LANGUAGES)
    assert "thai-exam-onet" in plan["th"] and "global-mmlu-lite" in plan["my"]
    assert resolve_tasks(["sentiment", "causal"], ["th"]) == {"th": ["sentiment", "causal"]}
    with pytest.raises(ConfigError, match="unknown task"):
        resolve_tasks(["no-such-task"])


def test_normalize_row_shapes():
    r = normalize_row({"label": "['a', 'b']", "prompts": "[{'text': 'x', 'y': None}]"}, 3)
    assert r["id"] == 3 and r["label"] == ["a", "b"] and r["prompts"] == [{"text": "x", "y": ""}]
    flat = normalize_row({"question": "q", "a": "1", "answer": "a", "subject": "s"}, 0)  # hub ThaiExam shape
    assert flat["label"] == "a" and flat["prompts"][0]["question"] == "q"


def test_fixture_rows_map_to_native_labels():
    src = DataSource.parse(str(FIXTURES))
    spec = all_specs()["sentiment"]
    kind = get_kind(spec.kind)
    items = kind.make_items(spec, "id", load_rows(spec.lang("id"), src, task="sentiment"))
    assert {it.label for it in items} == {"Positif", "Negatif", "Netral"}
    spec = all_specs()["belebele-qa-mc"]
    items = get_kind(spec.kind).make_items(spec, "my", load_rows(spec.lang("my"), src))
    # Burmese answer letters, as SEA-HELM's my prompts and data (v1 numeric labels mapped)
    assert [it.label for it in items] == ["ခ", "က"] and items[0].prompts[0]["choice2"] == "ရန်ကုန်"
    spec = all_specs()["qa"]
    items = get_kind(spec.kind).make_items(spec, "ta", load_rows(spec.lang("ta"), src))
    assert items[0].label == ["சென்னை"]
    with pytest.raises(MissingData):
        load_rows(all_specs()["sentiment"].lang("ms"), src, task="sentiment")
    assert load_fewshot_rows(all_specs()["qa"].lang("ta"), src) == []  # no pool -> zero-shot


def test_prompt_shape_zero_shot():
    spec = all_specs()["sentiment"]
    kind = get_kind(spec.kind)
    src = DataSource.parse(str(FIXTURES))
    item = kind.make_items(spec, "id", load_rows(spec.lang("id"), src))[0]
    (msg,) = kind.user_turns(spec, "id", item)
    assert msg.startswith("Tentukan sentimen")  # instruction first, no system prompt
    assert '"Jawaban: ANSWER"' in msg  # quoted answer format with the tag
    assert msg.endswith("```\nMakanannya enak sekali, saya pasti kembali lagi.\n```")  # fenced input
    user, assistant = kind.fewshot_pair(spec, "id", item)
    assert assistant == "Jawaban: Positif" and "Tentukan" not in user


def test_data_source_errors(tmp_path):
    assert DataSource.parse("hub").kind == "hub"
    with pytest.raises(Exception, match="not a directory"):
        DataSource.parse(str(tmp_path / "missing"))


@pytest.mark.shared
def test_shared_data_builds_prompts_for_every_task(shared_dir):
    """Every (task, language) with local data: rows load, labels map into the label set, prompts and few-shot
    pairs format without missing fields."""
    src = DataSource.parse(f"{shared_dir}/data/seahelm-v1,{shared_dir}/data/global-mmlu-lite")
    checked = 0
    for lang, tasks in resolve_tasks(["seahelm"]).items():
        for name in tasks:
            spec = all_specs()[name]
            if spec.kind not in CHOICE_KINDS | {"extractive-qa", "summarization", "translation"}:
                continue
            kind, ls = get_kind(spec.kind), spec.lang(lang)
            try:
                rows = load_rows(ls, src, task=name)
            except MissingData:
                continue
            items = kind.make_items(spec, lang, rows)
            if spec.kind in CHOICE_KINDS:
                assert {str(it.label) for it in items} <= set(ls.labels), (lang, name)
            for it in items[:3]:
                turns = kind.user_turns(spec, lang, it)
                assert "{" not in turns[0].split("```")[0] or name == "kalahi-mc", (lang, name)
            for ex in kind.make_items(spec, lang, load_fewshot_rows(ls, src, task=name)):
                if spec.kind in CHOICE_KINDS:
                    assert str(ex.label) in ls.labels, (lang, name, ex.label)
                kind.fewshot_pair(spec, lang, ex)
            checked += 1
    assert checked >= 50


def test_hub_unavailable_is_missing_data(monkeypatch):
    """Offline (or gated without a token): the hub loader raises MissingData, which the runner turns into a skip."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(MissingData, match="hub dataset aisingapore/NLR-Causal-Reasoning"):
        load_rows(all_specs()["causal"].lang("id"), DataSource.parse("hub"), task="causal")
