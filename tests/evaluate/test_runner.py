"""End-to-end runs on tiny random models (real structure): outputs, cache, kill-and-resume, CLI, reports."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sealion.evaluate import EvalConfig, run_eval
from sealion.evaluate.runner import Runner, read_cache

FIXTURES = Path(__file__).parent / "fixtures" / "seahelm"
REPO = Path(__file__).resolve().parents[2]


def _cfg(model, out, **kw):
    base = dict(model=str(model), out=str(out), data=str(FIXTURES), runs=2, limit=2, max_tokens=4, progress=False)
    base.update(kw)
    return EvalConfig(**base)


def test_end_to_end_on_fixtures_and_cache(tiny_text_dir, tmp_path):
    tasks = ["sentiment", "causal", "qa", "abssum", "belebele-qa-mc", "translation-en-xx", "global-mmlu-lite"]
    res = run_eval(_cfg(tiny_text_dir, tmp_path / "r", tasks=tasks, limit=1))
    assert res["mode"] == "instruct (0-shot)"
    assert res["prompts"]["source"] == "sealion" and "not leaderboard-comparable" in res["prompts"]["note"]
    r = res["results"]
    assert set(r) == {"id", "th", "ta", "vi", "my", "ms"}
    assert r["id"]["nlu"]["sentiment"]["n_runs"] == 2 and r["id"]["nlu"]["sentiment"]["n_items"] == 1
    assert r["th"]["nlg"]["translation-en-xx"]["metric"].startswith("chrf++")
    for lang in r:
        assert 0 <= r[lang]["total"]["mean"] <= 100 and r[lang]["total"]["stderr"] >= 0
    assert res["sea_average"]["languages"] == ["id", "vi", "th", "ta", "ms", "my"]
    assert res["timing"]["generated"] == 2 * 7 and res["timing"]["cached"] == 0
    # per-item outputs
    rows = [json.loads(x) for x in (tmp_path / "r/runs/run_1/th/causal.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and {"prompt", "responses", "reasoning", "extracted", "score", "finish_reasons", "tokens"} <= set(rows[0])
    assert rows[0]["prompt"][0][0]["role"] == "user" and len(rows[0]["prompt"][0]) == 1  # one user turn, no system
    # reports
    saved = json.loads((tmp_path / "r/results.json").read_text())
    assert "sentiment" in saved["results"]["id"]["nlu"]
    html = (tmp_path / "r/report.html").read_text()
    assert html.count("<svg") >= 2 and "<metadata>" not in html
    assert not any(x in html for x in ('src="http', "href='http", 'href="http', "<link", "<script"))  # offline
    assert "| id | nlu | sentiment |" in (tmp_path / "r/results.md").read_text()
    assert "not leaderboard-comparable" in (tmp_path / "r/results.md").read_text()
    assert r["th"]["nlg"]["translation-en-xx"]["excluded_from_average"]  # chrF++ only: not in the averages
    # a rerun is served from the cache, with identical results
    again = run_eval(_cfg(tiny_text_dir, tmp_path / "r", tasks=tasks, limit=1))
    assert again["timing"]["generated"] == 0 and again["timing"]["cached"] == 14
    assert again["results"] == res["results"]


def test_base_model_few_shot(tiny_gemma3_dir, tmp_path):
    """A model without a chat template is evaluated as a base model: 5-shot completion prompts, blank-line join."""
    res = run_eval(_cfg(tiny_gemma3_dir, tmp_path / "b", tasks=["sentiment"], languages=["id"], runs=1))
    assert res["mode"] == "base (5-shot)"
    row = json.loads((tmp_path / "b/runs/run_0/id/sentiment.jsonl").read_text().splitlines()[0])
    prompt = row["prompt"][0]
    assert prompt.startswith("Tentukan sentimen") and prompt.endswith("```\n\n")
    assert "Jawaban: Positif\n\nKalimat:" in prompt and "Jawaban: Negatif\n\nKalimat:" in prompt  # 2 shots (pool size)


def test_an_already_opened_engine_is_used_and_recorded(tiny_text_dir, tmp_path):
    """EvalConfig.engine (the recipe's and the benchmark's path): the run uses the engine it is given, gives the same
    answers as a run that opens the model itself, and config.json records the engine's kind."""
    from sealion.engine import open_engine

    engine = open_engine(str(tiny_text_dir))
    try:
        given = run_eval(_cfg(tiny_text_dir, tmp_path / "e", tasks=["causal"], languages=["th"], runs=1,
                              temperature=0, engine=engine))
    finally:
        engine.close()
    own = run_eval(_cfg(tiny_text_dir, tmp_path / "o", tasks=["causal"], languages=["th"], runs=1, temperature=0))
    assert given["results"] == own["results"] and given["timing"]["generated"] == 2
    config = json.loads((tmp_path / "e/config.json").read_text())
    assert config["engine"] == "LocalEngine" and config["model"] == str(tiny_text_dir)


