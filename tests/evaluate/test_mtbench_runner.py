"""mt-bench through the `sealion eval` runner: a tiny random model answers two turns, a real HTTP judge on
127.0.0.1 judges; turn 2 sees turn 1's answer; verdicts are cached across a rerun."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from sealion.evaluate import EvalConfig, run_eval

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "seahelm-v1"


@pytest.fixture
def always_a_judge():
    """A judge that always prefers whichever answer is shown first: position bias -> every turn a tie."""
    from fastapi import FastAPI

    app = FastAPI()
    hits = {"n": 0}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "judge", "object": "model"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        hits["n"] += 1
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "judge",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "The first one is better. [[A]]"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", hits
    server.should_exit = True
    t.join(timeout=10)


def test_mt_bench_in_the_runner(tiny_text_dir, tmp_path, always_a_judge):
    if not (DATA / "multi_turn").is_dir():
        pytest.skip("../shared data absent")
    url, hits = always_a_judge
    cfg = EvalConfig(model=str(tiny_text_dir), tasks=["mt-bench"], languages=["id"], data=str(DATA), runs=2,
                     limit=2, max_tokens=4, judge=url, out=str(tmp_path / "r"), progress=False)
    res = run_eval(cfg)
    e = res["results"]["id"]["multi-turn"]["mt-bench"]
    assert e["metric"] == "weighted_win_rate" and e["n_runs"] == 2 and e["n_items"] == 2
    assert e["mean"] == pytest.approx(50.0) and e["metrics"]["ties"] == 4  # 2 items x 2 turns, all ties
    assert hits["n"] == 2 * 2 * 2 * 2  # runs x items x turns x orders
    rows = [json.loads(x) for x in (tmp_path / "r/runs/run_0/id/mt-bench.jsonl").read_text().splitlines()]
    turn2 = rows[0]["prompt"][1]
    assert [m["role"] for m in turn2] == ["user", "assistant", "user"]
    assert turn2[1]["content"] == rows[0]["answers"][0]  # turn 2 sees the model's own turn-1 answer
    assert rows[0]["details"]["turns"][1]["orders"][0]["label"] == "A"
    assert "| id | multi-turn | mt-bench |" in (tmp_path / "r/results.md").read_text()
    # rerun: generations and verdicts both come from the caches
    again = run_eval(cfg)
    assert again["timing"]["generated"] == 0 and hits["n"] == 16
    assert again["results"]["id"]["multi-turn"]["mt-bench"]["mean"] == pytest.approx(50.0)
