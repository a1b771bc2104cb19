"""A merge killed mid-way leaves no output directory; --resume reuses the finished shards and ends identical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .merge_testutil import llama_like, write_yaml

REPO = Path(__file__).resolve().parents[2]


def _cli(args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "sealion.merge", *args, "--no-progress", "--shard-size", "1KB"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_kill_and_resume(tmp_path):
    a = llama_like(tmp_path / "a", layers=6, hidden=16, inter=16, seed=0)
    b = llama_like(tmp_path / "b", layers=6, hidden=16, inter=16, seed=1)
    cfg = write_yaml(tmp_path / "t.yaml", {
        "merge_method": "ties", "base_model": str(a),
        "models": [{"model": str(b), "parameters": {"weight": 1.0, "density": 0.5}}]})
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    work = tmp_path / ".out.sealion-merge"

    killed = _cli([str(cfg), "--out", str(out)], {"SEALION_MERGE_KILL_AFTER_TENSORS": "9"})
    assert killed.returncode == -9
    assert not out.exists()  # nothing half-valid where the output belongs
    finished = sorted(p.name for p in work.glob("model-*.safetensors"))
    assert len(finished) >= 2 and list(work.glob("*.partial"))  # killed inside a shard
    stamps = {n: (work / n).stat().st_mtime_ns for n in finished}

    resumed = _cli([str(cfg), "--out", str(out), "--resume", "--json"])
    assert resumed.returncode == 0, resumed.stderr
    assert f'"shards_resumed": {len(finished)}' in resumed.stdout
    for n, t in stamps.items():
        assert (out / n).stat().st_mtime_ns == t  # reused, not rewritten
    assert not work.exists() and not list(out.glob("*.partial"))

    assert _cli([str(cfg), "--out", str(fresh)]).returncode == 0
    shards = sorted(p.name for p in fresh.glob("*.safetensors"))
    assert shards == sorted(p.name for p in out.glob("*.safetensors")) and len(shards) > len(finished)
    for n in shards:
        assert (fresh / n).read_bytes() == (out / n).read_bytes()


def test_restart_without_resume_and_config_change(tmp_path):
    a = llama_like(tmp_path / "a", layers=4, seed=0)
    b = llama_like(tmp_path / "b", layers=4, seed=1)
    cfg = write_yaml(tmp_path / "t.yaml", {"merge_method": "linear", "models": [
        {"model": str(a), "parameters": {"weight": 0.5}}, {"model": str(b), "parameters": {"weight": 0.5}}]})
    out = tmp_path / "out"
    assert _cli([str(cfg), "--out", str(out)], {"SEALION_MERGE_KILL_AFTER_TENSORS": "5"}).returncode == -9
    cfg2 = write_yaml(tmp_path / "t.yaml", {"merge_method": "linear", "models": [
        {"model": str(a), "parameters": {"weight": 0.3}}, {"model": str(b), "parameters": {"weight": 0.7}}]})
    r = _cli([str(cfg2), "--out", str(out), "--resume"])
    assert r.returncode == 1 and "different config" in r.stderr
    r = _cli([str(cfg2), "--out", str(out), "--json"])
    assert r.returncode == 0 and '"shards_resumed": 0' in r.stdout
