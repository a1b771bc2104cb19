"""Rows -> conversations -> tokens with assistant-only masks; packing; bad rows reported."""

import json

import numpy as np
import pytest
import torch

from sealion.distill.data import (
    Example, collate, load_examples, pack, render_conversation, row_to_conversation,
)
from sealion.chat import control_aliases, to_gemma4_names
from sealion.distill.modeling import cached_tokenizer, hidden_states, load_model

from .conftest import make_rows, write_jsonl


def test_row_shapes_parse_alike():
    conv = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    for row in ({"conversations": conv}, {"conversations": json.dumps(conv)}, {"conversations": repr(conv)},
                {"messages": conv}, {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}):
        msgs, tools, lang = row_to_conversation({**row, "lang": "vi"})
        assert [(m["role"], m["content"]) for m in msgs] == [("user", "a"), ("assistant", "b")]
        assert lang == "vi"
    literal = "[{'role': 'user', 'content': 'x', 'toxic': False, 'hashed_ip': None}, {'role': 'assistant', 'content': 'y'}]"
    msgs, _, lang = row_to_conversation({"conversations": literal, "prompt_primary_language": "Thai"})
    assert msgs[0] == {"role": "user", "content": "x"} and lang == "Thai"
    for bad, why in [({"text": "x"}, "no 'conversations'"), ({"messages": []}, "non-empty"),
                     ({"messages": [{"role": "user", "content": "x"}]}, "no assistant"),
                     ({"conversations": "[{oops"}, "neither JSON"),
                     ({"messages": [{"role": "bot", "content": "x"}]}, "role")]:
        with pytest.raises(ValueError, match=why):
            row_to_conversation(bad)


def test_mask_covers_exactly_the_assistant_turns(tiny_gemma3_dir):
    tok = cached_tokenizer(tiny_gemma3_dir)
    row = make_rows(4)[3]  # tool-calling row
    msgs, tools, _ = row_to_conversation(row)
    ids, mask, untrained = render_conversation(tok, msgs, tools)
    aliases = control_aliases(tok)  # this tokenizer carries Gemma 3 names at the Gemma 4 control ids
    learned = to_gemma4_names(tok.decode(ids[mask]), aliases)
    prompt = to_gemma4_names(tok.decode(ids[~mask]), aliases)
    assert "lookup" in learned and "<|tool_call>" in learned  # the call is the model's to learn
    assert msgs[-1]["content"] in learned
    assert "Ulangi kalimat" not in learned and "Ulangi kalimat" in prompt  # user text is never trained
    assert "look it up" not in learned  # nor the tool declaration
    assert "response:lookup" not in learned  # nor the tool's result
    assert "<|turn>model" not in learned  # nor the role header
    assert learned.endswith("<turn|>")  # but the end-of-turn token is
    assert ids[mask][-1] == 106 and 105 in ids[~mask]  # as the control ids, not text pieces
    assert not mask[0] and untrained == 0


def test_bad_rows_are_skipped_and_reported(tmp_path, tiny_gemma3_dir):
    rows = make_rows(8)
    f = write_jsonl(tmp_path / "d.jsonl", rows, {1: "{broken", 4: json.dumps({"messages": "nope"})})
    tok = cached_tokenizer(tiny_gemma3_dir)
    examples, report = load_examples([str(f)], tok)
    assert len(examples) == 8 and report.rows == 10
    assert len(report.skipped) == 2
    assert report.skipped[0].startswith(f"{f}:2: invalid JSON")
    assert report.skipped[1].startswith(f"{f}:5:")
    s = report.summary()
    assert s["skipped"] == 2 and set(s["per_language"]) == {"id", "th", "vi"}
    assert sum(v["examples"] for v in s["per_language"].values()) == 8


def test_parquet_and_directory_sources(tmp_path, tiny_gemma3_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = make_rows(6)
    conv_rows = [{"conversations": r["conversations"] if "conversations" in r else json.dumps(r["messages"]),
                  "language": r.get("language", r.get("lang"))} for r in rows if "tools" not in r]
    conv_rows.append({"conversations": "not a list", "language": "id"})
    d = tmp_path / "Vietnamese"
    d.mkdir()
    pq.write_table(pa.Table.from_pylist(conv_rows), d / "part-0.parquet")
    tok = cached_tokenizer(tiny_gemma3_dir)
    examples, report = load_examples([str(d)], tok)
    assert len(examples) == len(conv_rows) - 1
    assert report.skipped == [f"{d / 'part-0.parquet'}:row {len(conv_rows) - 1}: conversations: neither JSON nor a "
                              "Python literal"]


def test_packing_keeps_attention_within_each_example(tiny_gemma3_dir):
    model, tok, _ = load_model(str(tiny_gemma3_dir))
    rng = np.random.default_rng(0)
    exs = []
    for n in (7, 12, 5):
        ids = np.concatenate([[2], rng.integers(1000, 5000, n - 1)])
        mask = np.zeros(n, bool)
        mask[2:] = True
        exs.append(Example(ids, mask, "id"))
    with torch.no_grad():
        packed = collate([exs])
        h = hidden_states(model, packed.input_ids, packed.position_ids)[packed.score_rows, packed.score_cols]
        singles = []
        for ex in exs:
            b = collate([[ex]])
            singles.append(hidden_states(model, b.input_ids, b.position_ids)[b.score_rows, b.score_cols])
    assert torch.allclose(h, torch.cat(singles), atol=1e-5)
    assert packed.targets.tolist() == [int(t) for ex in exs for t in ex.input_ids[2:]]


def test_pack_is_first_fit_and_bounded():
    rows = pack([5, 9, 3, 7, 1], 10)
    assert sorted(i for r in rows for i in r) == [0, 1, 2, 3, 4]
    lens = [5, 9, 3, 7, 1]
    assert all(sum(lens[i] for i in r) <= 10 for r in rows)
    assert len(rows) == 3
