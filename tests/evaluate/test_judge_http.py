"""Judging end to end against a real HTTP judge on 127.0.0.1 (FastAPI + uvicorn in a thread, OpenAI
chat/completions shape) that returns scripted verdicts, malformed verdicts and HTTP 500s.

The weighted win rate is worked out by hand below.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from sealion.evaluate.judge import Judge, JudgeCall  # noqa: E402
from sealion.evaluate.tasks import ScoreContext, TurnOutput, get_kind, get_spec  # noqa: E402

SHARED = Path(__file__).resolve().parents[3] / "shared"
MTB = SHARED / "data/seahelm-v1/multi_turn/mt_bench/data/id_sea_mt_bench.jsonl"

# What the scripted judge answers, per (question tag, turn, position of the model), as the model's outcome:
#   win / lose / tie (the judge's label is chosen to give that outcome), "malformed" (no label), "both" (two
#   labels), "500" (HTTP 500 every time), "500once" (HTTP 500 on the first attempt, then a win).
SCRIPT = {
    ("W0", 1, "A"): "win", ("W0", 1, "B"): "win",          # -> win
    ("W0", 2, "A"): "win", ("W0", 2, "B"): "lose",         # disagreement -> tie
    ("W1", 1, "A"): "tie", ("W1", 1, "B"): "tie",          # -> tie
    ("W1", 2, "A"): "lose", ("W1", 2, "B"): "lose",        # -> lose
    ("W2", 1, "A"): "500once", ("W2", 1, "B"): "win",      # retried, then win -> win
    ("W2", 2, "A"): "both", ("W2", 2, "B"): "malformed",   # error/error -> error
    ("R0", 1, "A"): "malformed", ("R0", 1, "B"): "win",    # error vs win: disagreement -> tie
    ("R0", 2, "A"): "500", ("R0", 2, "B"): "500",          # HTTP errors after retries -> error
}
# writing (W0, W1, W2): win, tie, tie, lose, win, error = 1 + .5 + .5 + 0 + 1 + 0 = 3 / 6 = .5
# roleplay (R0):        tie, error                       = .5 + 0 = .5 / 2 = .25
EXPECTED_WEIGHTED = 100 * (0.5 + 0.25) / 2   # 37.5
EXPECTED_UNWEIGHTED = 100 * 3.5 / 8          # 43.75


def _label_for(outcome: str, model_is: str) -> str:
    if outcome == "tie":
        return "[[C]]"
    other = "B" if model_is == "A" else "A"
    return f"[[{model_is if outcome == 'win' else other}]]"


class ScriptedJudge:
    def __init__(self):
        self.hits: Counter = Counter()
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)
        self.app.get("/v1/models")(lambda: {"object": "list", "data": [{"id": "scripted-judge", "object": "model"}]})

    async def chat(self, request: Request):
        body = await request.json()
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        multi = "<conversation_with_assistant_a>" in user
        block_a = re.search(r"<(?:assistant_a_answer|conversation_with_assistant_a)>(.*?)</", user, re.S).group(1)
        if "SLOW" in user:
            await asyncio.sleep(3)
        tag = re.search(r"MODEL\[(\w+)\]", user).group(1)
        model_is = "A" if f"MODEL[{tag}]" in block_a else "B"
        key = (tag, 2 if multi else 1, model_is)
        self.hits[key] += 1
        outcome = SCRIPT[key]
        if outcome == "500" or (outcome == "500once" and self.hits[key] == 1):
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=500)
        if outcome == "500once":
            outcome = "win"
        if outcome == "malformed":
            text = "Both answers are fine, I lean towards the first one."
        elif outcome == "both":
            text = "At first [[A]] seemed better, but in the end [[B]]."
        else:
            text = f"Comparison done.\n{_label_for(outcome, model_is)}"
        return {
            "id": "cmpl-1", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", "j"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


@pytest.fixture(scope="module")
def judge_server():
    judge = ScriptedJudge()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(judge.app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "judge server did not start"
    yield judge, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def _rows() -> list[dict]:
    if not MTB.exists():
        pytest.skip("../shared data absent")
    rows = [json.loads(x) for x in MTB.read_text(encoding="utf-8").splitlines() if x.strip()]
    writing = [r for r in rows if r["metadata"]["category"] == "writing"][:3]
    roleplay = [r for r in rows if r["metadata"]["category"] == "roleplay"][:1]
    return writing + roleplay


def _outputs(tags: list[str], suffix: str = "") -> list[list[TurnOutput]]:
    out = []
    for tag in tags:
        turns = []
        for t in (1, 2):
            ans = f"Jawaban model MODEL[{tag}] giliran {t}{suffix}."
            turns.append(TurnOutput(text=ans, answer=ans))
        out.append(turns)
    return out


def test_pairwise_judging_end_to_end(judge_server, tmp_path):
    judge, url = judge_server
    judge.hits.clear()
    spec = get_spec("mt-bench")
    kind = get_kind(spec.kind)
    rows = _rows()
    items = kind.make_items(spec, "id", rows)
    assert [it.metadata["category"] for it in items] == ["writing", "writing", "writing", "roleplay"]
    tags = ["W0", "W1", "W2", "R0"]
    from sealion.engine import open_engine

    engines = []

    def factory(ref):  # the runner's factory is open_engine(ref); fewer client retries keep the test short
        engines.append(open_engine(ref, max_retries=1, timeout=20))
        return engines[-1]

    ctx = ScoreContext(run=0, seed=25008113, cache_dir=tmp_path / "scoring", engine_factory=factory,
                       options={"judge": url, "judge_retries": 2, "judge_backoff_s": 0.01})
    scores = kind.score(spec, "id", items, _outputs(tags), ctx)
    verdicts = [s.extracted for s in scores]
    assert verdicts == [["win", "tie"], ["tie", "lose"], ["win", "error"], ["tie", "error"]]
    m = kind.task_metrics(spec, "id", items, scores)
    assert m["weighted_win_rate"] == pytest.approx(EXPECTED_WEIGHTED)
    assert m["win_rate"] == pytest.approx(EXPECTED_UNWEIGHTED)
    assert m["category:writing"] == pytest.approx(50.0) and m["category:roleplay"] == pytest.approx(25.0)
    assert m["judge_errors"] == 2
    # failures are recorded per item, with the reason
    r0_t2 = scores[3].details["turns"][1]["orders"]
    assert all(o["label"] is None and o["error"] for o in r0_t2)
    w2_t2 = scores[2].details["turns"][1]["orders"]
    assert "no single" in w2_t2[0]["error"]
    # the 500-once call was retried and then judged
    assert judge.hits[("W2", 1, "A")] >= 2
    assert judge.hits[("R0", 2, "A")] >= 3  # 1 try + 2 retries (the engine may retry too)

    # A rerun reads every successful verdict from the cache; only the failed HTTP calls go out again.
    before = Counter(judge.hits)
    scores2 = kind.score(spec, "id", items, _outputs(tags), ctx)
    assert [s.extracted for s in scores2] == verdicts
    called_again = {k for k in judge.hits if judge.hits[k] > before[k]}
    assert called_again == {("R0", 2, "A"), ("R0", 2, "B")}
    assert all(o["cached"] for o in scores2[0].details["turns"][0]["orders"])
    assert not any(o["cached"] for o in scores2[3].details["turns"][1]["orders"])

    # Changing one judged answer invalidates exactly that item's verdicts.
    changed = _outputs(tags)
    changed[1] = _outputs(["W1"], suffix=" (revisi)")[0]
    hits_w1 = judge.hits[("W1", 1, "A")]
    scores3 = kind.score(spec, "id", items, changed, ctx)
    assert judge.hits[("W1", 1, "A")] == hits_w1 + 1
    assert not any(o["cached"] for t in scores3[1].details["turns"] for o in t["orders"])
    assert all(o["cached"] for t in scores3[0].details["turns"] for o in t["orders"])
    ctx.close()


def test_judge_client_records_failures_without_raising(judge_server, tmp_path):
    from sealion.engine import open_engine

    _, url = judge_server
    engine = open_engine(url, max_retries=0, timeout=20)
    try:
        j = Judge(engine, ref=url, cache_path=tmp_path / "c.jsonl", retries=1, backoff_s=0.01)
        good = [{"role": "user", "content": "<assistant_a_answer>MODEL[W0]</assistant_a_answer>"}]
        bad = [{"role": "user", "content": "<conversation_with_assistant_a>MODEL[R0]</conversation_with_assistant_a>"}]
        replies = j.run([JudgeCall(good), JudgeCall(bad)])
        assert replies[0].error is None and "[[A]]" in replies[0].text
        assert replies[1].text is None and replies[1].error
        assert len(j.cache) == 1  # failures are not cached
    finally:
        engine.close()


def test_unreachable_judge_is_an_error_per_call(tmp_path):
    from sealion.engine import open_engine

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    engine = open_engine(f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=5)
    try:
        j = Judge(engine, ref="x", cache_path=None, retries=1, backoff_s=0.01)
        replies = j.run([JudgeCall([{"role": "user", "content": "hi"}])] * 2)
        assert all(r.text is None and r.error for r in replies)
    finally:
        engine.close()


def test_judge_timeout_is_recorded(judge_server, tmp_path):
    from sealion.engine import open_engine

    _, url = judge_server
    engine = open_engine(url, max_retries=0, timeout=1.0)
    try:
        j = Judge(engine, ref=url, cache_path=tmp_path / "c.jsonl", retries=0)
        slow = [{"role": "user", "content": "SLOW <assistant_a_answer>MODEL[W0]</assistant_a_answer>"}]
        (reply,) = j.run([JudgeCall(slow)])
        assert reply.text is None and "time" in reply.error.lower()
    finally:
        engine.close()
