"""The recipe's turn-end check: a model that ends its replies with id 106 is counted as such, and a reply that
spells the marker as text pieces is caught (the failure the one-renderer rule exists to prevent)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the scripted tiny model's builder


@pytest.fixture(scope="module")
def scripted_dir(tiny_text_dir, request) -> Path:
    """The server tests' scripted tiny Gemma 4 (same cache key, so it is trained once per machine)."""
    from scripted import build_scripted_model, script_key

    out = Path(request.config.cache.mkdir("sealion-serve")) / f"scripted-{script_key(tiny_text_dir)}"
    if not (out / "config.json").exists():
        build_scripted_model(tiny_text_dir, out)
    return out


def test_spelled_markers_are_caught_and_ids_are_not(tiny_text_dir):
    from transformers import AutoTokenizer

    from sealion.recipe.turn_end import spells_a_marker

    tok = AutoTokenizer.from_pretrained(tiny_text_dir)
    spelled = tok("Hello<turn|>", add_special_tokens=False, split_special_tokens=True).input_ids
    assert 106 not in spelled and len(spelled) > 2  # text pieces, not the id
    assert spells_a_marker(tok, spelled)
    assert not spells_a_marker(tok, tok("Hello", add_special_tokens=False).input_ids + [106])


def test_a_model_that_ends_its_turn_is_counted(scripted_dir, tiny_text_dir, tmp_path):
    from scripted import GREET

    from sealion.recipe.turn_end import run_turn_end

    heldout = tmp_path / "heldout.jsonl"
    rows = [{"id": f"r{i}", "lang": lang, "messages": [*GREET, {"role": "assistant", "content": "x"}]}
            for i, lang in enumerate(["id", "th", "id"])]
    heldout.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_turn_end({"scripted": scripted_dir, "random": tiny_text_dir}, heldout, tmp_path, prompts=2,
                       max_new_tokens=12, batch_size=2, log=lambda m: None)
    scripted, random = out["models"]["scripted"], out["models"]["random"]
    # the scripted model answers "Hello there!" and stops on 106, as the engine's own greedy run shows
    assert scripted["n"] == 2 and scripted["ended"] == 2 and scripted["spelled"] == 0
    assert [r["text"] for r in scripted["rows"]] == ["Hello there!"] * 2
    assert [r["lang"] for r in scripted["rows"]] == ["id", "th"]  # one per language first
    assert random["ended"] + random["length"] <= 2
    assert json.loads((tmp_path / "turn_end.json").read_text())["models"]["scripted"]["ended"] == 2
