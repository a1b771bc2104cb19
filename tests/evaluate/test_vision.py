"""The vision group: SEA-HELM's prompts with images, the hub-layout loaders, RefCLIPScore, one-line data errors.

References are built here independently: prompts from the tree's YAML (read with yaml), RefCLIPScore from a tiny
random CLIPModel's own forward pass (normalised `image_embeds` / `text_embeds`) and the paper's formula in torch."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from sealion.errors import ConfigError, DataError
from sealion.evaluate import EvalConfig, run_eval
from sealion.evaluate.data import DataSource
from sealion.evaluate.metrics.refclipscore import ClipScorer, refclip_from_features
from sealion.evaluate.runner import Runner, Unit
from sealion.evaluate.seahelm_tree import load_tree
from sealion.evaluate.tasks import Item, get_kind
from sealion.evaluate.vision.rows import WC_SEED, load_vision_rows

SEED = 20261204
TREE_TASKS = ("cvqa", "marvl", "world_cuisine_task1", "world_cuisine_task2", "xm3600")


def _png(color: tuple[int, int, int], size: tuple[int, int] = (20, 20)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _data_url_bytes(url: str) -> bytes:
    return base64.b64decode(url.partition(",")[2])


# --------------------------------------------------------------------------------------------------- (a) prompts


def test_tree_prompts_byte_equal_with_images_for_every_vision_task_and_language(tree_dir, tmp_path, raw_blocks):
    import string

    tree = load_tree(str(tree_dir))
    runner = Runner(EvalConfig(model="unused", seahelm=str(tree_dir), out=str(tmp_path), temperature=0,
                               progress=False))
    runner.base_model = False
    images = [_png((200, 10, 10)), _png((10, 200, 10), (30, 18))]
    checked = 0
    for key in TREE_TASKS:
        spec = tree.spec(key)
        assert spec.kind in ("vision-choice", "vision-caption") and not spec.base_model
        kind = get_kind(spec.kind)
        for lang, lc in raw_blocks[key]["languages"].items():
            tmpl = lc["prompt_template"]
            names = [f for _, f, _, _ in string.Formatter().parse(tmpl["task_template"]) if f]
            fields = {f: f"{f} {{kept}} ไทย\n tail " for f in names}
            item = Item(id="1", prompts=[fields], label=None, extra={"images": images})
            payload, req = runner._request(Unit(lang, spec, kind, [item], [], 1), item, 0, [], seed=1)
            want = (tmpl["preamble"].format(answer_tag=tmpl["answer_tag"]) + "\n\n"
                    + tmpl["task_template"].format(**fields)).strip()
            (msg,) = req.messages
            text, *parts = msg["content"]
            assert text == {"type": "text", "text": want}, (key, lang)
            assert [_data_url_bytes(p["image_url"]["url"]) for p in parts] == images  # text first, then images
            logged = payload["messages"][0]["content"]
            assert logged[0] == text and [p["image_url"]["url"] for p in logged[1:]] == [
                "sha256:" + hashlib.sha256(p["image_url"]["url"].encode()).hexdigest()[:24] for p in parts]
            assert req.params.max_new_tokens == lc["max_tokens"]
            checked += 1
    assert checked == sum(len(raw_blocks[k]["languages"]) for k in TREE_TASKS) >= 25


def test_tree_vision_set_resolves_and_unsupported_vision_tasks_are_skipped(tree_dir):
    tree = load_tree(str(tree_dir))
    plan = tree.resolve_plan(["vision"])
    assert plan["id"] == ["xm3600", "world_cuisine_task1", "world_cuisine_task2", "marvl", "cvqa"]
    assert tree.spec("world_cuisine_task2").group == "world_cuisine"
    assert tree.spec("mmstar").kind == ""  # no loader: skipped with a note, never run as a text task


# --------------------------------------------------------------------------------------------------- loaders


def _parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _cvqa_rows(n: int, subset: str = "('Indonesian', 'Indonesia')") -> list[dict]:
    return [{"image": {"bytes": _png((60 * i % 256, 30, 90)), "path": None}, "ID": f"c{i}", "Subset": subset,
             "Question": f"Apa ini {i}?", "Options": [f"o{i}{j}" for j in range(4)], "Label": i % 4,
             "Category": "food"} for i in range(n)]


def test_loaders_read_the_hub_layouts(tmp_path):
    root = tmp_path / "data"
    _parquet(root / "afaji/cvqa/data/test-00000-of-00001.parquet",
             _cvqa_rows(3) + _cvqa_rows(2, "('Tamil', 'India')"))
    left, right = _png((1, 2, 3)), _png((4, 5, 6))
    (root / "vision/marvl").mkdir(parents=True)
    (root / "vision/marvl/left.png").write_bytes(left)
    (root / "vision/marvl/id.jsonl").write_text("".join(json.dumps(
        {"id": f"m{i}", "hypothesis": f"h{i}", "hypo_en": f"e{i}", "label": i == 0, "left_img": "left.png",
         "right_img": "data:image/png;base64," + base64.b64encode(right).decode(), "chapter": "c", "concept": "k",
         "language": "id"}) + "\n"
        for i in range(2)))
    src = DataSource.parse(str(root))
    rows = load_vision_rows("cvqa", task="cvqa", lang="id", hub="afaji/cvqa", source=src, limit=None)
    assert [r["label"] for r in rows] == ["A", "B", "C"] and rows[1]["prompts"][0]["option_b"] == "o11"
    assert rows[2]["images"][0] == _cvqa_rows(3)[2]["image"]["bytes"]
    assert len(load_vision_rows("cvqa", task="cvqa", lang="ta", hub="afaji/cvqa", source=src, limit=1)) == 1
    m = load_vision_rows("marvl", task="marvl", lang="id", hub="floschne/marvl", source=src, limit=None)
    assert [r["label"] for r in m] == ["Benar", "Salah"] and m[0]["images"] == [left, right]
    en = load_vision_rows("marvl", task="marvl", lang="en", hub="floschne/marvl", source=src, limit=None)
    assert en[1]["prompts"] == [{"hypothesis": "e1"}]  # English: the Indonesian split's translation


def test_world_cuisines_moves_the_answer_as_seahelm_does(tmp_path):
    root = tmp_path / "data"
    img = root / "worldcuisines/vqa-v1.1/images/a.png"
    img.parent.mkdir(parents=True)
    img.write_bytes(_png((9, 9, 9)))
    rows = []
    for i in range(10):
        opts = [f"dish{i}-{j}" for j in range(5)]
        rows.append({"qa_id": f"q{i}", "lang": "id_formal" if i < 9 else "en", "food_id": i, "prompt_id": i,
                     "prompt_type": 1 if i % 3 else 3, "image_url": "", "task": "task1", "lang_status": "",
                     "image_path": "images/a.png", "question": f"q{i}", "options": opts, "mcq_answer_index": i % 5,
                     "answer": opts[i % 5]})
    _parquet(root / "worldcuisines/vqa-v1.1/task1/test_large-00000-of-00001.parquet", rows)
    got = load_vision_rows("world_cuisine", task="world-cuisine-task1", lang="id", hub="worldcuisines/vqa-v1.1",
                           source=DataSource.parse(str(root)), limit=None)
    # reference: per prompt type (1, then 3), positions [0..4] * ceil(n/5) shuffled by one generator
    rng = np.random.default_rng(seed=WC_SEED)
    want = []
    for ptype in (1, 3):
        sub = [r for r in rows[:9] if r["prompt_type"] == ptype]
        order = [0, 1, 2, 3, 4] * (-(-len(sub) // 5))
        rng.shuffle(order)
        want += [(r["qa_id"], "ABCDE"[pos], r["answer"]) for r, pos in zip(sub, order)]
    assert [(r["id"], r["label"]) for r in got] == [(q, lab) for q, lab, _ in want]
    for r, (_, lab, answer) in zip(got, want):
        assert r["prompts"][0][f"option_{lab.lower()}"] == answer
        assert sorted(v for k, v in r["prompts"][0].items() if k.startswith("option_")) == sorted(
            rows[int(r["id"][1:])]["options"])
    assert got[0]["images"] == [img.read_bytes()]  # image_path relative to the dataset folder


# --------------------------------------------------------------------------------------------------- (d) bad input


def test_bad_rows_are_one_line_errors_naming_file_and_row(tmp_path, tiny_mm_dir):
    root = tmp_path / "data"
    rows = _cvqa_rows(3)
    rows[1]["image"] = {"bytes": b"not an image at all", "path": None}
    f = root / "afaji/cvqa/data/test-00000-of-00001.parquet"
    _parquet(f, rows)
    with pytest.raises(DataError) as e:
        load_vision_rows("cvqa", task="cvqa", lang="id", hub="afaji/cvqa", source=DataSource.parse(str(root)),
                         limit=None)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "row 2" in msg and "'image'" in msg and "decoded" in msg
    x = root / "vision/xm3600/id.jsonl"
    x.parent.mkdir(parents=True)
    x.write_text(json.dumps({"image_id": "a", "captions": ["c"], "image": "x.png"}) + "\n"
                 + json.dumps({"image_id": "b", "captions": ["c"]}) + "\n")
    (x.parent / "x.png").write_bytes(_png((1, 1, 1)))
    with pytest.raises(DataError) as e:  # through the runner: raised while planning, before the model loads
        run_eval(EvalConfig(model=str(tiny_mm_dir), tasks=["xm3600"], languages=["id"], data=str(root), runs=1,
                            out=str(tmp_path / "out"), progress=False))
    msg = str(e.value)
    assert "\n" not in msg and f"{x}: row 2" in msg and "no column 'image'" in msg


def test_text_only_model_skips_vision_tasks_with_a_clear_error(tmp_path, tiny_text_dir):
    root = tmp_path / "data"
    _parquet(root / "afaji/cvqa/data/test-00000-of-00001.parquet", _cvqa_rows(2))
    with pytest.raises(ConfigError) as e:
        run_eval(EvalConfig(model=str(tiny_text_dir), tasks=["cvqa"], languages=["id"], data=str(root), runs=1,
                            out=str(tmp_path / "out"), progress=False))
    assert "\n" not in str(e.value) and "id/cvqa: skipped, the model takes no images" in str(e.value)


# --------------------------------------------------------------------------------------------------- (c) RefCLIPScore


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A tiny random CLIPModel (seeded), a word-level tokenizer and a 16px image processor in a local folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("clip")
    words = ("sebuah kotak merah biru hijau gambar anjing kucing di atas meja rumah a red box blue green dog cat "
             "caption keterangan").split()
    vocab = {"[PAD]": 0, "[UNK]": 1, "<s>": 2, "</s>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="[PAD]",
                            unk_token="[UNK]").save_pretrained(out)
    torch.manual_seed(SEED)
    cfg = CLIPConfig(text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
                                  "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 32,
                                  "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0},
                     vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                    "num_attention_heads": 2, "image_size": 16, "patch_size": 8},
                     projection_dim=16)
    CLIPModel(cfg).eval().save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(out)
    return out


def _reference(clip_dir: Path, images: list[bytes], cands: list[str], refs: list[list[str]]) -> list[float]:
    """RefCLIP-S from the model's own normalised embeddings and the formula (w = 2.5, clamps, harmonic mean)."""
    import torch
    from PIL import Image
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    tok = AutoTokenizer.from_pretrained(clip_dir)
    proc = CLIPImageProcessor.from_pretrained(clip_dir)
    out = []
    with torch.no_grad():
        for raw, cand, rs in zip(images, cands, refs):
            px = proc(images=[Image.open(io.BytesIO(raw)).convert("RGB")], return_tensors="pt")["pixel_values"]
            enc = tok([cand] + rs, padding=True, return_tensors="pt")
            o = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px)
            t, v = o.text_embeds.double(), o.image_embeds.double()[0]
            clip_s = 2.5 * torch.clamp(t[0] @ v, min=0)
            ref_s = torch.clamp((t[1:] @ t[0]).max(), min=0)
            out.append(0.0 if clip_s + ref_s == 0 else float(2 * clip_s * ref_s / (clip_s + ref_s)))
    return out


