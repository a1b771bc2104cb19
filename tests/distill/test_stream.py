"""Streaming training data: the plan, exact resume, bounded memory, and bad captures refused before any model."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sealion.distill import TrainConfig, train
from sealion.distill.codec import CodecConfig
from sealion.distill.data import Example
from sealion.distill.store import Capture, shard_name, write_shard
from sealion.distill.stream import CaptureSource, Planner, ShardCache
from sealion.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}


def _synthetic_capture(out: Path, like: Path, *, shards: int, examples: int, length: int, k: int, seed: int = 0) -> Path:
    """A capture of `shards` copies of one random shard, with the tokenizer fingerprint of a real capture."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    exs, n_scored = [], 0
    for i in range(examples):
        ids = rng.integers(10, 5000, length)
        mask = np.zeros(length, bool)
        mask[length // 4 :] = True
        exs.append(Example(ids, mask, ["id", "th"][i % 2]))
        n_scored += int(mask[1:].sum())
    top = rng.integers(0, 5000, (n_scored, k))
    lps = np.sort(-rng.random((n_scored, k)).astype(np.float32) * 8 - 2, axis=1)[:, ::-1]
    tail = np.full(n_scored, -0.5, np.float32)
    write_shard(out / shard_name(0), exs, top, lps, tail, CodecConfig(compressor="zlib"),
                extra_tails=np.full((1, n_scored), -0.1, np.float32))
    for i in range(1, shards):
        shutil.copy(out / shard_name(0), out / shard_name(i))
    m = json.loads((like / "manifest.json").read_text())
    m.update(k=k, temperature=1.0, tail_temperatures=[1.0, 2.0], codec=CodecConfig(compressor="zlib").to_dict(),
             shards=[{"file": shard_name(i), "examples": examples} for i in range(shards)],
             num_shards=shards, num_examples=shards * examples, positions=shards * n_scored)
    (out / "manifest.json").write_text(json.dumps(m))
    return out


def _plan(cap, **kw):
    args = dict(batch_size=3, pack_rows=True, max_tokens=300, seed=7, window=2, holdout=5)
    args.update(kw)
    return Planner(CaptureSource([Capture(cap)]), **args)


def test_plan_covers_each_training_example_once_and_resumes_exactly(tmp_path, tiny_capture):
    cap = _synthetic_capture(tmp_path / "cap", tiny_capture, shards=7, examples=6, length=100, k=4)
    planner = _plan(cap)
    for epoch in (0, 1):
        batches = list(planner.epoch(epoch))
        refs = [r for b in batches for row in b.rows for r in row]
        assert sorted(refs) == sorted((s, j) for s in range(7) for j in range(6) if s * 6 + j < 42 - 5)
        assert all(len(b.rows) == 3 for b in batches[:-1])
        assert sum(b.tokens for b in batches) == 100 * 37
        for skip in (1, 4, len(batches) - 1):  # resume after `skip` batches: the same batches follow
            assert [b.rows for b in planner.epoch(epoch, skip=skip)] == [b.rows for b in batches[skip:]]
    assert [b.rows for b in planner.epoch(0)] != [b.rows for b in planner.epoch(1)]  # reshuffled per epoch
    assert planner.heldout_refs() == [(6, 1), (6, 2), (6, 3), (6, 4), (6, 5)]
    assert planner.steps_in_epoch(0) == len(list(planner.epoch(0)))


def test_plan_decodes_each_shard_once_per_epoch(tmp_path, tiny_capture):
    cap = _synthetic_capture(tmp_path / "cap", tiny_capture, shards=9, examples=5, length=80, k=4)
    planner = _plan(cap, window=3, holdout=0)
    cache = ShardCache(planner.source, 2 * 3 + 1)
    for b in planner.epoch(0):
        for row in b.rows:
            cache.items(row)
        assert len(cache.shards) <= 7
    assert cache.decoded == 9


def _peak_rss_of_training(cap: Path, student: Path, out: Path) -> dict:
    code = (f"from sealion.distill import TrainConfig, train\n"
            f"train(TrainConfig(student={str(student)!r}, capture={str(cap)!r}, out={str(out)!r}, batch_size=2, "
            f"micro_batch_size=2, pack=True, max_tokens=512, max_steps=2, shuffle_shards=2, checkpoint_every=0, "
            f"progress=False))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "train_summary.json").read_text())


def test_peak_memory_does_not_grow_with_the_capture(tmp_path, tiny_capture, tiny_student_dir):
    """A capture 10x larger than another trains in the same peak RSS (each run in its own process)."""
    k, examples, length = 64, 32, 256
    small = _synthetic_capture(tmp_path / "small", tiny_capture, shards=4, examples=examples, length=length, k=k)
    large = _synthetic_capture(tmp_path / "large", tiny_capture, shards=40, examples=examples, length=length, k=k)
    positions = Capture(large).manifest["positions"]
    decoded_mb = positions * k * (8 + 4) / 2**20  # what holding the whole large capture would take (ids + logprobs)
    assert decoded_mb > 150
    a = _peak_rss_of_training(small, tiny_student_dir, tmp_path / "run-small")
    b = _peak_rss_of_training(large, tiny_student_dir, tmp_path / "run-large")
    assert b["steps"] == a["steps"] == 2
    assert b["peak_rss_mb"] < a["peak_rss_mb"] + 40, (a["peak_rss_mb"], b["peak_rss_mb"], decoded_mb)


def _student_that_must_not_load(tmp_path) -> str:
    return str(tmp_path / "no-such-student")  # loading it would fail with another error


def test_malformed_manifest_is_one_line_naming_the_file_before_any_model(tmp_path, tiny_capture):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_capture, bad)
    (bad / "manifest.json").write_text('{"format": "sealion-capture/1", "complete": tr')
    cfg = TrainConfig(student=_student_that_must_not_load(tmp_path), capture=str(bad), out=str(tmp_path / "o"),
                      progress=False)
    with pytest.raises(DataError) as e:
        train(cfg)
    assert str(bad / "manifest.json") in str(e.value) and "\n" not in str(e.value)
    m = json.loads((tiny_capture / "manifest.json").read_text())
    del m["shards"][1]["examples"]
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="manifest.json: missing or malformed field"):
        train(cfg)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_malformed_shard_is_one_line_naming_the_file_before_any_model(tmp_path, tiny_capture, damage):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_capture, bad)
    shard = bad / "shard-00002.npz"
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:300])
    elif damage == "garbage":
        shard.write_bytes(b"not a zip file at all" * 20)
    else:
        shard.unlink()
    with pytest.raises(DataError) as e:
        train(TrainConfig(student=_student_that_must_not_load(tmp_path), capture=str(bad), out=str(tmp_path / "o"),
                          progress=False))
    assert str(shard) in str(e.value) and "\n" not in str(e.value)