def test_kill_and_resume_regenerates_nothing_done(tiny_text_dir, tmp_path):
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "sealion", "eval", "--model", str(tiny_text_dir), "--tasks", "sentiment",
           "--languages", "id", "--data", str(FIXTURES), "--limit", "8", "--runs", "1", "--batch-size", "1",
           "--concurrency", "1", "--max-tokens", "3", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cache_file = None
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            files = list((out / "cache").glob("*/run_0/id/sentiment/turn1.jsonl")) if (out / "cache").exists() else []
            if files and len(read_cache(files[0])) >= 4:
                cache_file = files[0]
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert cache_file is not None, proc.stderr.read().decode()[-2000:]
    done = read_cache(cache_file)
    assert 4 <= len(done) < 8
    with open(cache_file, "a") as f:  # a line torn by the kill
        f.write('{"key": "torn')
    runner = Runner(_cfg(tiny_text_dir, out, tasks=["sentiment"], languages=["id"], limit=8, runs=1, max_tokens=3,
                         batch_size=1, concurrency=1))
    res = runner.run()
    assert res["timing"]["cached"] == len(done)
    assert res["timing"]["generated"] == 8 - len(done)
    after = read_cache(cache_file)
    assert len(after) == 8 and all(after[k] == v for k, v in done.items())  # finished items untouched


def test_cli_eval_and_errors(tiny_text_dir, tmp_path, capsys):
    from sealion.cli import main

    rc = main(["eval", "--model", str(tiny_text_dir), "--tasks", "causal", "--languages", "th", "--data", str(FIXTURES),
               "--limit", "1", "--runs", "1", "--max-tokens", "2", "--out", str(tmp_path / "c"), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| th | nlr | causal |" in out and "1 generated" in out
    assert main(["eval", "--model", str(tiny_text_dir), "--tasks", "nope", "--out", str(tmp_path / "e")]) == 1
    assert "unknown task or task set 'nope'" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_text_dir), "--tasks", "sentiment", "--languages", "ms",
                 "--data", str(FIXTURES), "--out", str(tmp_path / "e2")]) == 1
    assert "nothing to evaluate" in capsys.readouterr().err


@pytest.mark.shared
def test_end_to_end_on_shared_data(tiny_text_dir, shared_dir, tmp_path):
    res = run_eval(_cfg(tiny_text_dir, tmp_path / "s", tasks=["seahelm-mini"], languages=["id", "th"], runs=1, limit=1,
                        data=f"{shared_dir}/data/seahelm-v1"))
    assert set(res["results"]) == {"id", "th"}
    assert set(res["results"]["th"]["nlu"]) == {"sentiment", "qa", "total"}
    assert res["timing"]["generated"] == 2 * 3


def test_end_to_end_over_openai_compatible_endpoint(tiny_text_dir, tmp_path):
    """The same run against a real OpenAI-compatible server on 127.0.0.1 (sealion serve), concurrent requests."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "sealion", "serve", str(tiny_text_dir), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if server.poll() is not None:
                pytest.fail("server exited: " + server.stderr.read().decode()[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        res = run_eval(_cfg(f"http://127.0.0.1:{port}/v1", tmp_path / "h", tasks=["causal"], languages=["th"],
                            runs=1, limit=2, max_tokens=3, concurrency=2))
        assert res["mode"] == "instruct (0-shot)"
        assert res["results"]["th"]["nlr"]["causal"]["n_items"] == 2 and res["timing"]["generated"] == 2
        rows = [json.loads(x) for x in (tmp_path / "h/runs/run_0/th/causal.jsonl").read_text().splitlines()]
        assert all(r["tokens"][0]["completion"] <= 3 for r in rows)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("generation_config, expected", [
    ({}, {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "do_sample": True}),  # vLLM's defaults: sampling
    ({"do_sample": False}, {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "do_sample": True}),  # vLLM ignores it
    ({"temperature": 0.6, "top_k": 64, "top_p": 0.95}, {"temperature": 0.6, "top_p": 0.95, "top_k": 64, "do_sample": True}),
    ({"top_k": 50}, {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "do_sample": True}),  # transformers' default: dropped
    ({"temperature": 0.0}, {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "do_sample": False}),
])
def test_seahelm_sampling_rule(generation_config, expected):
    from sealion.evaluate.runner import seahelm_sampling

    assert seahelm_sampling(generation_config) == expected


def test_model_without_do_sample_is_sampled_not_greedy(tmp_path):
    """SEA-HELM's runs differ from each other on a model whose generation_config has no do_sample."""
    (tmp_path / "generation_config.json").write_text(json.dumps({"bos_token_id": 2, "eos_token_id": 1}))
    runner = Runner(EvalConfig(model=str(tmp_path), out=str(tmp_path / "o"), progress=False))
    assert not runner.greedy and runner.sampling["temperature"] == 1.0 and runner.sampling["do_sample"]
    assert Runner(EvalConfig(model=str(tmp_path), out=str(tmp_path / "o"), temperature=0)).greedy
    assert Runner(EvalConfig(model="http://localhost:1/v1", out=str(tmp_path / "o"))).sampling == {}


def test_budget_counts_separate_reasoning_and_max_tokens_cuts():
    from sealion.evaluate.runner import budget_counts
    from sealion.evaluate.tasks import TurnOutput

    outputs = [[TurnOutput(text="<think>...", answer="", reasoning="...", finish_reason="length")],
               [TurnOutput(text="Jawa", answer="", finish_reason="length")],
               [TurnOutput(text="Jawaban: A", answer="Jawaban: A", finish_reason="length")],
               [TurnOutput(text="Jawaban: B", answer="Jawaban: B")]]
    assert budget_counts(outputs) == {"empty_cut_in_reasoning": 1, "empty_cut_at_max_tokens": 1, "hit_length": 3}
