"""`sealion chat`: input handling, a scripted streaming session with tools, and the verb over a pipe."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealion.chat.cli import ChatSession, Style, load_tool_functions, read_messages, repl
from sealion.chat.tools import as_tools
from sealion.engine.types import SamplingParams
from sealion.errors import ConfigError

from .scripted import ScriptedLogits

Q = '<|"|>'
REPO = Path(__file__).resolve().parents[2]


def test_read_messages_multiline():
    text = 'hello\nfirst \\\nsecond\n"""\nblock line 1\n\nblock line 2\n"""\n"""inline"""\n/exit\ntail \\\n'
    assert list(read_messages(io.StringIO(text))) == [
        "hello", "first \nsecond", "block line 1\n\nblock line 2", "inline", "/exit", "tail "]


def test_load_tool_functions(tmp_path):
    f = tmp_path / "mytools.py"
    f.write_text("def add(a: int, b: int) -> int:\n    '''Add.'''\n    return a + b\n")
    [add] = load_tool_functions(f"{f}:add")
    assert add(2, 3) == 5
    assert load_tool_functions("json:dumps")[0].__name__ == "dumps"
    with pytest.raises(ConfigError, match="module:function"):
        load_tool_functions("nocolon")
    with pytest.raises(ConfigError, match="no function"):
        load_tool_functions("json:nope")


def lookup(word: str) -> dict:
    """Look a word up.

    Args:
        word: The word.
    """
    return {"word": word, "meaning": "a greeting"}


@pytest.fixture(scope="module")
def loaded(tiny_loaded):
    return tiny_loaded


def test_session_streams_thinking_tools_and_answer(loaded):
    from sealion.engine import LocalEngine

    script = ScriptedLogits(loaded.tokenizer, [
        f"<|channel>thought\nI will look it up.\n<channel|><|tool_call>call:lookup{{word:{Q}halo{Q}}}<tool_call|>"
        "<|tool_response>",
        "the tool answered\n<channel|>It means a greeting.<turn|>",
        "Sama-sama!<turn|>",
    ])
    engine = LocalEngine(loaded, logits_processors=[script])
    out = io.StringIO()
    session = ChatSession(engine, out, Style(color=False), system="Be brief.", think=True, tools=as_tools([lookup]),
                          params=SamplingParams(max_new_tokens=60, temperature=0))
    stdin = io.StringIO("What does \\\nhalo mean?\n/image /nonexistent.png\nTerima kasih\n/reset\n/exit\nignored\n")
    assert repl(session, stdin, interactive=False) == 0
    text = out.getvalue()
    assert "\x1b[" not in text  # no ANSI when not a terminal
    assert ">>> What does \nhalo mean?\n" in text
    assert "[thinking] I will look it up.\n[tool call] lookup({\"word\": \"halo\"})\n" in text
    assert "[tool result] lookup: {\"word\": \"halo\", \"meaning\": \"a greeting\"}\n" in text
    assert "[thinking] the tool answered\nIt means a greeting.\n" in text
    assert "/image: no such file" in text and "Sama-sama!\n" in text and "(conversation reset)" in text
    assert "ignored" not in text
    # the model saw the whole conversation: its calls, the result, its answer, then the next user turn
    assert script.prompts[2].endswith("It means a greeting.<turn|>\n<|turn>user\nTerima kasih<turn|>\n"
                                      "<|turn>model\n")
    assert session.messages == [{"role": "system", "content": "Be brief."}]  # after /reset


def test_ansi_on_terminal(loaded):
    from sealion.engine import LocalEngine

    script = ScriptedLogits(loaded.tokenizer, ["<|channel>thought\nhmm\n<channel|>ok<turn|>"])
    out = io.StringIO()
    session = ChatSession(LocalEngine(loaded, logits_processors=[script]), out, Style(color=True), think=True,
                          params=SamplingParams(max_new_tokens=20, temperature=0))
    assert session.ask("hi") == "ok"
    assert "\x1b[2m[thinking] \x1b[0m\x1b[2mhmm\x1b[0m\nok" in out.getvalue()


def test_verb_over_a_pipe(tiny_text_dir, tiny_loaded, monkeypatch, capsys):
    """The verb end to end in-process: flags, piped stdin, plain stdout. The engine is a real LocalEngine on the
    already-loaded tiny model (open_engine(MODEL) itself is the engine area's to test; this saves a reload)."""
    import sealion.engine
    from sealion.chat.cli import main
    from sealion.engine import LocalEngine

    opened = []
    monkeypatch.setattr(sealion.engine, "open_engine", lambda ref, **kw: opened.append(ref) or LocalEngine(tiny_loaded))
    monkeypatch.setattr(sys, "stdin", io.StringIO("Halo!\n/exit\n"))
    assert main([str(tiny_text_dir), "--max-new-tokens", "5", "--temperature", "0", "--system", "S"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(">>> Halo!\n") and "\x1b[" not in out and opened == [str(tiny_text_dir)]
    assert main([str(tiny_text_dir), "--tools", "x"]) == 1
    assert "--tools" in capsys.readouterr().err


def test_verb_help_in_a_subprocess():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "sealion.chat.cli", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and "--think" in proc.stdout and "example: sealion chat" in proc.stdout
