"""Fixtures for the server tests: a scripted tiny Gemma 4, a running server on 127.0.0.1, an OpenAI client."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the `scripted` helper module


@pytest.fixture(scope="session")
def scripted_dir(tiny_text_dir, request) -> Path:
    """Trained once, then kept in pytest's cache (keyed by the script and the base model)."""
    from scripted import build_scripted_model, script_key

    import fcntl
    import os
    import tempfile

    root = Path(request.config.cache.mkdir("sealion-serve"))
    out = root / f"scripted-{script_key(tiny_text_dir)}"
    # xdist workers share the cache: one builds (under a lock) into a temporary directory that is renamed into place
    # whole, so another never loads a half-written copy
    with open(root / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").exists():
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{out.name}-"))
            build_scripted_model(tiny_text_dir, tmp)
            os.replace(tmp, out)
    return out


@pytest.fixture(scope="session")
def scripted_model(scripted_dir):
    from sealion.serve.loading import load_for_serving

    return load_for_serving(str(scripted_dir), dtype="float32")


@pytest.fixture(scope="session")
def tiny_gemma3_model(tiny_gemma3_dir):
    from sealion.serve.loading import load_for_serving

    return load_for_serving(str(tiny_gemma3_dir), dtype="float32")


@pytest.fixture(scope="session")
def tiny_gemma4_model(tiny_text_dir):
    """The random tiny Gemma 4 (sliding, full and KV-shared layers): it never stops on its own."""
    from sealion.serve.loading import load_for_serving

    return load_for_serving(str(tiny_text_dir), dtype="float32")


def start_server(model_and_tokenizer, **config):
    from sealion.serve import ServeConfig, ServerThread, create_app

    model, tokenizer = model_and_tokenizer
    config.setdefault("model_name", "tiny")
    app = create_app(model, tokenizer, config=ServeConfig(**config))
    return ServerThread(app).start()


@pytest.fixture(scope="module")
def server(scripted_model):
    srv = start_server(scripted_model, max_model_len=1024)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
