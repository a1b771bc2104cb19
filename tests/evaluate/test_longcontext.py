"""OneRuler NIAH / CWE: generation from SEA-HELM's recipe files at a chosen length, scoring, a tiny-model run."""

import json

import pytest

from sealion.errors import ConfigError
from sealion.evaluate import EvalConfig, run_eval
from sealion.evaluate.data import DataSource, MissingData
from sealion.evaluate.tasks import Item, ScoreContext, TurnOutput, get_kind, get_spec, resolve_tasks
from sealion.evaluate.tasks.longcontext import extract_list, model_tokenizer, seeds, split_sentences


@pytest.fixture(scope="module")
def recipe(shared_dir):
    root = shared_dir / "data" / "seahelm-head"
    if not (root / "seahelm_tasks" / "long_context" / "oneruler").is_dir():
        pytest.skip("SEA-HELM's long_context tree is absent")
    return DataSource.parse(str(root))


def test_length_is_a_task_name_suffix():
    assert get_spec("niah-multikey@32k").options["context_size"] == 32000
    assert get_spec("cwe@100000").options["context_size"] == 100000
    assert get_spec("niah-none").options["context_size"] == 8000
    assert resolve_tasks(["niah-multiquery@2k"], ["ta"]) == {"ta": ["niah-multiquery@2k"]}
    with pytest.raises(ConfigError, match="not a number"):
        get_spec("niah-multikey@big")
    with pytest.raises(ConfigError, match="unknown task"):
        get_spec("sentiment@2k")  # no parameter declared


def test_extraction_and_scoring_as_seahelm(tmp_path):
    assert extract_list("<Answer> 12, 34 </Answer>", "<Answer>") == ["12", "34"]
    assert extract_list("I think <Answer>12</Answer> or </b>", "<Answer>") == ["12</answer> or"]  # up to the last </
    assert extract_list("12, 34", "<Answer>") == ["none"]  # no tag: "None" (right for niah-none, wrong elsewhere)
    spec = get_spec("niah-multivalue")
    kind = get_kind(spec.kind)
    items = [Item("0", [{}], ["12", "34"], {"context_size": 900}), Item("1", [{}], ["none"], {"context_size": 900})]
    outs = [[TurnOutput("", "<Answer>34, 99</Answer>")], [TurnOutput("", "no answer")]]
    scores = kind.score(spec, "en", items, outs, ScoreContext(run=0, seed=1, cache_dir=tmp_path))
    assert [s.score for s in scores] == [0.0, 1.0] and scores[0].details["accuracy"] == 0.5
    m = kind.task_metrics(spec, "en", items, scores)
    assert m["normalized_strict_accuracy"] == 50.0 and m["accuracy"] == 75.0 and m["context_size"] == 900


def test_sentence_split():
    # SEA-HELM's abbreviation guard looks behind the full stop itself, so it never fires: "Mr." ends a sentence too
    text = 'Mr. Brown came. He sat down! Then 3.5 kg fell? "Yes!" she said.\nNew para.\n\n…\nक'
    assert split_sentences(text, "en") == ["Mr.", "Brown came.", "He sat down!", "Then 3.5 kg fell?", '"Yes!"',
                                           "she said.", "New para.", "क"]
    assert split_sentences("他来了。 我走了！", "zh") == ["他来了。", "我走了！"]


def test_seahelm_seeds():
    import random

    assert seeds(3) == random.Random(9472347).sample(range(2**31 - 1), 3)


def test_niah_generation_fits_the_length(tiny_text_dir, recipe):
    tok = model_tokenizer(str(tiny_text_dir))
    spec = get_spec("niah-multiquery@1500")
    kind = get_kind(spec.kind)
    rows = kind.load_rows(spec, "en", recipe, model=str(tiny_text_dir), limit=3)
    assert len(rows) == 3 and rows[0]["prompts"][0]["text"] != rows[1]["prompts"][0]["text"]
    items = kind.make_items(spec, "en", rows)
    for it in items:
        assert len(it.label) == 2 and all(v in it.prompts[0]["text"] for v in it.label)
        assert it.prompts[0]["needle_text"].count('"') == 4 and ", and " in it.prompts[0]["needle_text"]
        assert it.prompts[0]["text"].count("special magic numbers for") == 4  # 2 asked + 2 distractors
        n = tok.count(kind.user_turns(spec, "en", it)[0])
        assert 1400 <= n <= 1550, n
    # the same seed gives the same haystack (generation is deterministic)
    again = kind.load_rows(spec, "en", recipe, model=str(tiny_text_dir), limit=1)
    assert again[0] == rows[0]


