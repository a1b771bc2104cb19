"""Image and audio parts through `sealion serve` on the tiny multimodal Gemma 4, driven by the `openai` client.

The server must take the engine's own media path: greedy token ids, text and usage equal `LocalEngine.chat` on the
same messages; the image soft-token count equals transformers' Gemma 4 image processor's own count. Bad media is a
400 naming the part, never a 5xx.
"""

from __future__ import annotations

import base64
import http.server
import io
import threading
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
import pytest
from conftest import start_server

PIL = pytest.importorskip("PIL.Image")

MAX_TOKENS = 6
SEED = 1234


def _png(h: int, w: int, seed: int) -> bytes:
    rng = np.random.default_rng(SEED + seed)
    buf = io.BytesIO()
    PIL.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    n = int(seconds * rate)
    tone = (np.sin(np.arange(n) * 2 * np.pi * 330 / rate) * 0.3 * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone.tobytes())
    return buf.getvalue()


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def image_messages(seed: int, question: str = "What is in the picture?", h: int = 40, w: int = 56) -> list[dict]:
    return [{"role": "system", "content": "You describe images."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _data_url(_png(h, w, seed))}},
                                         {"type": "text", "text": question}]}]


def audio_messages() -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(_wav()).decode(), "format": "wav"}},
        {"type": "text", "text": "Transcribe this."}]}]


def text_messages(k: int) -> list[dict]:
    return [{"role": "user", "content": f"Say something about the number {k}."}]


CASES = {
    "image": image_messages(0),
    "audio": audio_messages(),
    **{f"image{k}": image_messages(k, h=32 + 8 * k, w=48) for k in (1, 2, 3)},
    **{f"text{k}": text_messages(k) for k in (1, 2, 3)},
}


@pytest.fixture(scope="module")
def tiny_mm_loaded(tiny_mm_dir):
    from sealion.serve.loading import load_served

    loaded = load_served(str(tiny_mm_dir), dtype="float32")
    assert loaded.processor is not None
    # the saved feature extractor matches the tiny audio tower (else the real tower cannot run the features)
    mel = loaded.model.config.audio_config.subsampling_conv_channels[0]
    assert loaded.processor.feature_extractor.feature_size == mel
    return loaded


@pytest.fixture(scope="module")
def expected(tiny_mm_loaded):
    """LocalEngine.chat on each case, greedy, before the server shares the model."""
    from sealion.engine import ChatRequest, LocalEngine, SamplingParams

    engine = LocalEngine(tiny_mm_loaded)
    try:
        names = list(CASES)
        outs = engine.chat([ChatRequest(messages=CASES[n], params=SamplingParams(max_new_tokens=MAX_TOKENS,
                                                                                 temperature=0)) for n in names])
    finally:
        engine.close()
    return dict(zip(names, outs))