def test_capture_stores_the_exact_tail_at_each_temperature(tiny_capture, sharp_teacher_dir):
    """The stored T=2 tail equals 1 - (mass of the same ids under the teacher's full softmax at T=2)."""
    import torch

    from sealion.distill.modeling import load_model

    cap = Capture(tiny_capture)
    assert cap.tail_temperatures == (1.0, 2.0)
    model, _, _ = load_model(str(sharp_teacher_dir))
    first = cap.read(0)[0]
    ids = torch.as_tensor(first.example.input_ids)[None]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    pos = np.nonzero(first.example.target_mask[1:])[0]
    for T in (1.0, 2.0):
        p = torch.softmax(logits[pos] / T, -1)
        mass = p.gather(-1, torch.as_tensor(first.ids)).sum(-1).numpy()
        atol = 1e-4 if T == 2.0 else 1 / 64  # T=1's tail is on the codec's 1/64-nat grid; the others are float32
        np.testing.assert_allclose(np.log1p(-mass), first.tail_at(T), atol=atol)


def test_training_refuses_a_temperature_whose_tail_was_not_captured(tmp_path, tiny_capture):
    cfg = TrainConfig(student=_student_that_must_not_load(tmp_path), capture=str(tiny_capture),
                      out=str(tmp_path / "o"), temperature=4.0, missing="tail", progress=False)
    with pytest.raises(ConfigError, match=r"temperature: 4.0 .* stores it only at \[1.0, 2.0\]"):
        train(cfg)
