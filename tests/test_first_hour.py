"""The first hour of a new user: long steps say what they are doing, Ctrl-C on a batch keeps its finished rows,
bad flags are one line, chat with a base model says so. (The rest of issue 18 is tested in the verbs' own test
files: tests/serve/test_cli.py, tests/engine/test_cli.py, tests/recipe/test_recipe.py.)"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sealion.errors import ModelLoadError
from sealion.models.convert import announce, gguf_to_hf_dir

REPO = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_announce_says_what_runs_and_how_long_it_took():
    plain = io.StringIO()
    with announce("converting x", stream=plain):
        pass
    assert plain.getvalue().splitlines() == ["sealion: converting x ...", "sealion: converting x: done in 0 s"]
    term = _Terminal()
    with pytest.raises(ValueError):
        with announce("converting y", stream=term, tick=0.01):
            import time

            time.sleep(0.05)
            raise ValueError
    text = term.getvalue()
    assert "\rsealion: converting y ... 0 s" in text  # the live counter, rewritten in place
    assert text.endswith("\rsealion: converting y: failed in 0 s\n")


def test_gguf_conversion_is_announced_before_the_slow_part(tmp_path, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="cannot read GGUF"):
        gguf_to_hf_dir(bad, tmp_path / "out")
    err = capsys.readouterr().err
    assert err.startswith(f"sealion: converting broken.gguf to safetensors in {tmp_path / 'out'} (once;")
    assert ": failed in" in err and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ Ctrl-C on a batch keeps what it finished
def _sealion(*args, **kw) -> subprocess.Popen:
    """`sealion ...` as a user starts it, with SIGINT at its default (a shell's background job inherits it
    ignored, and Python then never turns it into KeyboardInterrupt)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "sealion", *args], env=env, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def test_ctrl_c_on_generate_keeps_finished_rows_and_a_rerun_resumes(tiny_text_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    texts = [f"Prompt number {i}" for i in range(16)]
    prompts.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    flags = ["--prompts-file", str(prompts), "--batch-size", "1", "--max-new-tokens", "12", "--temperature", "0"]
    proc = _sealion("generate", str(tiny_text_dir), *flags, "--out", str(out), stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not (out.is_file() and out.stat().st_size):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.rstrip().endswith("sealion: interrupted") and "Traceback" not in err, err
    kept = out.read_text(encoding="utf-8").splitlines()
    assert 1 <= len(kept) < len(texts), "the run finished before it could be interrupted"
    rows = [json.loads(line) for line in kept]  # every kept line is a whole row
    assert [r["index"] for r in rows] == list(range(len(rows)))
    # the rerun answers only the rest, and the file ends equal to an uninterrupted run's
    from sealion.cli import main

    assert main(["generate", str(tiny_text_dir), *flags, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{len(rows)} of {len(texts)} prompts already answered in {out}" in err
    whole = tmp_path / "whole.jsonl"
    assert main(["generate", str(tiny_text_dir), *flags, "--out", str(whole)]) == 0
    resumed = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert resumed == [json.loads(line) for line in whole.read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in resumed] == texts


# ----------------------------------------------------------- bad flags: one line naming the flag, exit 2
def test_bad_flags_are_one_line_and_exit_2_in_each_verb(tmp_path):
    """The real entry point, before any model loads (the model path does not exist)."""
    model = str(tmp_path / "no-model")
    cases = [(["serve", model, "--port", "99999"], "--port: must be between 0 and 65535, got 99999"),
             (["generate", model, "--prompt", "x", "--temperature", "-1"],
              "--temperature: must be between 0 and 2, got -1"),
             (["chat", model, "--top-p", "1.5"], "--top-p: must be in (0, 1], got 1.5"),
             (["generate", model, "--prompt", "x", "--dtype", "float64"], "--dtype: invalid choice: 'float64'")]
    procs = [(_sealion(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL), message)
             for args, message in cases]
    for proc, message in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err


# ------------------------------------------------------------------- chat with a base model says so
def test_chat_verb_warns_on_a_model_without_a_chat_template(tiny_gemma3_dir, tiny_text_dir, monkeypatch, capsys):
    from sealion.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("Halo!\n"))
    assert main(["chat", str(tiny_gemma3_dir), "--max-new-tokens", "2", "--temperature", "0"]) == 0
    err = capsys.readouterr().err
    assert f"sealion chat: warning: {tiny_gemma3_dir} has no chat template (a base model?)" in err
    assert f"For plain completion run: sealion generate {tiny_gemma3_dir} --prompt" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("Halo!\n"))
    assert main(["chat", str(tiny_text_dir), "--max-new-tokens", "2", "--temperature", "0"]) == 0
    assert "chat template" not in capsys.readouterr().err


# ------------------------------------------------------------------ eval says what it left out, at the end
def test_eval_ends_with_a_line_naming_the_skipped_pairs(tiny_text_dir, tmp_path, capsys):
    """The fixtures hold sentiment for id only and no causal data for id or tl: three pairs are left out."""
    from sealion.cli import main

    fixtures = REPO / "tests" / "evaluate" / "fixtures" / "seahelm"
    assert not list(fixtures.glob("nlr/causal/data/id_*")) and list(fixtures.glob("nlu/sentiment_analysis/data/id_*"))
    rc = main(["eval", "--model", str(tiny_text_dir), "--tasks", "sentiment,causal", "--languages", "id,tl",
               "--data", str(fixtures), "--runs", "1", "--limit", "1", "--max-tokens", "4", "--no-progress",
               "--out", str(tmp_path / "ev")])
    out = capsys.readouterr().out
    assert rc == 0
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("skipped 3 (language, task) pairs: tl/sentiment, id/causal, tl/causal (first: task "
                           "'sentiment' [tl]: no local file"), last
    assert "| id | nlu | sentiment |" in out  # the pair that had data was scored
