"""Served teachers: capture from `sealion serve` over HTTP equals the in-process capture; mixtures, retries and
refusals against a small server that answers exactly in vLLM's prompt_logprobs shape."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fastapi import Request  # at module level: the fake server's handler annotation is resolved from here

from sealion.distill.capture import CaptureConfig, HFTeacher, capture
from sealion.distill.data import load_examples
from sealion.distill.modeling import load_model
from sealion.distill.served import Endpoint, ServedTeacher
from sealion.distill.store import Capture
from sealion.errors import ConfigError, DataError

K = 16


@pytest.fixture(scope="module")
def served_teacher(sharp_teacher_dir):
    """`sealion serve`'s app for the sharp tiny teacher, on 127.0.0.1 (a free port)."""
    from sealion.serve import ServeConfig, ServerThread, create_app
    from sealion.serve.loading import load_for_serving

    model, tok = load_for_serving(str(sharp_teacher_dir), dtype="float32")
    srv = ServerThread(create_app(model, tok, config=ServeConfig(model_name="teacher", max_model_len=4096))).start()
    yield srv.url + "/v1"
    srv.stop()


def _assert_same_topk(a_ids, a_lps, b_ids, b_lps, tol=1e-4):
    assert a_ids.shape == b_ids.shape
    np.testing.assert_allclose(a_lps, b_lps, atol=tol, rtol=0)
    # ids agree except inside near-ties (order of equal log-probs is arbitrary)
    gaps = np.abs(np.diff(a_lps, axis=1))
    tie = np.zeros_like(a_ids, dtype=bool)
    tie[:, 1:] |= gaps < tol
    tie[:, :-1] |= gaps < tol
    assert (a_ids[~tie] == b_ids[~tie]).all()
    assert (a_ids != b_ids).mean() < 0.05


def test_served_scores_equal_the_in_process_teacher(served_teacher, sharp_teacher_dir, small_rows_file):
    model, tok, _ = load_model(str(sharp_teacher_dir))
    examples, _ = load_examples([str(small_rows_file)], tok, max_length=2048, progress=False)
    examples = examples[:6]
    local = HFTeacher(model, k=K, temperature=1.0, batch_tokens=4096, batch_rows=8).score(examples)
    teacher = ServedTeacher([Endpoint(served_teacher)], k=K, concurrency=3)
    assert teacher.endpoints[0].model == "teacher"  # asked from GET /v1/models
    served = teacher.score(examples)
    teacher.close()
    for (ai, al, at, _), (bi, bl, bt, _) in zip(local, served):
        _assert_same_topk(ai, al, bi, bl)
        # the T=1 tail from the top-k: exact up to the float32 precision of the log-probs (so compared as a mass;
        # a sharp teacher's tail of e^-18 is below float32's resolution of 1 - sum)
        np.testing.assert_allclose(np.exp(at), np.exp(bt), atol=1e-5, rtol=0)


def test_served_capture_equals_in_process_capture(served_teacher, sharp_teacher_dir, small_rows_file, tiny_capture,
                                                  tmp_path):
    out = tmp_path / "served"
    m = capture(CaptureConfig(teacher=served_teacher, tokenizer=str(sharp_teacher_dir), data=[str(small_rows_file)],
                              out=str(out), k=K, shard_size=5, tail_temperatures=[], progress=False, concurrency=4))
    assert m["backend"] == "served" and m["tail_temperatures"] == [1.0]
    ref = Capture(tiny_capture)
    assert m["tokenizer_fingerprint"] == ref.tokenizer_fingerprint and m["num_examples"] == ref.manifest["num_examples"]
    step = Capture(out).codec.step
    for a, b in zip(ref.examples(), Capture(out).examples()):
        assert (a.example.input_ids == b.example.input_ids).all()
        _assert_same_topk(a.ids, a.logprobs, b.ids, b.logprobs, tol=step + 1e-4)  # one grid cell of the codec
    again = capture(CaptureConfig(teacher=served_teacher, tokenizer=str(sharp_teacher_dir),
                                  data=[str(small_rows_file)], out=str(out), k=K, shard_size=5, tail_temperatures=[],
                                  progress=False))
    assert again["complete"]  # a finished capture is a no-op


def test_served_capture_refuses_other_temperatures_and_mixed_teachers(tmp_path):
    with pytest.raises(ConfigError, match="temperature 1"):
        CaptureConfig(teacher="http://127.0.0.1:9/v1", data=["x"], out=str(tmp_path), temperature=2.0).validate()
    with pytest.raises(ConfigError, match="teacher_weights"):
        CaptureConfig(teacher="http://a/v1", extra_teachers=["http://b/v1"], teacher_weights=[1.0], data=["x"],
                      out=str(tmp_path)).validate()


# ------------------------------------------------------------------------------ a vLLM-shaped fake server
VOCAB = 50


def _dist(seed: int, n: int) -> np.ndarray:
    """Log-probs [n positions, VOCAB] of a fixed random model."""
    g = np.random.default_rng(seed)
    logits = g.normal(size=(n, VOCAB)) * 3
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