def test_niah_shrinks_to_the_model_window(tiny_text_dir, recipe):
    spec = get_spec("niah-none@128k")  # the tiny model has 4096 positions
    kind = get_kind(spec.kind)
    rows = kind.load_rows(spec, "vi", recipe, model=str(tiny_text_dir), limit=1)
    assert rows[0]["metadata"]["context_size"] == 4096 - 1024 - 64 and rows[0]["label"] == ["none"]


def test_cwe_generation(tiny_text_dir, recipe):
    tok = model_tokenizer(str(tiny_text_dir))
    spec = get_spec("cwe@1900")  # the tiny model's window: 4096 - 2048 answer tokens
    kind = get_kind(spec.kind)
    rows = kind.load_rows(spec, "vi", recipe, model=str(tiny_text_dir), limit=2)
    row = rows[0]
    assert rows[1]["label"] != row["label"]
    import re

    words = re.findall(r"\d+\. (.*?)(?= \d+\. |$)", row["prompts"][0]["list"])
    assert len(row["label"]) == 10
    prompt = kind.user_turns(spec, "vi", kind.make_items(spec, "vi", rows)[0])[0]
    assert abs(tok.count(prompt) - 1900) < 150
    assert all(words.count(w) == 20 for w in row["label"])
    assert max(words.count(w) for w in set(words) - set(row["label"])) <= 10
    with pytest.raises(ConfigError, match="cannot hold"):
        kind.load_rows(get_spec("cwe-easy@1500"), "vi", recipe, model=str(tiny_text_dir), limit=1)


def test_needs_the_recipe_files(tiny_text_dir):
    spec = get_spec("niah-multikey")
    with pytest.raises(MissingData, match="--data"):
        get_kind(spec.kind).load_rows(spec, "en", DataSource("hub"), model=str(tiny_text_dir))


def test_niah_end_to_end_on_tiny_model(tiny_text_dir, recipe, tmp_path):
    res = run_eval(EvalConfig(model=str(tiny_text_dir), tasks=["niah-multikey@1k"], languages=["ta"],
                              data=",".join(str(r) for r in recipe.roots), runs=1, limit=2, max_tokens=4,
                              out=str(tmp_path / "r"), progress=False))
    entry = res["results"]["ta"]["long-context"]["niah-multikey@1k"]
    assert entry["n_items"] == 2 and entry["metrics"]["context_size"] == 1000
    row = json.loads((tmp_path / "r/runs/run_0/ta/niah-multikey@1k.jsonl").read_text().splitlines()[0])
    assert row["tokens"][0]["prompt"] > 900


def test_english_cwe_uses_the_wonderwords_lists(tiny_text_dir, recipe):
    """SEA-HELM's English CWE (RULER's recipe) draws from wonderwords' nouns, adjectives and verbs."""
    wonderwords = pytest.importorskip("wonderwords")
    from pathlib import Path

    assets = Path(wonderwords.__file__).parent / "assets"
    vocab = set()
    for name in ("nounlist.txt", "adjectivelist.txt", "verblist.txt"):
        vocab |= {w.strip() for w in (assets / name).read_text(encoding="utf-8").splitlines() if w.strip()}
    spec = get_spec("cwe@1900")
    kind = get_kind(spec.kind)
    row = kind.load_rows(spec, "en", recipe, model=str(tiny_text_dir), limit=1)[0]
    import re

    words = re.findall(r"\d+\. (.*?)(?= \d+\. |$)", row["prompts"][0]["list"])
    assert set(words) <= vocab and len(row["label"]) == 10
    assert all(words.count(w) == 20 for w in row["label"])