def test_refclipscore_formula_clamps_and_harmonic_mean():
    img = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    cand = np.array([[-1.0, 0.2], [2.0, 0.0], [3.0, 4.0]])
    refs = [np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0], [0.0, -5.0]]), np.array([[0.0, 1.0], [4.0, 3.0]])]
    got = refclip_from_features(img, cand, refs)
    assert got[0]["clipscore"] == 0.0 and got[0]["refclipscore"] == 0.0  # negative image cosine -> 0
    assert got[1]["clipscore"] == pytest.approx(2.5) and got[1]["ref_similarity"] == 0.0
    assert got[1]["refclipscore"] == 0.0  # every reference points away: 0, and no division by zero
    c, r = 2.5, 24 / 25  # cos(c, v) = 1; best reference (4, 3) . (3, 4) / 25
    assert got[2]["ref_similarity"] == pytest.approx(r)
    assert got[2]["refclipscore"] == pytest.approx(2 * c * r / (c + r))


def test_refclipscore_matches_the_model_forward(tiny_clip):
    images = [_png((250, 10, 10)), _png((10, 10, 250), (24, 16)), _png((20, 200, 20))]
    cands = ["sebuah kotak merah", "a blue box", ""]
    refs = [["gambar merah", "kotak merah di atas meja"], ["blue box"], ["anjing hijau", "kucing", "rumah"]]
    scorer = ClipScorer(tiny_clip)
    from sealion.evaluate.vision.images import load_pil

    got = refclip_from_features(scorer.image_features([load_pil(b) for b in images]), scorer.text_features(cands),
                                [scorer.text_features(r) for r in refs])
    assert [g["refclipscore"] for g in got] == pytest.approx(_reference(tiny_clip, images, cands, refs), abs=1e-6)
    with pytest.raises(ConfigError):
        ClipScorer(tiny_clip / "missing")


