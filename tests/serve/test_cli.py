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