@pytest.fixture(scope="module")
def mm_server(tiny_mm_loaded, expected):
    from sealion.serve import ServeConfig, ServerThread, create_app

    srv = ServerThread(create_app(tiny_mm_loaded, config=ServeConfig(model_name="tiny"))).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def mm_client(mm_server):
    return openai.OpenAI(base_url=mm_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _ask(client, messages, **kw):
    return client.chat.completions.create(model="tiny", messages=messages, max_tokens=MAX_TOKENS, temperature=0,
                                          extra_body={"return_token_ids": True}, **kw)


def _same_as_engine(answer, want):
    choice = answer.choices[0]
    got = choice.model_extra["token_ids"]
    assert got[: len(want.token_ids)] == want.token_ids and len(got) - len(want.token_ids) <= 1
    assert answer.usage.prompt_tokens == want.prompt_tokens
    assert answer.usage.completion_tokens == want.completion_tokens
    assert choice.message.content == (want.content or "")


@pytest.mark.parametrize("case", ["image", "audio"])
def test_media_answer_equals_the_engine(mm_client, expected, tiny_mm_loaded, case):
    answer = _ask(mm_client, CASES[case])
    _same_as_engine(answer, expected[case])
    tok = tiny_mm_loaded.tokenizer
    prompt_ids = answer.model_extra["prompt_token_ids"]
    soft = tok.convert_tokens_to_ids("<|image|>" if case == "image" else "<|audio|>")
    assert answer.usage.prompt_tokens == len(prompt_ids) and prompt_ids.count(soft) > 0
    if case == "image":  # transformers' own image processor says how many soft tokens this image gets
        from transformers import Gemma4ImageProcessorPil

        proc = tiny_mm_loaded.processor.image_processor
        assert isinstance(proc, Gemma4ImageProcessorPil) or hasattr(proc, "max_soft_tokens")
        image = PIL.open(io.BytesIO(_png(40, 56, 0))).convert("RGB")
        want = proc([image], max_soft_tokens=getattr(proc, "max_soft_tokens", 280), return_tensors="pt")
        assert prompt_ids.count(soft) == int(want["num_soft_tokens_per_image"][0])
        text_only = tiny_mm_loaded.tokenizer.convert_tokens_to_ids("<|image>")
        assert prompt_ids.count(text_only) == 1


def test_image_stream_equals_the_engine(mm_client, expected):
    want = expected["image"]
    stream = mm_client.chat.completions.create(model="tiny", messages=CASES["image"], max_tokens=MAX_TOKENS,
                                               temperature=0, stream=True, stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == (want.content or "") and finish == want.finish_reason
    assert (usage.prompt_tokens, usage.completion_tokens) == (want.prompt_tokens, want.completion_tokens)


def test_mixed_concurrent_batch_is_not_crossed(mm_client, expected):
    names = [n for n in CASES if n != "audio"] * 2
    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(lambda n: _ask(mm_client, CASES[n]), names))
    for name, answer in zip(names, answers):
        _same_as_engine(answer, expected[name])
    # the answers differ from one another, so a swapped answer would fail the comparison above
    assert len({tuple(expected[n].token_ids) for n in set(names)}) >= 4


def _error(client, messages, **kw) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        _ask(client, messages, **kw)
    return info.value


def test_bad_image_names_the_part(mm_client):
    bad = image_messages(0)
    bad[1]["content"][0]["image_url"]["url"] = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    err = _error(mm_client, bad)
    assert err.body["param"] == "messages[1].content[0]" and "cannot decode the image" in err.body["message"]
    bad[1]["content"][0]["image_url"]["url"] = "data:image/png;base64,%%%"
    assert _error(mm_client, bad).body["param"] == "messages[1].content[0]"


def test_path_url_needs_the_flag(mm_client, tmp_path):
    (tmp_path / "x.png").write_bytes(_png(16, 16, 0))
    for url in (str(tmp_path / "x.png"), f"file://{tmp_path / 'x.png'}", "http://127.0.0.1:9/x.png"):
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
        err = _error(mm_client, messages)
        assert err.body["param"] == "messages[0].content[0]" and "--allow-media-paths" in err.body["message"]


def test_bad_audio_names_the_part(mm_client):
    from sealion.chat.multimodal import compressed_audio_supported

    messages = audio_messages()
    messages[0]["content"][0]["input_audio"]["format"] = "aac"
    assert "not supported" in _error(mm_client, messages).body["message"]
    messages[0]["content"][0]["input_audio"] = {"data": base64.b64encode(b"ID3" + b"\0" * 64).decode(),
                                                "format": "mp3"}
    err = _error(mm_client, messages)
    assert err.body["param"] == "messages[0].content[0]"
    if not compressed_audio_supported():
        assert "mp3 audio is not supported" in err.body["message"]
    messages[0]["content"][0]["input_audio"] = {"data": base64.b64encode(b"RIFF\0\0\0\0WAVEjunk").decode(),
                                                "format": "wav"}
    assert _error(mm_client, messages).body["param"] == "messages[0].content[0]"


def test_tokenize_counts_the_soft_tokens(mm_server, expected):
    import httpx

    r = httpx.post(mm_server.url + "/tokenize", json={"model": "tiny", "messages": CASES["image"]}, timeout=60)
    assert r.status_code == 200 and r.json()["count"] == expected["image"].prompt_tokens


def test_text_only_server_refuses_media_naming_the_part(tiny_gemma4_model):
    srv = start_server(tiny_gemma4_model)
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=60)
        err = _error(client, image_messages(0))
        assert err.body["param"] == "messages[1].content[0]" and "not supported by this model" in err.body["message"]
    finally:
        srv.stop()


# ---------------------------------------------------------------- limits and the path flag, without a model

def _wire(messages):
    from sealion.serve import protocol as P

    return P.ChatCompletionRequest(model="tiny", messages=messages).messages


def test_limits_name_the_part():
    from sealion.serve.media import to_media_messages
    from sealion.serve.state import ApiError, ServeConfig

    many = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _data_url(_png(8, 8, k))}}
                                         for k in range(3)]}]
    with pytest.raises(ApiError) as info:
        to_media_messages(_wire(many), ServeConfig(max_media_parts=2))
    assert info.value.status == 400 and info.value.param == "messages[0].content[2]"
    with pytest.raises(ApiError) as info:
        to_media_messages(_wire(image_messages(0, h=64, w=64)), ServeConfig(max_media_bytes=1000))
    assert info.value.param == "messages[1].content[0]" and info.value.code == "media_too_large"
    out = to_media_messages(_wire(image_messages(0)), ServeConfig())
    assert out[1]["content"][0]["image"].size == (56, 40) and out[1]["content"][1]["type"] == "text"


def test_paths_and_http_urls_with_the_flag(tmp_path):
    from sealion.serve.media import to_media_messages
    from sealion.serve.state import ApiError, ServeConfig

    png = _png(24, 16, 5)
    (tmp_path / "x.png").write_bytes(png)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        config = ServeConfig(allow_media_paths=True)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/x.png"
        for source in (str(tmp_path / "x.png"), url):
            out = to_media_messages(_wire([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": source}}]}]), config)
            assert out[0]["content"][0]["image"].size == (16, 24)
        for source, limit in ((url.replace("x.png", "missing.png"), None), (url, 100)):
            with pytest.raises(ApiError) as info:
                to_media_messages(_wire([{"role": "user", "content": [
                    {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": source}}]}]),
                    ServeConfig(allow_media_paths=True, max_media_bytes=limit or 2**20))
            assert info.value.param == "messages[0].content[1]"
    finally:
        httpd.shutdown()