class FakeVLLM:
    """POST /v1/completions answering prompt_logprobs exactly as vLLM does; fails the first `fail` requests."""

    def __init__(self, seed: int, fail: int = 0, status: int = 503):
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse

        from sealion.serve import ServerThread

        self.seed, self.fail, self.status, self.calls = seed, fail, status, 0
        self.lock = threading.Lock()
        app = FastAPI()

        @app.get("/v1/models")
        def models():
            return {"object": "list", "data": [{"id": f"fake-{seed}", "object": "model"}]}

        @app.post("/v1/completions")
        async def completions(req: Request):
            body = await req.json()
            with self.lock:
                self.calls += 1
                if self.calls <= self.fail:
                    return JSONResponse({"error": {"message": "busy"}}, status_code=self.status)
            ids, k = body["prompt"], body["prompt_logprobs"]
            lp = _dist(self.seed, len(ids))
            plp = [None]
            for t in range(1, len(ids)):
                order = np.argsort(-lp[t - 1])
                rank = {int(tok): r + 1 for r, tok in enumerate(order)}
                keep = [int(x) for x in order[:k]] + [int(ids[t])]
                plp.append({str(tok): {"logprob": float(lp[t - 1, tok]), "rank": rank[tok], "decoded_token": "x"}
                            for tok in keep})
            return {"id": "c", "object": "text_completion", "model": body["model"],
                    "choices": [{"index": 0, "text": "x", "finish_reason": "length", "logprobs": None,
                                 "prompt_logprobs": plp}]}

        self.srv = ServerThread(app).start()
        self.url = self.srv.url + "/v1"


def _example(n: int = 12):
    from sealion.distill.data import Example

    g = np.random.default_rng(3)
    mask = np.zeros(n, bool)
    mask[4:] = True
    return Example(g.integers(0, VOCAB, n), mask, "id")


def test_fake_vllm_single_teacher_is_exact_and_retries():
    fake = FakeVLLM(seed=0, fail=2)
    ex = _example()
    try:
        t = ServedTeacher([Endpoint(fake.url)], k=5, concurrency=1, retries=3)
        ids, lps, tail, _ = t.score([ex])[0]
        t.close()
    finally:
        fake.srv.stop()
    assert fake.calls == 3  # 2 failures (503, retried by the openai client) + 1 answer
    dense = _dist(0, len(ex.input_ids))
    rows = np.nonzero(ex.target_mask[1:])[0]
    ref_ids = np.argsort(-dense[rows], axis=1)[:, :5]
    assert (ids == ref_ids).all()
    np.testing.assert_allclose(lps, np.take_along_axis(dense[rows], ref_ids, 1), atol=1e-6)
    ref_tail = np.log1p(-np.exp(np.take_along_axis(dense[rows], ref_ids, 1)).sum(1))
    np.testing.assert_allclose(tail, ref_tail, atol=1e-5)


def test_two_teachers_are_a_weighted_mixture():
    a, b = FakeVLLM(seed=0), FakeVLLM(seed=1)
    ex = _example()
    try:
        t = ServedTeacher([Endpoint(a.url, 0.25), Endpoint(b.url, 0.75)], k=VOCAB, concurrency=2)
        ids, lps, tail, _ = t.score([ex])[0]
        t.close()
    finally:
        a.srv.stop(), b.srv.stop()
    rows = np.nonzero(ex.target_mask[1:])[0]
    # with k = the vocabulary every id is in both top-k lists, so the mixture is exact
    mix = 0.25 * np.exp(_dist(0, len(ex.input_ids))[rows]) + 0.75 * np.exp(_dist(1, len(ex.input_ids))[rows])
    ref_ids = np.argsort(-mix, axis=1)
    assert (ids == ref_ids).all()
    np.testing.assert_allclose(np.exp(lps), np.take_along_axis(mix, ref_ids, 1), atol=1e-6)


def test_client_errors_stop_with_the_servers_message():
    fake = FakeVLLM(seed=0, fail=100, status=400)
    try:
        t = ServedTeacher([Endpoint(fake.url, model="m")], k=5, retries=3)
        with pytest.raises(DataError, match=r"/v1/completions: HTTP 400: .*busy"):
            t.score([_example()])
        t.close()
    finally:
        fake.srv.stop()
    assert fake.calls == 1  # a 4xx is not retried


def test_retries_run_out_with_a_one_line_error():
    fake = FakeVLLM(seed=0, fail=100, status=503)
    try:
        t = ServedTeacher([Endpoint(fake.url, model="m")], k=5, retries=1)
        with pytest.raises(DataError, match=r"/v1/completions: HTTP 503 after 2 tries: .*busy"):
            t.score([_example()])
        t.close()
    finally:
        fake.srv.stop()
    assert fake.calls == 2


def test_unreachable_url_is_a_one_line_error():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"127.0.0.1:{port}/v1/models: cannot reach the server .*after 1 tries"):
        ServedTeacher([Endpoint(f"http://127.0.0.1:{port}/v1")], k=5, retries=0)


def test_server_without_prompt_logprobs_is_named():
    from fastapi import FastAPI

    from sealion.serve import ServerThread

    app = FastAPI()

    @app.post("/v1/completions")
    def completions():  # a plain OpenAI server: ignores the prompt_logprobs extension
        return {"id": "c", "object": "text_completion", "model": "m", "created": 0,
                "choices": [{"index": 0, "text": "x", "finish_reason": "length", "logprobs": None}]}

    srv = ServerThread(app).start()
    try:
        t = ServedTeacher([Endpoint(srv.url + "/v1", model="m")], k=5, retries=0)
        with pytest.raises(DataError, match="no choices.0..prompt_logprobs .does the server support vLLM's"):
            t.score([_example()])
        t.close()
    finally:
        srv.stop()
