"""Small instruction data sets in both shapes (written by the tests themselves; no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SENTENCES = {
    "id": ["Ibu kota Indonesia adalah Jakarta.", "Saya suka makan nasi goreng setiap pagi.",
           "Hujan turun sepanjang hari di Bandung.", "Anak-anak bermain bola di lapangan."],
    "vi": ["Hà Nội là thủ đô của Việt Nam.", "Tôi thích uống cà phê sữa đá.",
           "Trời mưa to suốt cả buổi chiều.", "Những đứa trẻ đang chơi bóng đá."],
    "th": ["กรุงเทพฯ เป็นเมืองหลวงของประเทศไทย", "ฉันชอบกินข้าวผัดตอนเช้า",
           "ฝนตกหนักตลอดทั้งวัน", "เด็ก ๆ เล่นฟุตบอลในสนาม"],
}


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """Conversations in SEA-Instruct shape (Python-literal strings, JSON strings, lists) and OpenAI shape."""
    rows = []
    langs = sorted(SENTENCES)
    for i in range(n):
        lang = langs[(i + seed) % len(langs)]
        s = SENTENCES[lang]
        a, b = s[i % len(s)], s[(i + 1) % len(s)]
        conv = [{"role": "user", "content": f"Ulangi kalimat ini: {a}"}, {"role": "assistant", "content": f"{a} {b}"}]
        kind = i % 4
        if kind == 0:
            rows.append({"conversations": repr(conv + [{"role": "user", "content": "Lagi?", "toxic": False}]
                                               + [{"role": "assistant", "content": b}]), "language": lang})
        elif kind == 1:
            rows.append({"conversations": json.dumps(conv), "lang": lang})
        elif kind == 2:
            rows.append({"messages": [{"role": "system", "content": "Jawab singkat."}] + conv, "language": lang})
        else:
            calls = [{"id": "c1", "type": "function",
                      "function": {"name": "lookup", "arguments": json.dumps({"q": a[:10]})}}]
            rows.append({
                "messages": [conv[0], {"role": "assistant", "content": None, "tool_calls": calls},
                             {"role": "tool", "tool_call_id": "c1", "content": b}, conv[1]],
                "tools": json.dumps([{"type": "function", "function": {
                    "name": "lookup", "description": "look it up",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]),
                "language": lang,
            })
    return rows


def write_jsonl(path: Path, rows: list, bad_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    for idx, text in (bad_lines or {}).items():
        lines.insert(idx, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def rows_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", make_rows(24))


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory, tiny_gemma3_dir) -> Path:
    """A second tiny Gemma 3 (different seed, fewer layers) sharing the teacher's tokenizer."""
    from sealion.models.tiny import make_tiny_gemma3

    return make_tiny_gemma3(tmp_path_factory.mktemp("tiny-student"), seed=1, num_hidden_layers=2)


@pytest.fixture(scope="session")
def sharp_teacher_dir(tmp_path_factory) -> Path:
    """A tiny Gemma 3 whose output distribution is peaked (random tiny models are near-uniform over 262k tokens,
    which leaves nothing to distil): the tied embedding is scaled up, which only sharpens the logits because
    every layer input goes through an RMSNorm."""
    from safetensors.torch import load_file, save_file

    from sealion.models.tiny import make_tiny_gemma3

    path = make_tiny_gemma3(tmp_path_factory.mktemp("sharp-teacher"), seed=0, num_hidden_layers=2)
    weights = load_file(str(path / "model.safetensors"))
    weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"] * 40.0
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path


@pytest.fixture(scope="session")
def small_rows_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("rows") / "train.jsonl", make_rows(16),
                       {2: "{not json", 6: json.dumps({"messages": [{"role": "user", "content": "hi"}]})})


@pytest.fixture(scope="session")
def tiny_capture(tmp_path_factory, sharp_teacher_dir, small_rows_file) -> Path:
    from sealion.distill.capture import CaptureConfig, capture

    out = tmp_path_factory.mktemp("cap") / "cap"
    capture(CaptureConfig(teacher=str(sharp_teacher_dir), data=[str(small_rows_file)], out=str(out), k=16,
                          shard_size=5, progress=False))
    return out
