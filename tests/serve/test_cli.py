"""`sealion serve` as users run it: a separate process on 127.0.0.1, answered by the openai client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
from scripted import GREET


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model: str, *extra: str):
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "sealion", "serve", model, "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode()[-2000:])
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("server did not become ready")


def _stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)


def test_help_lists_the_flags():
    from sealion.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--help"])
    args = parser.parse_args(["serve", "demo"])
    assert args.host == "127.0.0.1" and args.max_batch == 32


def test_cli_server_with_api_key(scripted_dir):
    proc, url = _serve(str(scripted_dir), "--served-model-name", "tiny", "--api-key", "k3y", "--max-batch", "4")
    try:
        assert httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": GREET}).status_code == 401
        client = openai.OpenAI(base_url=url + "/v1", api_key="k3y", max_retries=0)
        r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=20)
        assert r.choices[0].message.content == "Hello there!"
    finally:
        _stop(proc)


@pytest.mark.demo
def test_sealion_serve_demo_answers_openai_client(demo_dir):
    proc, url = _serve("demo", "--max-batch", "4")
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
        assert [m.id for m in client.models.list().data] == ["demo"]
        r = client.completions.create(model="demo", prompt="The capital of France is", max_tokens=6, temperature=0)
        # transformers' own greedy generate() on this model and prompt writes exactly this
        assert r.choices[0].text == " the capital of the country of"
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model="demo", prompt="The capital of France is", max_tokens=6, temperature=0, stream=True))
        assert streamed == r.choices[0].text
        chat = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hi"}],
                                              max_tokens=8, temperature=0)
        assert chat.choices[0].message.content and chat.choices[0].finish_reason in ("stop", "length")
        chunks = list(client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hi"}],
                                                     max_tokens=8, temperature=0, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
            chat.choices[0].message.content
    finally:
        _stop(proc)


def test_port_in_use_is_found_before_the_model_loads(tmp_path):
    """Nothing listens on a directory that holds no model: the error must be about the port, not the model."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "sealion", "serve", str(tmp_path / "no-model"), "--port", str(port)],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"sealion: error: 127.0.0.1:{port}: address already in use (another server is "
                                "running there; stop it or pick another --port)")


@pytest.mark.parametrize("flags, message", [
    (["--port", "99999"], "argument --port: must be between 0 and 65535, got 99999"),
    (["--dtype", "float64"], "argument --dtype: invalid choice: 'float64'"),
    (["--default-max-tokens", "0"], "--default-max-tokens: must be at least 1 (0 only with prompt_logprobs), got 0"),
])
def test_bad_flags_are_one_line(tmp_path, flags, message):
    r = subprocess.run([sys.executable, "-m", "sealion", "serve", str(tmp_path / "no-model"), *flags],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_ctrl_c_mid_stream_ends_streams_and_exits_cleanly(tiny_text_dir):
    """SIGINT while two streams run: each stream ends properly (the openai client raises the server's error event;
    the raw SSE stream gets the error event then [DONE]), and the process exits 0 with no traceback and no
    `terminate called` abort (rc 134)."""
    proc, url = _serve(str(tiny_text_dir), "--log-level", "warning")
    body = {"model": str(tiny_text_dir), "prompt": "Halo", "max_tokens": 4000, "temperature": 1.0, "seed": 0,
            "stream": True}
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
        stream = iter(client.completions.create(**{k: v for k, v in body.items() if k != "stream"}, stream=True))
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as raw:
            lines = raw.iter_lines()
            first = [next(stream) for _ in range(5)]
            assert all(c.choices[0].text is not None for c in first)
            assert next(line for line in lines if line.startswith("data: "))
            os.kill(proc.pid, signal.SIGINT)
            with pytest.raises(openai.APIError, match="shutting down"):
                for _ in stream:
                    pass
            events = [line[len("data: "):] for line in lines if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and '"error"' in events[-2] and "shutting down" in events[-2]
        rc = proc.wait(60)
        out = proc.stdout.read().decode()
        assert rc == 0, out[-3000:]
        assert "Traceback" not in out and "terminate called" not in out and "stopped" in out, out[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