# --------------------------------------------------------------------------------------------------- (b) end to end


def test_end_to_end_tiny_multimodal_gemma4_cvqa_and_xm3600(tmp_path, tiny_mm_dir, tiny_clip):
    root = tmp_path / "data"
    _parquet(root / "afaji/cvqa/data/test-00000-of-00001.parquet", _cvqa_rows(4))
    x = root / "vision/xm3600"
    x.mkdir(parents=True)
    pics = [_png((250, 0, 0)), _png((0, 0, 250), (28, 20))]
    caps = [["sebuah kotak merah", "gambar merah"], ["kotak biru", "gambar biru di atas meja"]]
    for i, p in enumerate(pics):
        (x / f"p{i}.png").write_bytes(p)
    (x / "id.jsonl").write_text("".join(json.dumps({"image_id": f"x{i}", "captions": caps[i], "image": f"p{i}.png"})
                                        + "\n" for i in range(2)))
    _parquet(root / "floschne/marvl/data/id-00000-of-00001.parquet", [
        {"id": f"m{i}", "hypothesis": f"h{i}", "hypo_en": "", "label": bool(i), "left_img": {"bytes": pics[0]},
         "right_img": {"bytes": pics[1]}, "chapter": "c", "concept": "k", "language": "id"} for i in range(2)])
    common = dict(model=str(tiny_mm_dir), tasks=["cvqa", "marvl", "xm3600"], languages=["id"], data=str(root), runs=1,
                  max_tokens=6, temperature=0, progress=False)
    res = run_eval(EvalConfig(**common, out=str(tmp_path / "a"), clip=str(tiny_clip)))
    vis = res["results"]["id"]["vision"]
    assert vis["cvqa"]["n_items"] == 4 and vis["cvqa"]["metric"] == "normalized_accuracy"
    out = [json.loads(line) for line in (tmp_path / "a/runs/run_0/id/xm3600.jsonl").read_text().splitlines()]
    want = _reference(tiny_clip, pics, [r["extracted"] or "" for r in out], caps)
    assert [r["score"] for r in out] == pytest.approx(want, abs=1e-6)
    assert vis["xm3600"]["mean"] == pytest.approx(100 * sum(want) / 2, abs=1e-4)
    assert vis["xm3600"]["metrics"]["normalized_refclipscore"] == pytest.approx(100 * sum(want) / 2, abs=1e-4)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_mm_dir)
    for r in out:  # the image reached the model: its soft-token span is part of the prompt
        text = r["prompt"][0][0]["content"][0]["text"]
        assert r["prompt"][0][0]["content"][1]["image_url"]["url"].startswith("sha256:")
        assert r["tokens"][0]["prompt"] > len(tok(text)["input_ids"]) + 4
    for r in (json.loads(x) for x in (tmp_path / "a/runs/run_0/id/marvl.jsonl").read_text().splitlines()):
        parts = r["prompt"][0][0]["content"]  # two images, left then right, after the text
        assert [p["type"] for p in parts] == ["text", "image_url", "image_url"] and r["label"] in ("Benar", "Salah")
        assert r["tokens"][0]["prompt"] > len(tok(parts[0]["text"])["input_ids"]) + 8
    # without a checkpoint: generated (from the cache), reported as not scored, out of every average
    res = run_eval(EvalConfig(**common, out=str(tmp_path / "a")))
    entry = res["results"]["id"]["vision"]["xm3600"]
    assert entry["mean"] is None and entry["not_scored"] and entry["excluded_from_average"]
    assert res["results"]["id"]["vision"]["total"]["mean"] == pytest.approx(
        (vis["cvqa"]["mean"] + vis["marvl"]["mean"]) / 2)
    assert any(n.startswith("not scored (id/xm3600)") for n in res["notes"])
    assert res["timing"]["generated"] == 0  # the second run read every response from the cache
